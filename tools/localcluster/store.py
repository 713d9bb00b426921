"""A shared prediction store for the local cluster: Debian's redis-server (`make redis`) on
the real node's bridge, where serving pods reach it, as they reach Prometheus.

Bound to the bridge only, with a password (protected mode refuses other hosts without
one), no persistence, and memory bounded the way docs/serving.md recommends: maxmemory
with volatile-ttl, so the predictions nearest to expiry go first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from localcluster.node import HOST_ADDRESS
from localcluster.paths import Paths

PORT = int(os.environ.get("CICLO_STORE_PORT", "6390"))
MAXMEMORY = "256mb"


def _home(paths: Paths) -> Path:
    return paths.state / "store"


def url(paths: Paths) -> str:
    """The URL pods use (password included): what the Model's Secret holds."""
    password = (_home(paths) / "password").read_text().strip()
    return f"redis://:{password}@{HOST_ADDRESS}:{PORT}/0"


def _answers(paths: Paths) -> bool:
    cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if cli is None:
        return False
    password = (_home(paths) / "password").read_text().strip()
    probe = subprocess.run(
        [cli, "-h", HOST_ADDRESS, "-p", str(PORT), "--no-auth-warning", "-a", password, "ping"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return probe.stdout.strip() == "PONG"


def start(paths: Paths) -> str:
    """Start the store (or keep the one running); its URL once it answers."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: run `make redis`")
    home = _home(paths)
    home.mkdir(parents=True, exist_ok=True)
    secret = home / "password"
    if not secret.exists():
        secret.write_text(secrets.token_hex(16))
    pid = home / "pid"
    if pid.exists() and _answers(paths):
        return url(paths)
    options = {
        "bind": HOST_ADDRESS,
        "port": str(PORT),
        "requirepass": secret.read_text().strip(),
        "save": "",
        "appendonly": "no",
        "dir": str(home),
        "maxmemory": MAXMEMORY,
        "maxmemory-policy": "volatile-ttl",
    }
    command = [binary, *(part for k, v in options.items() for part in (f"--{k}", v))]
    with (home / "store.log").open("ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command that started it, like the cluster
        )
    pid.write_text(str(proc.pid))
    deadline = time.monotonic() + 20
    while not _answers(paths):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the prediction store did not start: see {home / 'store.log'}")
        time.sleep(0.1)
    return url(paths)


def stop(paths: Paths) -> None:
    pid = _home(paths) / "pid"
    if not pid.exists():
        return
    number = int(pid.read_text())
    try:
        os.kill(number, signal.SIGTERM)
    except ProcessLookupError:
        pass
    else:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{number}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    pid.unlink(missing_ok=True)
