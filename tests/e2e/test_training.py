"""Retraining on the local cluster, all real: kube-controller-manager runs the training
Jobs and the CronJob, the real node runs examples/training/train.py (from a ConfigMap) in
the ciclo image with the Job's ServiceAccount token, writing to a PersistentVolumeClaim
the serving pods read (pvc://models/...), and `ciclo register` inside it creates the
ModelVersion.

Two `ciclo retrain` in quick succession -> one Job -> v2 registered with lineage naming
the trigger and the parent -> v2 serves (autoPromote), spec.version untouched; a failing
Job -> TrainingFailed with its log tail, nothing registered; a schedule of every minute
-> a run at its time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from tests.integration.realnode import ON_REAL_NODE
from tests.integration.waiting import wait_for

import kubernetes
from ciclo.cli.main import main as ciclo
from localcluster import training

pytestmark = pytest.mark.e2e

G, V = "ciclo.dev", "v1alpha1"
TRAINER = "ciclo-train-iris"
SCRIPT = training.COMMAND[-1]


def rbac(api: kubernetes.client.ApiClient, ns: str) -> None:
    """docs/training.md's RBAC: the trainer may read its Model and create ModelVersions;
    and the training script, as a ConfigMap the pod mounts."""
    for obj in training.manifests(ns, TRAINER):
        kubernetes.utils.create_from_dict(api, obj, namespace=ns)


def v1(custom: Any, ns: str, claim: Path) -> None:
    x, y = load_iris(return_X_y=True)
    artifact = claim / "iris-v1.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), artifact)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    custom.create_namespaced_custom_object(
        G,
        V,
        ns,
        "modelversions",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "ModelVersion",
            "metadata": {"name": "iris-v1"},
            "spec": {
                "model": "iris",
                "version": "v1",
                "artifact": {
                    "uri": "pvc://models/iris-v1.joblib",
                    "format": "sklearn",
                    "sha256": digest,
                },
            },
        },
    )


def iris(command: list[str], **options: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {
            "version": "v1",
            "serving": {"replicas": 1, **ON_REAL_NODE},
            "training": {
                "template": training.template(TRAINER, ON_REAL_NODE, command),
                "artifactStore": "pvc://models/store",
                **options,
            },
        },
    }


def get(custom: Any, ns: str, plural: str, name: str) -> dict[str, Any]:
    got: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, plural, name)
    return got


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def jobs(api: kubernetes.client.ApiClient, ns: str) -> list[Any]:
    batch = kubernetes.client.BatchV1Api(api)
    items: list[Any] = batch.list_namespaced_job(ns, label_selector="ciclo.dev/training=true").items
    return items


def test_retrain_registers_a_version_with_lineage_and_it_serves(
    api, custom, namespace, operator, kubeconfig, models_claim
):
    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    manifest = iris(["python", SCRIPT], autoPromote=True)
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    wait_for(
        "v1 serving",
        lambda: (
            get(custom, namespace, "models", "iris").get("status", {}).get("servingVersion") == "v1"
        ),
        timeout=120,
    )

    # Two triggers in quick succession: one Job.
    args = ["--kubeconfig", str(kubeconfig), "retrain", "iris", "-n", namespace]
    assert ciclo(args) == 0
    assert ciclo([*args, "--reason", "once more"]) == 0

    version = wait_for(
        "v2 registered by the run",
        lambda: next(
            (
                v
                for v in custom.list_namespaced_custom_object(G, V, namespace, "modelversions")[
                    "items"
                ]
                if v["spec"]["version"] == "v2"
            ),
            None,
        ),
        timeout=180,
    )
    assert len(jobs(api, namespace)) == 1
    job = jobs(api, namespace)[0]
    source = version["spec"]["source"]
    assert source["runId"] == job.metadata.name
    assert source["trigger"].startswith("manual-")
    assert source["trigger"] == job.metadata.annotations["ciclo.dev/trigger"]
    assert source["parentVersion"] == "v1"
    assert len(source["datasetSha256"]) == 64
    assert version["spec"]["dataset"].startswith("pvc://models/store/")
    assert (models_claim / "store" / job.metadata.name / "model.joblib").exists()
    assert version["spec"]["metrics"]["accuracy"] > 0.8
    assert version["spec"]["baseline"]["sha256"]

    def serving_v2() -> bool:
        model = get(custom, namespace, "models", "iris")
        return model["status"].get("servingVersion") == "v2"

    wait_for("v2 serving (autoPromote)", serving_v2, timeout=180)
    model = get(custom, namespace, "models", "iris")
    assert model["spec"]["version"] == "v1"  # the spec stays the user's
    assert model["status"]["training"]["trainedVersion"] == "v2"
    assert condition(model, "TrainingFailed")["status"] == "False"
    assert len(jobs(api, namespace)) == 1


def test_failing_run_is_training_failed_and_registers_nothing(
    api, custom, namespace, operator, kubeconfig, models_claim
):
    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    boom = ["python", "-c", "import sys; print('no training data today'); sys.exit(3)"]
    manifest = iris(boom, maxRetries=0)
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    assert ciclo(["--kubeconfig", str(kubeconfig), "retrain", "iris", "-n", namespace]) == 0

    failed = wait_for(
        "TrainingFailed",
        lambda: (
            (c := condition(get(custom, namespace, "models", "iris"), "TrainingFailed"))
            and c["status"] == "True"
            and c
        ),
        timeout=120,
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "no training data today" in failed["message"]
    assert "given up after 1 attempts" in failed["message"]
    versions = custom.list_namespaced_custom_object(G, V, namespace, "modelversions")["items"]
    assert [v["spec"]["version"] for v in versions] == ["v1"]


def test_a_scheduled_run_fires_at_its_time(api, custom, namespace, operator, models_claim):
    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    manifest = iris(["python", SCRIPT], schedule="* * * * *")
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    batch = kubernetes.client.BatchV1Api(api)
    cron = wait_for(
        "the CronJob",
        lambda: batch.list_namespaced_cron_job(namespace).items,
        timeout=60,
    )[0]
    assert cron.metadata.owner_references[0].kind == "Model"
    run = wait_for("a scheduled Job", lambda: jobs(api, namespace), timeout=120)[0]
    assert run.metadata.annotations["ciclo.dev/trigger"] == "schedule"
    version = wait_for(
        "the scheduled run's version",
        lambda: next(
            (
                v
                for v in custom.list_namespaced_custom_object(G, V, namespace, "modelversions")[
                    "items"
                ]
                if v["spec"]["version"] == "v2"
            ),
            None,
        ),
        timeout=180,
    )
    assert version["spec"]["source"]["trigger"] == "schedule"
    assert version["spec"]["source"]["runId"] == run.metadata.name
    # not auto-promoted: v1 still serves, v2 waits Registered
    model = get(custom, namespace, "models", "iris")
    assert model["status"].get("servingVersion") in (None, "v1")


def test_a_drift_breach_retrains_and_the_new_version_serves(
    api, custom, namespace, operator, models_claim
):
    """The loop closed: a MonitorPolicy's drift rule with action retrain -> one Job -> v2
    registered with lineage naming the policy's action and v1 -> v2 serves (autoPromote)."""
    from tests.e2e.test_monitor_loop import Load

    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    data = models_claim / "train.csv"
    x, y = load_iris(return_X_y=True)
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    data.write_text(
        ",".join([*names, "species"])
        + "\n"
        + "".join(",".join(map(str, [*r, t])) + "\n" for r, t in zip(x, y, strict=True))
    )
    profile = models_claim / "profile.json"
    assert ciclo(["profile", str(data), "--target", "species", "--out", str(profile)]) == 0
    custom.patch_namespaced_custom_object(
        G,
        V,
        namespace,
        "modelversions",
        "iris-v1",
        {
            "spec": {
                "baseline": {
                    "uri": "pvc://models/profile.json",
                    "sha256": hashlib.sha256(profile.read_bytes()).hexdigest(),
                }
            }
        },
    )
    manifest = iris(["python", SCRIPT], autoPromote=True)
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    wait_for(
        "v1 serving",
        lambda: (
            get(custom, namespace, "models", "iris").get("status", {}).get("servingVersion") == "v1"
        ),
        timeout=120,
    )
    load = Load(kubernetes.client.DiscoveryV1Api(api), namespace)
    try:
        load.shift = 2.0  # sepal_width moves: drift
        custom.create_namespaced_custom_object(
            G,
            V,
            namespace,
            "monitorpolicies",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "MonitorPolicy",
                "metadata": {"name": "iris"},
                "spec": {
                    "modelRef": {"name": "iris"},
                    "interval": "2s",
                    "source": {"type": "pods"},
                    "rules": [
                        {
                            "name": "input-drift",
                            "metric": "feature_drift_psi",
                            "window": "15s",
                            "max": 0.2,
                            "minSamples": 200,
                            "failureThreshold": 2,
                            "action": "retrain",
                        }
                    ],
                },
            },
        )
        version = wait_for(
            "v2 registered by the retrain",
            lambda: next(
                (
                    v
                    for v in custom.list_namespaced_custom_object(G, V, namespace, "modelversions")[
                        "items"
                    ]
                    if v["spec"]["version"] == "v2"
                ),
                None,
            ),
            timeout=240,
        )
        policy = get(custom, namespace, "monitorpolicies", "iris")
        acted = [a for a in policy["status"]["actions"] if a["action"] == "retrain"]
        assert len(acted) == 1, policy["status"]["actions"]
        source = version["spec"]["source"]
        assert source["trigger"] == acted[0]["id"]
        assert source["trigger"].startswith("input-drift/v1/")
        assert source["parentVersion"] == "v1"
        wait_for(
            "v2 serving",
            lambda: (
                get(custom, namespace, "models", "iris")["status"].get("servingVersion") == "v2"
            ),
            timeout=180,
        )
    finally:
        load.stop()
    assert len(jobs(api, namespace)) == 1


