"""The demo's chapter on the way in (docs/promotion.md): a worse v3 fails its gate against
the champion and never serves; a v4 as good as the champion passes, waits for a person's
approval, and serves once `ciclo approve` has been run."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

if TYPE_CHECKING:
    from demo.story import Cluster, Timeline, Trained
    from demo.traffic import Traffic


def evaluation_set(cluster: Cluster, workdir: Path) -> dict[str, Any]:
    """The held-out rows of the demo's split, as the evaluation dataset."""
    x, y = load_iris(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.3, random_state=7, stratify=y)
    path = workdir / "holdout.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        writer.writerows([[*r, label] for r, label in zip(x_test.tolist(), y_test, strict=True)])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"uri": cluster.uri(path), "sha256": digest, "target": "species"}


def promotion(dataset: dict[str, Any], approval: bool) -> dict[str, Any]:
    return {
        "evaluation": {"dataset": dataset},
        "gates": [
            {"metric": "accuracy", "maxDrop": 0.05},
            {"metric": "latency_p99_ms", "max": 50},
        ],
        "requireApproval": approval,
    }


def chapter(
    cluster: Cluster,
    timeline: Timeline,
    workdir: Path,
    trained: Trained,
    traffic: Traffic,
    shared: bool,
) -> None:
    """Two steps of the story, told while the demo's traffic flows."""
    from demo.story import MODEL, NAMESPACE, apply, describe, model_manifest, profile, wait

    x_train, y_train = trained.x, trained.y

    step = timeline.step("the way in: v3 is worse than the champion and fails its gate")
    t0 = time.monotonic()
    candidates = {
        "v3": DecisionTreeClassifier(max_depth=1, random_state=0),
        "v4": LogisticRegression(C=0.5, max_iter=1000),
    }
    for v, estimator in candidates.items():
        joblib.dump(estimator.fit(x_train, y_train), workdir / f"{v}.joblib")
        # With its baseline, as v1 and v2: the drift rules (and the retraining they start
        # in the next chapter) read v4's drift once it serves.
        out = cluster.ciclo(
            "register", cluster.uri(workdir / f"{v}.joblib"), "--model", MODEL, "--version", v,
            "--format", "sklearn", "--baseline", cluster.uri(profile(workdir, v)), "-n", NAMESPACE,
        )  # fmt: skip
        timeline.say(out.strip())
    dataset = evaluation_set(cluster, workdir)
    champion = cluster.model()["status"].get("servingVersion")
    manifest = model_manifest("v3", shared=shared)
    manifest["spec"]["promotion"] = promotion(dataset, approval=False)
    apply(cluster, timeline, manifest, workdir / "model.yaml")
    degraded = wait(
        "v3's gate failing",
        lambda: (
            (c := cluster.condition(cluster.model(), "Degraded")).get("reason") == "GateFailed"
            and c
        ),
        180,
        lambda: describe(cluster),
    )
    took = time.monotonic() - t0
    timeline.say(f"Degraded (GateFailed): {degraded.get('message')}")
    served = traffic.counts.by_version.get("v3", 0)
    timeline.say(f"{champion} keeps serving; requests answered by v3: {served}")
    step.outcome = f"v3 stopped at its gate in {took:.1f} s, {served} requests served by it"
    step.seconds = took

    step = timeline.step("v4 passes its gates, waits for approval, serves once approved")
    t0 = time.monotonic()
    manifest = model_manifest("v4", shared=shared)
    manifest["spec"]["promotion"] = promotion(dataset, approval=True)
    apply(cluster, timeline, manifest, workdir / "model.yaml")
    wait(
        "v4 awaiting approval",
        lambda: cluster.version("v4").get("status", {}).get("phase") == "AwaitingApproval",
        180,
        lambda: describe(cluster),
    )
    validated = cluster.condition(cluster.version("v4"), "Validated")
    timeline.say(f"v4 {validated.get('reason')}: {validated.get('message')}")
    why = "as good as the champion on the holdout"
    timeline.say(f"$ ciclo approve iris v4 --comment '{why}'")
    out = cluster.ciclo("approve", MODEL, "v4", "-n", NAMESPACE, "--comment", why)
    timeline.say(f"  {out.strip()}")
    wait("v4 serving", lambda: cluster.selected_version() == "v4", 120, lambda: describe(cluster))
    took = time.monotonic() - t0
    timeline.say(f"$ kubectl get modelversions -n {NAMESPACE}")
    for line in cluster.kubectl("get", "modelversions", "-n", NAMESPACE).splitlines():
        timeline.say(f"  {line}")
    step.outcome = f"v4 approved and serving in {took:.1f} s (approval included)"
    step.seconds = took
