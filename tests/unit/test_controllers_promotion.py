"""The way in through the Model controller, on the in-memory fake API: the evaluation Job
applied, its result recorded before the plan reads it, the Job deleted, a Review recorded
with its user; a crash between the record and the status converges on the next reconcile."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakekube import Crash, FakeKube, any_kube

from ciclo.config import Config
from ciclo.controllers import model as model_controller
from ciclo.kube.client import DEPLOYMENTS, JOBS, MODEL_VERSIONS, MODELS, PODS, REVIEWS
from ciclo.planning import evaluation

NS = "ml"
SHA = "d" * 64


def mv(version: str, created: str = "2026-01-01T00:00:00Z", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-{version}", "namespace": NS, "creationTimestamp": created},
        "spec": {
            "model": "iris",
            "version": version,
            "artifact": {"uri": f"file:///m/{version}", "format": "sklearn", "sha256": "a" * 64},
        },
        "status": status,
    }


def model(approval: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": NS},
        "spec": {
            "version": "v2",
            "promotion": {
                "evaluation": {"dataset": {"uri": "file:///d.csv", "sha256": SHA}},
                "gates": [{"metric": "accuracy", "maxDrop": 0.01}],
                "requireApproval": approval,
            },
        },
        "status": {
            "servingVersion": "v1",
            "desiredVersion": "v1",
            "history": [{"version": "v1", "since": "2026-01-01T00:00:00Z"}],
        },
    }


def world(approval: bool = False) -> FakeKube:
    kube = FakeKube(
        (MODELS, model(approval)),
        (MODEL_VERSIONS, mv("v1", servedAt="2026-01-01T00:00:00Z", phase="Serving")),
        (MODEL_VERSIONS, mv("v2")),
    )
    kube.put(
        DEPLOYMENTS,
        {
            "metadata": {
                "name": "iris-v1",
                "namespace": NS,
                "labels": {
                    "ciclo.dev/model": "iris",
                    "ciclo.dev/version": "v1",
                    "app.kubernetes.io/managed-by": "ciclo",
                },
            },
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1},
        },
    )
    return kube


def finish(kube: FakeKube, candidate: float, champion: float) -> None:
    """The Job's pod exits 0 with its result as the termination message."""
    [job] = kube.list(JOBS, NS)
    result = {
        "rows": 100,
        "datasetSha256": SHA,
        "champion": "v1",
        "metrics": [{"metric": "accuracy", "candidate": candidate, "champion": champion}],
    }
    labels = {**job["spec"]["template"]["metadata"]["labels"], "job-name": job["metadata"]["name"]}
    ended = {"exitCode": 0, "message": json.dumps(result), "finishedAt": "2026-01-01T00:05:00Z"}
    kube.put(
        PODS,
        {
            "metadata": {"name": "eval-pod", "namespace": NS, "labels": labels},
            "status": {"containerStatuses": [{"name": "evaluate", "state": {"terminated": ended}}]},
        },
    )


def reconcile(kube: FakeKube) -> None:
    model_controller.reconcile(any_kube(kube), Config(image="img"), NS, "iris")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def test_a_failed_gate_is_recorded_and_the_job_removed() -> None:
    kube = world()
    reconcile(kube)
    [job] = kube.list(JOBS, NS)
    assert job["metadata"]["labels"][evaluation.EVALUATES_LABEL] == "v2"
    assert kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["phase"] == "Evaluating"
    finish(kube, candidate=0.71, champion=0.93)
    reconcile(kube)
    v2 = kube.obj(MODEL_VERSIONS, NS, "iris-v2")
    assert v2["status"]["evaluation"]["metrics"][0]["candidate"] == 0.71
    assert condition(v2, "Validated")["reason"] == "GateFailed"
    assert kube.list(JOBS, NS) == [], "the Job goes once its result is recorded"
    degraded = condition(kube.obj(MODELS, NS, "iris"), "Degraded")
    assert (
        degraded["reason"] == "GateFailed"
        and "candidate 0.71, champion 0.93" in degraded["message"]
    )
    assert kube.obj(MODELS, NS, "iris")["spec"]["version"] == "v2", "the spec is untouched"
    assert [d["metadata"]["name"] for d in kube.list(DEPLOYMENTS, NS)] == ["iris-v1"]


def test_a_crash_after_the_record_converges() -> None:
    kube = world()
    reconcile(kube)
    finish(kube, candidate=0.95, champion=0.93)
    kube.fail("apply-status", "models")  # the operator dies before the Model's status
    with pytest.raises(Crash):
        reconcile(kube)
    assert kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["evaluation"]["rows"] == 100
    reconcile(kube)  # the record is read back; no second Job
    assert kube.count("apply", "jobs") == 1
    assert (
        condition(kube.obj(MODEL_VERSIONS, NS, "iris-v2"), "Validated")["reason"] == "GatesPassed"
    )
    assert kube.obj(MODELS, NS, "iris")["status"]["rollout"]["version"] == "v2"


def test_reviews_are_recorded_with_their_user_and_old_ones_ignored() -> None:
    kube = world(approval=True)
    reconcile(kube)
    finish(kube, candidate=0.95, champion=0.93)
    reconcile(kube)
    assert kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["phase"] == "AwaitingApproval"
    for name, user, created in (
        ("old", "mallory", "2025-12-31T00:00:00Z"),  # before v2 was registered
        ("ok", "alice", "2026-01-02T00:00:00Z"),
    ):
        kube.put(
            REVIEWS,
            {
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
                "spec": {"model": "iris", "version": "v2", "decision": "Approve", "user": user},
            },
        )
    reconcile(kube)
    v2 = kube.obj(MODEL_VERSIONS, NS, "iris-v2")
    assert [(r["user"], r["review"]) for r in v2["status"]["reviews"]] == [("alice", "ok")]
    assert kube.obj(MODELS, NS, "iris")["status"]["rollout"]["version"] == "v2"
    # Recorded once: a reconcile with nothing new writes no review again.
    writes = kube.count("apply-status", "modelversions")
    reconcile(kube)
    assert kube.count("apply-status", "modelversions") == writes
