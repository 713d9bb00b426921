"""Operator at scale: N Models (one version each) on KWOK nodes, from apply to all Ready.

    python benchmarks/operator_scale.py --sizes 100,1000

Starts (or reuses) the local cluster, runs `ciclo run` as a subprocess, applies
N ModelVersions and N Models in a fresh namespace, and reports the time until
every Model is Ready, the operator's peak RSS, and the API requests the operator
made per Model (from its own ciclo_api_requests counter), counted once the
namespace has been quiet for a while.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import apply, models, peak_rss_mb, ready_models
from localcluster import launcher
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
METRICS_PORT = 18100


def requests_by_verb() -> dict[str, float]:
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5)
        .read()
        .decode()
    )
    out: dict[str, float] = {}
    for verb, value in re.findall(
        r'^ciclo_api_requests_total\{code="[0-9]+",verb="(\w+)"\} (\S+)', text, re.M
    ):
        out[verb] = out.get(verb, 0) + float(value)
    return out


def run(n: int, paths: Paths, kubeconfig: Path, pid: int) -> dict[str, float]:
    namespace = f"bench-{n}"
    launcher.kubectl(paths, kubeconfig, "create", "namespace", namespace)
    before = requests_by_verb()
    start = time.monotonic()
    apply(paths, kubeconfig, models(n, namespace))
    applied = time.monotonic() - start
    while ready_models(paths, kubeconfig, namespace) < n:
        if time.monotonic() - start > 900:
            raise TimeoutError(f"{n} models not Ready after 900 s")
        time.sleep(1)
    all_ready = time.monotonic() - start
    # Let trailing events settle, then count what converging cost.
    settled = requests_by_verb()
    while True:
        time.sleep(10)
        now = requests_by_verb()
        if now == settled:
            break
        settled = now
    writes = sum(settled.get(v, 0) - before.get(v, 0) for v in ("PATCH", "POST", "PUT", "DELETE"))
    reads = settled.get("GET", 0) - before.get("GET", 0)
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
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    args = parser.parse_args()
    paths = Paths.from_env()
    kubeconfig = launcher.up(paths, process_node=False)
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CICLO_METRICS_PORT=str(METRICS_PORT))
    log = (paths.state / "bench-operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", "18101"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)
        columns = [
            "Models",
            "apply (s)",
            "all Ready (s)",
            "API writes / Model",
            "API reads / Model",
            "operator peak RSS (MB)",
        ]
        print("| " + " | ".join(columns) + " |")
        print("|" + " ---: |" * len(columns))
        for n in (int(s) for s in args.sizes.split(",")):
            r = run(n, paths, kubeconfig, operator.pid)
            cells = [
                f"{n}",
                f"{r['apply_s']:.1f}",
                f"{r['all_ready_s']:.1f}",
                f"{r['writes_per_model']:.1f}",
                f"{r['reads_per_model']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
