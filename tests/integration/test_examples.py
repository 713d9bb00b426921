"""examples/ are what people copy: each is applied as a user would, and does what it says."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import kubernetes
from localcluster import launcher

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def get(paths, kubeconfig, namespace: str, what: str) -> dict:
    out = launcher.kubectl(paths, kubeconfig, "get", what, "-n", namespace, "-o", "json").stdout
    return json.loads(out)


def test_iris_example_serves_and_promotes(paths, kubeconfig, namespace, operator):
    launcher.kubectl(paths, kubeconfig, "apply", "-n", namespace, "-f", str(EXAMPLES / "iris"))

    def status(field: str) -> str | None:
        return get(paths, kubeconfig, namespace, "model/iris").get("status", {}).get(field)

    def ready() -> bool:
        model = get(paths, kubeconfig, namespace, "model/iris")
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in model.get("status", {}).get("conditions", [])
        )

    deadline = time.monotonic() + 30
    while not ready():
        assert time.monotonic() < deadline, "the example Model did not become Ready"
        time.sleep(0.2)
    assert status("servingVersion") == "v1"
    policy = get(paths, kubeconfig, namespace, "monitorpolicy/iris")
    assert [r["name"] for r in policy["spec"]["rules"]] == ["accuracy", "input-drift"]

    # Promote as a user would: edit spec.version in the file and apply it again.
    promoted = (EXAMPLES / "iris" / "model.yaml").read_text().replace("version: v1", "version: v2")
    launcher.kubectl(paths, kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=promoted)
    deadline = time.monotonic() + 30
    while status("servingVersion") != "v2":
        assert time.monotonic() < deadline, "v2 did not serve"
        time.sleep(0.2)
    phases = {
        v["spec"]["version"]: v["status"]["phase"]
        for v in get(paths, kubeconfig, namespace, "modelversions")["items"]
    }
    assert phases == {"v1": "Standby", "v2": "Serving"}


def first_job(api, namespace: str, since: str) -> dict:
    """The first Job made in the namespace after resourceVersion `since`, read from a watch
    that replays from there: the Job may be gone already (its result recorded, the
    operator deletes it; on a fake node that takes well under a second)."""
    batch = kubernetes.client.BatchV1Api(api)
    stream = kubernetes.watch.Watch().stream(
        batch.list_namespaced_job, namespace, resource_version=since, timeout_seconds=60
    )
    for event in stream:
        if event["type"] == "ADDED":
            job: dict = api.sanitize_for_serialization(event["object"])
            return job
    raise AssertionError("no evaluation Job in 60 s")


def test_promotion_example_evaluates_before_serving(paths, kubeconfig, namespace, operator, api):
    """The datasets and artifacts are placeholders (https://*.example.com): what the example
    shows is accepted, and the first version is evaluated before anything serves. (The
    example names no node, so its Job's pod may land on a fake node, which ends it at once
    without a result: the evaluation then fails, and the version still never serves.)"""
    batch = kubernetes.client.BatchV1Api(api)
    since = batch.list_namespaced_job(namespace).metadata.resource_version
    launcher.kubectl(paths, kubeconfig, "apply", "-n", namespace, "-f", str(EXAMPLES / "promotion"))

    def evaluating() -> dict | None:
        model = get(paths, kubeconfig, namespace, "model/churn")
        ready = [c for c in model.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return model if ready and ready[0]["reason"] in ("Evaluating", "EvaluationFailed") else None

    jobs = [first_job(api, namespace, since)]
    deadline = time.monotonic() + 60
    while not (model := evaluating()):
        last = get(paths, kubeconfig, namespace, "model/churn").get("status", {})
        assert time.monotonic() < deadline, f"the example Model is not evaluated: {last}"
        time.sleep(0.2)
    assert model["status"].get("servingVersion") is None
    [job] = jobs
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["ciclo", "evaluate"]
    dataset = model["spec"]["promotion"]["evaluation"]["dataset"]
    assert command[command.index("--dataset") + 1] == dataset["uri"]
    assert "--champion" not in command, "a first version has no champion"
    version = get(paths, kubeconfig, namespace, "modelversion/churn-v1")
    assert version["status"]["phase"] in ("Evaluating", "Failed")
    assert version["spec"]["tags"] == ["baseline"]
