"""A Prometheus of a test's own: a free loopback port, a generated config, a temp data dir."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from localcluster.paths import Paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str:
    """The Prometheus built from its pinned Go module (it has Kubernetes discovery)."""
    return str(Paths.from_env().binary("prometheus"))


class Prometheus:
    def __init__(self, home: Path, config: dict[str, Any], port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        log = (self.home / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary(),
                f"--config.file={self.home / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, (self.home / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def scrapes(self, target_count: int = 1) -> int:
        """How many samples of `up` it has stored: waits on scrapes with it."""
        import json

        query = urllib.parse.urlencode({"query": "sum(count_over_time(up[1h]))"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as r:
            result = json.loads(r.read())["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0


def static_config(
    targets: list[str], labels: dict[str, str], interval: str = "1s"
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "ciclo", "static_configs": [{"targets": targets, "labels": labels}]}
        ],
    }


@contextmanager
def prometheus(home: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    p = Prometheus(home, config)
    p.start()
    try:
        yield p
    finally:
        p.stop()