def _state(c: dict[str, Any]) -> tuple[str, str]:
    return c.get("status", ""), c.get("reason", "")


def test_retiring_or_deleting_the_model_removes_its_training(
    api, custom, namespace, operator, kubeconfig, models_claim
):
    """Retired mid-run: the running Job goes. Deleted: its CronJob goes with it (the
    garbage collector, through ownerReferences)."""
    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    slow = ["python", "-c", "import time; time.sleep(600)"]
    manifest = iris(slow, schedule="@yearly")
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    assert ciclo(["--kubeconfig", str(kubeconfig), "retrain", "iris", "-n", namespace]) == 0
    batch = kubernetes.client.BatchV1Api(api)
    wait_for("a running Job", lambda: any(j.status.active for j in jobs(api, namespace)), 60)
    wait_for("the CronJob", lambda: batch.list_namespaced_cron_job(namespace).items, 30)
    custom.patch_namespaced_custom_object(
        G, V, namespace, "models", "iris", {"spec": {"retired": True}}
    )
    wait_for("the Job removed", lambda: not jobs(api, namespace), 60)
    wait_for("the CronJob removed", lambda: not batch.list_namespaced_cron_job(namespace).items, 30)
    # The status is written after the removals: the same reconcile, a moment later.
    wait_for(
        "Training False/Retired",
        lambda: (
            _state(condition(get(custom, namespace, "models", "iris"), "Training"))
            == ("False", "Retired")
        ),
        30,
    )

    custom.patch_namespaced_custom_object(
        G, V, namespace, "models", "iris", {"spec": {"retired": False}}
    )
    wait_for("the CronJob back", lambda: batch.list_namespaced_cron_job(namespace).items, 60)
    custom.delete_namespaced_custom_object(G, V, namespace, "models", "iris")
    wait_for(
        "the CronJob collected with its Model",
        lambda: not batch.list_namespaced_cron_job(namespace).items,
        90,
    )


