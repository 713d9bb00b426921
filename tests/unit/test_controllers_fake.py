"""The controllers' read-plan-act-write loops against an in-memory Kube (tests/unit/fakekube.py):
a policy's evaluation that rolls back once and survives a crash between the mark and its
record, `ciclo rollback`'s refusal and mark, and a Model's reconcile from nothing to
serving. The same behaviour against a real API server is in tests/integration."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fakekube import Crash, FakeKube, any_kube

from ciclo.config import Config
from ciclo.controllers import model as model_controller
from ciclo.controllers import monitorpolicy
from ciclo.kube.client import (
    DEPLOYMENTS,
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    SERVICES,
    Json,
)
from ciclo.monitoring.evaluation import Reading
from ciclo.monitoring.sources import Query
from ciclo.records import rollback

NS = "ns"


def version(name: str, **status: Any) -> Json:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-{name}", "namespace": NS},
        "spec": {
            "model": "iris",
            "version": name,
            "artifact": {"uri": f"file:///m/{name}", "format": "sklearn", "sha256": "a" * 64},
        },
        "status": status,
    }


def model(spec_version: str, serving: str | None = None) -> Json:
    status: Json = {}
    if serving:
        status = {
            "servingVersion": serving,
            "history": [
                {"version": serving, "since": "2026-01-01T00:01:00Z"},
                {"version": "v1", "since": "2026-01-01T00:00:00Z"},
            ],
        }
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": NS},
        "spec": {"version": spec_version},
        "status": status,
    }


POLICY: Json = {
    "apiVersion": "ciclo.dev/v1alpha1",
    "kind": "MonitorPolicy",
    "metadata": {"name": "guard", "namespace": NS},
    "spec": {
        "modelRef": {"name": "iris"},
        "rules": [
            {
                "name": "acc",
                "metric": "accuracy",
                "min": 0.9,
                "action": "rollback",
                "failureThreshold": 2,
            }
        ],
    },
}


class Source:
    """A metric source that answers `value` for every query."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.queries: list[Query] = []

    def read(self, query: Query) -> Reading:
        self.queries.append(query)
        return Reading(self.value, 1000)


def world() -> FakeKube:
    """v1 warm, v2 serving; both Validated and deployed."""
    validated = {"conditions": [{"type": "Validated", "status": "True", "reason": "DigestOk"}]}
    kube = FakeKube(
        (MODELS, model("v2", serving="v2")),
        (MODEL_VERSIONS, version("v1", phase="Standby", **copy.deepcopy(validated))),
        (MODEL_VERSIONS, version("v2", phase="Serving", **copy.deepcopy(validated))),
        (MONITOR_POLICIES, copy.deepcopy(POLICY)),
    )
    for v, ready in (("v1", 1), ("v2", 2)):
        kube.put(
            DEPLOYMENTS,
            {
                "metadata": {
                    "name": f"iris-{v}",
                    "namespace": NS,
                    "labels": {
                        "ciclo.dev/model": "iris",
                        "ciclo.dev/version": v,
                        "app.kubernetes.io/managed-by": "ciclo",
                    },
                },
                "spec": {"replicas": ready},
                "status": {"readyReplicas": ready},
            },
        )
    return kube


def evaluate(kube: FakeKube, source: Source) -> None:
    monitorpolicy.evaluate_policy(
        any_kube(kube), Config(), NS, "guard", lambda *_: None, lambda *_: source
    )


def test_a_breach_at_failure_threshold_marks_the_version_once_and_records_the_action() -> None:
    kube, low = world(), Source(0.5)
    evaluate(kube, low)
    assert kube.count("apply-status", "modelversions") == 0, "one breach of two"
    evaluate(kube, low)
    mark = kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["rolledBack"]
    assert mark["reason"] == "MonitorPolicy guard" and mark["action"].startswith("acc/v2/")
    assert "[" not in mark["message"], "the action id is a field, not in the message"
    [record] = kube.obj(MONITOR_POLICIES, NS, "guard")["status"]["actions"]
    assert (record["id"], record["action"]) == (mark["action"], "rollback")
    assert record["message"].startswith("rolled back from v2 to v1")
    assert len(kube.events("RolledBack")) == 1
    evaluate(kube, low)  # still breaching, v2 still serves until the Model controller acts
    assert kube.count("apply-status", "modelversions") == 1, "never marked twice"
    assert len(kube.obj(MONITOR_POLICIES, NS, "guard")["status"]["actions"]) == 1
    assert all(q.version == "v2" for q in low.queries)


