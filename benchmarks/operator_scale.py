"""Operator at scale: N Models (one version each) on KWOK nodes, from apply to all Ready.

    python benchmarks/operator_scale.py --sizes 100,1000

Takes the machine's cluster lock itself (as the test suite does: do not wrap it in
`flock`), starts a fresh local cluster (no real node), runs `ciclo run` as a subprocess,
applies N ModelVersions and N Models in a fresh namespace, and reports the time until
every Model is Ready, the operator's peak RSS, and the API requests the operator
made per Model (from its own ciclo_api_requests counter), counted once the
namespace has been quiet for a while, in all and by verb and resource, and the CPU the
operator, the API server and etcd used until all were Ready. `--no-operator`
applies the same objects with no operator running (what the API server alone takes).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import (
    apply,
    cluster_lock,
    control_plane_pids,
    cpu_seconds,
    models,
    peak_rss_mb,
    ready_models,
    stop,
)
from localcluster import launcher
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
METRICS_PORT = 18100


def requests() -> dict[tuple[str, str], float]:
    """The operator's API requests so far, by verb and resource (`models/status`)."""
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5)
        .read()
        .decode()
    )
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("ciclo_api_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        key = (labels["verb"], labels.get("resource", "?"))
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


WRITES = ("PATCH", "POST", "PUT", "DELETE")


def run(n: int, paths: Paths, kubeconfig: Path, pid: int) -> dict[str, float]:
    namespace = f"bench-{n}"
    launcher.kubectl(paths, kubeconfig, "create", "namespace", namespace)
    before = requests()
    processes = {"operator": pid, **control_plane_pids()}
    cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
    start = time.monotonic()
    apply(paths, kubeconfig, models(n, namespace))
    applied = time.monotonic() - start
    while ready_models(paths, kubeconfig, namespace) < n:
        if time.monotonic() - start > 900:
            raise TimeoutError(f"{n} models not Ready after 900 s")
        time.sleep(1)
    all_ready = time.monotonic() - start
    cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in processes.items()}
    # Let trailing events settle, then count what converging cost.
    settled = requests()
    while True:
        time.sleep(10)
        now = requests()
        if now == settled:
            break
        settled = now
    spent = {k: v - before.get(k, 0) for k, v in settled.items() if v - before.get(k, 0)}
    writes = sum(v for (verb, _), v in spent.items() if verb in WRITES)
    reads = sum(v for (verb, _), v in spent.items() if verb == "GET")
    for (verb, resource), count in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"    {verb:6} {resource:28} {count / n:6.2f} per Model", flush=True)
    print(f"    {n} Models: apply {applied:.1f} s, all Ready {all_ready:.1f} s, "
          f"{writes / n:.1f} writes and {reads / n:.1f} reads per Model", flush=True)  # fmt: skip
    print("    CPU until all Ready: " + ", ".join(f"{k} {v:.0f} s" for k, v in cpu.items()))
    # The operator releases its finalizers, so the namespace goes before the next size runs.
    launcher.kubectl(
        paths, kubeconfig, "delete", "namespace", namespace, "--timeout=600s", timeout=700
    )
    return {
        "n": n,
        "apply_s": applied,
        "all_ready_s": all_ready,
        "writes_per_model": writes / n,
        "reads_per_model": reads / n,
        "peak_rss_mb": peak_rss_mb(pid),
        "operator_cpu_s": cpu["operator"],
        "apiserver_cpu_s": cpu.get("kube-apiserver", math.nan),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument(
        "--no-operator", action="store_true", help="time the apply alone, no operator running"
    )
    args = parser.parse_args()
    paths = Paths.from_env()
    with cluster_lock(paths):
        return bench(args, paths)


def bench(args: argparse.Namespace, paths: Paths) -> int:
    if launcher.external_kubeconfig() is None:
        launcher.down(paths)  # a fresh cluster: no operator or objects left by anyone
    kubeconfig = launcher.up(paths, real_node=False)
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    if args.no_operator:
        for n in (int(s) for s in args.sizes.split(",")):
            namespace = f"bench-apply-{n}"
            launcher.kubectl(paths, kubeconfig, "create", "namespace", namespace)
            start = time.monotonic()
            apply(paths, kubeconfig, models(n, namespace))
            print(f"{n} Models: apply {time.monotonic() - start:.1f} s, no operator", flush=True)
            launcher.kubectl(paths, kubeconfig, "delete", "namespace", namespace, timeout=700)
        return 0
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CICLO_METRICS_PORT=str(METRICS_PORT))
    log = (paths.state / "bench-operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", "18101"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # its metrics answer once it has started
            try:
                requests()
                break
            except OSError:
                if operator.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        columns = [
            "Models",
            "apply (s)",
            "all Ready (s)",
            "API writes / Model",
            "API reads / Model",
            "operator peak RSS (MB)",
            "operator CPU (s)",
            "API server CPU (s)",
        ]
        rows = []
        for n in (int(s) for s in args.sizes.split(",")):
            r = run(n, paths, kubeconfig, operator.pid)
            cells = [
                f"{n}",
                f"{r['apply_s']:.1f}",
                f"{r['all_ready_s']:.1f}",
                f"{r['writes_per_model']:.1f}",
                f"{r['reads_per_model']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['operator_cpu_s']:.0f}",
                f"{r['apiserver_cpu_s']:.0f}",
            ]
            rows.append("| " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
        print("| " + " | ".join(columns) + " |")
        print("|" + " ---: |" * len(columns))
        print("\n".join(rows))
    finally:
        stop(operator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