def test_a_worse_retrained_version_stops_at_the_gate(
    api, core, custom, namespace, operator, kubeconfig, models_claim
):
    """With spec.promotion (docs/promotion.md): a retrain whose fresh rows carry wrong labels
    fails its gate against the champion and never gets a pod; the champion keeps serving."""
    rbac(api, namespace)
    v1(custom, namespace, models_claim)
    x, y = load_iris(return_X_y=True)
    data = models_claim / "holdout.csv"
    data.write_text(
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        + "".join(",".join(map(str, [*r, t])) + "\n" for r, t in zip(x, y, strict=True))
    )
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    manifest = iris(["python", SCRIPT], autoPromote=True, cooldown="1s")
    manifest["spec"]["promotion"] = {
        "evaluation": {
            "dataset": {"uri": "pvc://models/holdout.csv", "sha256": digest, "target": "species"}
        },
        "gates": [{"metric": "accuracy", "maxDrop": 0.02}],
    }
    # the fresh rows are mostly mislabelled: a worse model
    container = manifest["spec"]["training"]["template"]["containers"][0]
    container["env"] = [
        {"name": "FRESH_ROWS", "value": "600"},
        {"name": "LABEL_NOISE", "value": "0.9"},
    ]
    custom.create_namespaced_custom_object(G, V, namespace, "models", manifest)
    wait_for(
        "v1 serving",
        lambda: (
            get(custom, namespace, "models", "iris").get("status", {}).get("servingVersion") == "v1"
        ),
        timeout=180,
    )
    assert ciclo(["--kubeconfig", str(kubeconfig), "retrain", "iris", "-n", namespace]) == 0
    degraded = wait_for(
        "v2 stopped at its gate",
        lambda: (
            (c := condition(get(custom, namespace, "models", "iris"), "Degraded")).get("reason")
            == "GateFailed"
            and c
        ),
        timeout=300,
    )
    assert "v2" in degraded["message"]
    v2 = get(custom, namespace, "modelversions", "iris-v2")
    assert v2["spec"]["source"]["parentVersion"] == "v1"
    assert v2["status"]["phase"] == "Failed"
    assert core.list_namespaced_pod(namespace, label_selector="ciclo.dev/version=v2").items == []
    model = get(custom, namespace, "models", "iris")
    assert model["status"]["servingVersion"] == "v1" and model["spec"]["version"] == "v1"
