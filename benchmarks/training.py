"""Retraining on the local cluster: from `ciclo retrain` to the new version registered and
serving, and the operator's API writes per training run.

    python benchmarks/training.py --runs 3 [--gate]

With --gate the Model has spec.promotion (an evaluation on iris' rows, accuracy no more than
0.05 below the champion's): the time to Validated (the evaluation Job's result recorded and
the gate passed) is measured too.

Takes the local cluster's lock, starts a fresh cluster (its real node runs the training
Jobs, examples/training/train.py from a ConfigMap in the ciclo image of `make image`, and
the serving pods, both on a PersistentVolumeClaim), runs `ciclo run` as a subprocess,
and on one Model (`autoPromote`, cooldown 1s) asks for a run, waits for the version it
registers and for that version to serve, then for the operator to go quiet, and counts
its API requests from its own ciclo_api_requests counter: the training controller's
writes and the Model controller's (bringing the new version up, switching the Service)
together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import cluster_lock, stop
from localcluster import launcher, training, volumes
from localcluster.node import PLACEMENT
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
METRICS_PORT = 18100
NS = "bench-training"
ON_REAL_NODE = PLACEMENT


def requests_by_verb() -> dict[str, float]:
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out: dict[str, float] = {}
    for verb, value in re.findall(
        r'^ciclo_api_requests_total\{[^}]*verb="(\w+)"[^}]*\} (\S+)', text, re.M
    ):
        out[verb] = out.get(verb, 0) + float(value)
    return out


def writes(counts: dict[str, float]) -> float:
    return sum(counts.get(v, 0) for v in ("PATCH", "POST", "PUT", "DELETE"))


def promotion(home: Path, x: Any, y: Any) -> dict[str, Any]:
    rows = home / "eval.csv"
    header = ",".join(f"f{i}" for i in range(x.shape[1])) + ",target"
    body = "\n".join(",".join(map(str, [*r, t])) for r, t in zip(x, y, strict=True))
    rows.write_text(f"{header}\n{body}\n")
    digest = hashlib.sha256(rows.read_bytes()).hexdigest()
    uri = f"pvc://{volumes.CLAIM}/{rows.name}"
    dataset = {"uri": uri, "sha256": digest, "format": "csv", "target": "target"}
    return {
        "evaluation": {"dataset": dataset},
        "gates": [{"metric": "accuracy", "maxDrop": 0.05}],
    }


def manifests(home: Path, gate: bool) -> list[dict[str, Any]]:
    """`home`: the directory behind the claim the pods read and write."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    gates = {"promotion": promotion(home, x, y)} if gate else {}
    artifact = home / "v1.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), artifact)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    trainer = "ciclo-train-iris"
    return [
        *volumes.manifests(NS, home),
        *training.manifests(NS, trainer),
        {
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "iris-v1"},
            "spec": {
                "model": "iris",
                "version": "v1",
                "artifact": {
                    "uri": f"pvc://{volumes.CLAIM}/{artifact.name}",
                    "format": "sklearn",
                    "sha256": digest,
                },
            },
        },
        {
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "version": "v1",
                "serving": {"replicas": 1, **ON_REAL_NODE},
                **gates,
                "training": {
                    "template": training.template(trainer, ON_REAL_NODE),
                    "artifactStore": f"pvc://{volumes.CLAIM}/store",
                    "autoPromote": True,
                    "cooldown": "1s",
                },
            },
        },
    ]


def get(paths: Paths, kubeconfig: Path, what: str) -> dict[str, Any]:
    out = launcher.kubectl(paths, kubeconfig, "get", what, "-n", NS, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def wait(what: str, check: Any, timeout: float = 300) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic()


def quiet() -> dict[str, float]:
    settled = requests_by_verb()
    while True:
        time.sleep(10)
        now = requests_by_verb()
        if now == settled:
            return now
        settled = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gate", action="store_true", help="with spec.promotion")
    args = parser.parse_args()
    paths = Paths.from_env()
    with cluster_lock(paths):
        launcher.down(paths)
        kubeconfig = launcher.up(paths)
        try:
            return bench(paths, kubeconfig, args.runs, args.gate)
        finally:
            launcher.down(paths)


def validated(version: dict[str, Any]) -> bool:
    """The gate passed: an evaluation recorded and Validated True."""
    status = version.get("status", {})
    return status.get("evaluation") is not None and any(
        c["type"] == "Validated" and c["status"] == "True" for c in status.get("conditions", [])
    )


def bench(paths: Paths, kubeconfig: Path, runs: int, gate: bool) -> int:
    crds = ["apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")]
    launcher.kubectl(paths, kubeconfig, *crds)
    launcher.kubectl(paths, kubeconfig, "create", "namespace", NS)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CICLO_METRICS_PORT=str(METRICS_PORT))
    log = (paths.state / "bench-operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", "18101"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    home = volumes.prepare(Path(tempfile.mkdtemp(prefix="bench-training-")) / volumes.CLAIM)
    try:
        time.sleep(3)
        for m in manifests(home, gate):
            launcher.kubectl(
                paths, kubeconfig, "apply", "--server-side", "-n", NS, "-f", "-",
                stdin=json.dumps(m),
            )  # fmt: skip

        def serving() -> str | None:
            return get(paths, kubeconfig, "model/iris").get("status", {}).get("servingVersion")

        wait("v1 serving", lambda: serving() == "v1")
        quiet()
        print(
            "| run | trigger to registered (s) | to Validated (s) | to serving (s) "
            "| API writes | reads |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in range(2, runs + 2):
            before = quiet()
            start = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "ciclo.cli.main", "--kubeconfig", str(kubeconfig),
                 "retrain", "iris", "-n", NS],
                check=True, capture_output=True,
            )  # fmt: skip
            registered = wait(f"v{n}", lambda n=n: get(paths, kubeconfig, f"mv/iris-v{n}"))
            if gate:
                passed = wait(
                    f"v{n} validated",
                    lambda n=n: validated(get(paths, kubeconfig, f"mv/iris-v{n}")),
                )
                to_validated = f"{passed - start:.1f}"
            else:
                to_validated = "-"
            served = wait(f"v{n} serving", lambda n=n: serving() == f"v{n}")
            after = quiet()
            reads = after.get("GET", 0) - before.get("GET", 0)
            print(
                f"| {n - 1} | {registered - start:.1f} | {to_validated} | {served - start:.1f} | "
                f"{writes(after) - writes(before):.0f} | {reads:.0f} |",
                flush=True,
            )
    finally:
        stop(operator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