def test_a_crash_between_the_mark_and_the_record_is_recovered_without_acting_again() -> None:
    kube, low = world(), Source(0.5)
    evaluate(kube, low)
    kube.fail("apply-status", "monitorpolicies")  # the status write after the mark
    kube.fail("apply-status", "monitorpolicies")  # and the failure report's
    with pytest.raises(Crash):
        evaluate(kube, low)
    mark = kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["rolledBack"]
    assert not kube.obj(MONITOR_POLICIES, NS, "guard")["status"].get("actions")
    evaluate(kube, low)  # the restarted operator's next evaluation
    [record] = kube.obj(MONITOR_POLICIES, NS, "guard")["status"]["actions"]
    assert record["id"] == mark["action"] and record["action"] == "rollback"
    assert kube.count("apply-status", "modelversions") == 1, "the mark was not written again"


def test_a_failed_evaluation_says_so_and_keeps_other_writers_conditions_out() -> None:
    kube = world()
    prometheus_rule = {"type": "PrometheusRule", "status": "True", "reason": "Applied"}
    kube.obj(MONITOR_POLICIES, NS, "guard")["status"] = {"conditions": [prometheus_rule]}
    kube.fail("list", "modelversions")
    with pytest.raises(Crash):
        evaluate(kube, Source(0.95))
    assert [c[1] for c in kube.calls if c[0] == "apply-status"] == ["monitorpolicies"]
    conditions = kube.obj(MONITOR_POLICIES, NS, "guard")["status"]["conditions"]
    healthy = next(c for c in conditions if c["type"] == "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("Unknown", "EvaluationFailed")
    assert "Crash" in healthy["message"]


def test_ciclo_rollback_marks_the_serving_version_or_refuses_with_the_reason() -> None:
    kube = world()
    done = rollback.request(any_kube(kube), "img", NS, "iris", "ManualRollback", "by hand")
    assert (done.bad, done.target) == ("v2", "v1")
    assert kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["rolledBack"]["reason"] == (
        "ManualRollback"
    )
    alone = FakeKube((MODELS, model("v1", serving="v1")), (MODEL_VERSIONS, version("v1")))
    with pytest.raises(rollback.RollbackRefused, match="no good version"):
        rollback.request(any_kube(alone), "img", NS, "iris", "ManualRollback", "")
    assert alone.count("apply-status", "modelversions") == 0
    with pytest.raises(rollback.RollbackRefused, match="not found"):
        rollback.request(any_kube(FakeKube()), "img", NS, "iris", "ManualRollback", "")


def test_a_model_is_served_once_its_deployment_is_ready() -> None:
    kube = FakeKube((MODELS, model("v1")), (MODEL_VERSIONS, version("v1")))
    config = Config(image="img")
    model_controller.reconcile(any_kube(kube), config, NS, "iris")
    deployment = kube.obj(DEPLOYMENTS, NS, "iris-v1")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "img"
    assert (SERVICES.plural, NS, "iris") not in kube.objects, "no Service before a ready pod"
    first = {c["type"]: c for c in kube.obj(MODELS, NS, "iris")["status"]["conditions"]}
    assert (first["Ready"]["status"], first["Progressing"]["status"]) == ("False", "True")

    deployment["status"] = {"readyReplicas": deployment["spec"]["replicas"]}
    model_controller.reconcile(any_kube(kube), config, NS, "iris")
    service = kube.obj(SERVICES, NS, "iris")
    assert service["spec"]["selector"]["ciclo.dev/version"] == "v1"
    status = kube.obj(MODELS, NS, "iris")["status"]
    assert status["servingVersion"] == "v1"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert kube.obj(MODEL_VERSIONS, NS, "iris-v1")["status"]["phase"] == "Serving"

    writes = len([c for c in kube.calls if c[0] != "get" and c[0] != "list"])
    model_controller.reconcile(any_kube(kube), config, NS, "iris")
    again = len([c for c in kube.calls if c[0] != "get" and c[0] != "list"])
    assert again - writes <= 1, kube.calls[-8:]
