"""The way in: how long an evaluation takes, on the local cluster's real node.

    PYTHONPATH=operator:tools .venv/bin/python benchmarks/promotion.py [--rows 10000] [--runs 3]

Takes the test suite's cluster lock (tests/conftest.py), starts a fresh local cluster and
`ciclo run`, registers scikit-learn versions of a 4-feature classifier and a Model with
spec.promotion whose dataset has --rows labelled rows, then, for a first version (scored
alone) and for --runs candidates (each scored with the champion on the same rows):

- evaluation Job: from the Job's creation (its creationTimestamp) to the result recorded
  in the version's status (seen by polling every 0.1 s): scheduling, the container's start
  (the ciclo image), reading the dataset and both artifacts from a PersistentVolumeClaim,
  scoring, the operator reading the result;
- scoring: `status.evaluation.seconds`, the same inside `ciclo evaluate` (fetch included);
- created -> Validated: from the ModelVersion's creation to its Validated=True (the
  Model's spec names it at once), polled every 0.1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

import kubernetes
from common import cluster_lock, stop
from localcluster import launcher, volumes
from localcluster.node import PLACEMENT
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
G, V, NS = "ciclo.dev", "v1alpha1", "bench-promotion"
ON_REAL_NODE = PLACEMENT


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    y = (x @ np.array([1.0, -0.5, 0.8, 0.2]) + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return x, y


def measure(custom: Any, batch: Any, name: str, created: float) -> dict[str, float]:
    job_created = None
    recorded = None
    while True:
        if job_created is None:
            for job in batch.list_namespaced_job(NS).items:
                if job.metadata.labels.get("ciclo.dev/evaluates") == name:
                    job_created = job.metadata.creation_timestamp.timestamp()
        mv = custom.get_namespaced_custom_object(G, V, NS, "modelversions", f"bench-{name}")
        status = mv.get("status", {})
        if recorded is None and status.get("evaluation"):
            recorded = time.time()
            seconds = float(status["evaluation"].get("seconds", 0))
            assert not status["evaluation"].get("error"), status["evaluation"]
        validated = next((c for c in status.get("conditions", []) if c["type"] == "Validated"), {})
        if validated.get("status") == "True" and recorded is not None and job_created:
            done = time.time()
            return {
                "job": recorded - job_created,
                "scoring": seconds,
                "validated": done - created,
            }
        if time.time() - created > 600:
            raise TimeoutError(f"{name} not Validated after 600 s: {status}")
        time.sleep(0.1)


def on_claim(path: Path) -> str:
    """The URI of a file in the claim's directory (the work directory's `pvc/models`)."""
    return f"pvc://{volumes.CLAIM}/{path.name}"


def version(path: Path, name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ModelVersion",
        "metadata": {"name": f"bench-{name}"},
        "spec": {
            "model": "bench",
            "version": name,
            "artifact": {"uri": on_claim(path), "format": "sklearn", "sha256": sha(path)},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    paths = Paths.from_env()
    paths.cache.mkdir(parents=True, exist_ok=True)
    work = volumes.prepare(
        Path(tempfile.mkdtemp(prefix="bench-promotion-")) / "pvc" / volumes.CLAIM
    )
    x, y = data(args.rows, 0)
    dataset = work / "eval.csv"
    with dataset.open("w") as f:
        f.write("a,b,c,d,y\n")
        for row, label in zip(x.tolist(), y.tolist(), strict=True):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    artifacts = {}
    for i in range(args.runs + 1):
        xt, yt = data(2000, i + 1)
        path = work / f"v{i + 1}.joblib"
        joblib.dump(LogisticRegression(C=1.0 / (i + 1)).fit(xt, yt), path)
        artifacts[f"v{i + 1}"] = path
    with cluster_lock(paths):  # one cluster per machine: wait for the tests
        launcher.down(paths)
        kubeconfig = launcher.up(paths)
        try:
            return run(paths, kubeconfig, dataset, artifacts, args)
        finally:
            launcher.down(paths)


def run(
    paths: Paths, kubeconfig: Path, dataset: Path, artifacts: dict[str, Path], args: Any
) -> int:
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CICLO_METRICS_PORT="18110")
    log = (paths.state / "bench-promotion-operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", "18111"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = kubernetes.config.new_client_from_config(str(kubeconfig))
    custom, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
    batch = kubernetes.client.BatchV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": NS}})
        volume, claim = volumes.manifests(NS, dataset.parent)
        core.create_persistent_volume(volume)
        core.create_namespaced_persistent_volume_claim(NS, claim)
        time.sleep(3)
        promotion = {
            "evaluation": {"dataset": {"uri": on_claim(dataset), "sha256": sha(dataset),
                                       "target": "y"}},
            "gates": [{"metric": "accuracy", "min": 0.5}],
        }  # fmt: skip
        results: list[tuple[str, dict[str, float]]] = []
        for i, (name, path) in enumerate(artifacts.items()):
            created = time.time()
            custom.create_namespaced_custom_object(G, V, NS, "modelversions", version(path, name))
            if i == 0:
                model = {
                    "apiVersion": f"{G}/{V}", "kind": "Model", "metadata": {"name": "bench"},
                    "spec": {"version": name, "promotion": promotion,
                             "serving": {"replicas": 1, **ON_REAL_NODE}},
                }  # fmt: skip
                custom.create_namespaced_custom_object(G, V, NS, "models", model)
            else:
                custom.patch_namespaced_custom_object(
                    G, V, NS, "models", "bench", {"spec": {"version": name}}
                )
            results.append((name, measure(custom, batch, name, created)))
            # The next candidate is compared with this one: wait until it serves.
            while (
                custom.get_namespaced_custom_object(G, V, NS, "models", "bench")
                .get("status", {})
                .get("servingVersion")
                != name
            ):
                time.sleep(0.2)
        print(f"rows: {args.rows}")
        print("| version | champion | evaluation Job (s) | scoring in the Job (s) "
              "| created -> Validated (s) |")  # fmt: skip
        print("| --- | --- | ---: | ---: | ---: |")
        for i, (name, r) in enumerate(results):
            champion = "-" if i == 0 else results[i - 1][0]
            print(f"| {name} | {champion} | {r['job']:.1f} | {r['scoring']:.2f} "
                  f"| {r['validated']:.1f} |")  # fmt: skip
        with_champion = [r for _, r in results[1:]]
        if with_champion:
            for key in ("job", "scoring", "validated"):
                values = [r[key] for r in with_champion]
                print(f"{key} with a champion: median {statistics.median(values):.2f} s, "
                      f"min {min(values):.2f}, max {max(values):.2f}")  # fmt: skip
        return 0
    finally:
        stop(operator)


if __name__ == "__main__":
    sys.exit(main())
