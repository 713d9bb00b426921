"""What the operator benchmarks share (operator_scale.py, policy_scale.py, promotion.py,
training.py): the cluster lock, the Models they apply, how they count Ready ones, the
operator process's peak memory and its stop."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localcluster import launcher
from localcluster.paths import Paths

LOCK_HELD = "CICLO_CLUSTER_LOCK_HELD"
"""Set to 1 by a parent that holds the cluster lock for a chain of runs (flock is per
open file: a child that took it again would wait for its own parent forever)."""


@contextlib.contextmanager
def cluster_lock(paths: Paths) -> Iterator[None]:
    """The machine's cluster lock, which the test suite and the demo hold while they use
    the one local cluster."""
    if os.environ.get(LOCK_HELD) == "1":
        yield
        return
    paths.cache.mkdir(parents=True, exist_ok=True)
    with (paths.cache / "cluster.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for whoever is using the local cluster", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def models(n: int, namespace: str, metrics: dict[str, float] | None = None) -> dict[str, object]:
    """N Models of one ModelVersion each (m0000 ...), as one List to apply; the artifacts are
    never fetched (the pods run on KWOK nodes)."""
    items: list[dict[str, object]] = []
    for i in range(n):
        name = f"m{i:04d}"
        spec: dict[str, object] = {
            "model": name,
            "version": "v1",
            "artifact": {
                "uri": f"file:///models/{name}.joblib",
                "format": "sklearn",
                "sha256": "0" * 64,
            },
        }
        if metrics:
            spec["metrics"] = metrics
        items.append(
            {
                "apiVersion": "ciclo.dev/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": f"{name}-v1", "namespace": namespace},
                "spec": spec,
            }
        )
        items.append(
            {
                "apiVersion": "ciclo.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"version": "v1"},
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def items(paths: Paths, kubeconfig: Path, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = launcher.kubectl(
        paths, kubeconfig, "get", kind, "-n", namespace, "-o", "json", timeout=120
    ).stdout
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return found


def ready_models(paths: Paths, kubeconfig: Path, namespace: str) -> int:
    return sum(
        1
        for m in items(paths, kubeconfig, "models", namespace)
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in m.get("status", {}).get("conditions", [])
        )
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_pids() -> dict[str, int]:
    """The local cluster's kube-apiserver and etcd, by name (their CPU is most of a run's)."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
        except OSError:
            continue
        name = exe.rsplit("/", 1)[-1]
        if name in ("kube-apiserver", "etcd") and "/ciclo/" in exe:
            found[name] = int(proc.name)
    return found


def apply(paths: Paths, kubeconfig: Path, body: dict[str, object]) -> None:
    """kubectl apply --server-side of one List."""
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(body), timeout=600
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the benchmark's operator: SIGTERM, then SIGKILL after 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
