"""A Prometheus for the local cluster: discovers pods through its API server, scrapes the
real node's serving pods by their prometheus.io annotations, over the pod network.

Only pods on the real node are scraped: pods on KWOK's fake nodes have made-up addresses
with nothing behind them, and no traffic may go there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from localcluster import node
from localcluster.paths import Paths

PORT = int(os.environ.get("CICLO_PROMETHEUS_PORT", "9090"))
SCRAPE_INTERVAL = "2s"


def config(kubeconfig: Path, interval: str = SCRAPE_INTERVAL) -> dict[str, object]:
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "ciclo-pods",
                "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_node_name"],
                        "regex": node.NODE,
                        "action": "keep",
                    },
                    {
                        "source_labels": [f"{annotation}scrape"],
                        "regex": "true",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_ip", f"{annotation}port"],
                        "regex": r"(.+);(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {
                        "source_labels": [f"{annotation}path"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }


def _dir(paths: Paths, port: int) -> Path:
    # one home per port: two Prometheus servers cannot share a TSDB (it is locked)
    return paths.state / ("prometheus" if port == PORT else f"prometheus-{port}")


def url(port: int = PORT) -> str:
    return f"http://127.0.0.1:{port}"


def pod_url(port: int = PORT) -> str:
    """Where pods (the operator's, on the real node) reach it: the bridge's host side."""
    return f"http://{node.HOST_ADDRESS}:{port}"


def ready(port: int = PORT) -> bool:
    try:
        with urllib.request.urlopen(f"{url(port)}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(paths: Paths, kubeconfig: Path, port: int = PORT) -> str:
    """Start Prometheus (or keep the one running); its URL once ready."""
    binary = paths.binary("prometheus")
    home = _dir(paths, port)
    home.mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(yaml.safe_dump(config(kubeconfig), sort_keys=False))
    pid = home / "pid"
    if pid.exists() and _alive(int(pid.read_text())) and ready(port):
        # the config may have changed (a new cluster's kubeconfig): reload it in place
        os.kill(int(pid.read_text()), signal.SIGHUP)
        return url(port)
    with (home / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=0.0.0.0:{port}",  # the host and the real node's pods
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command that started it, like the cluster
        )
    pid.write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while not ready(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"prometheus did not start: see {home / 'prometheus.log'}")
        time.sleep(0.2)
    return url(port)


def stop(paths: Paths, port: int = PORT) -> None:
    pid = _dir(paths, port) / "pid"
    if not pid.exists():
        return
    number = int(pid.read_text())
    if _alive(number):
        os.kill(number, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(number) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child still "exists": read its state
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"
