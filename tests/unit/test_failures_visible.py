"""An evaluation or a reconcile that raises shows on the object, instead of only in a log.

The Kube interface is faked in memory (the controllers' only way to the API): its reads
succeed for the object itself and fail for what the work needs next."""

from __future__ import annotations

from typing import Any

import pytest

from ciclo.config import Config
from ciclo.controllers import model as model_controller
from ciclo.controllers import monitorpolicy
from ciclo.kube.client import MODELS, MONITOR_POLICIES, Json, Ref


class Broken(RuntimeError):
    pass


class FakeKube:
    """Holds objects by (plural, namespace, name); `list` raises, `apply` records."""

    def __init__(self, objects: dict[tuple[str, str, str], Json]) -> None:
        self.objects = objects
        self.applied: list[tuple[str, Json, str, bool]] = []

    def get(self, ref: Ref, namespace: str, name: str) -> Json | None:
        return self.objects.get((ref.plural, namespace, name))

    def list(self, ref: Ref, namespace: str | None = None, **_: Any) -> list[Json]:
        raise Broken(f"listing {ref.plural} broke")

    def apply(self, ref: Ref, body: Json, *, manager: str = "ciclo", status: bool = False) -> Json:
        self.applied.append((ref.plural, body, manager, status))
        return body


def meta(name: str) -> Json:
    return {"name": name, "namespace": "ns", "uid": "u", "generation": 2, "resourceVersion": "1"}


POLICY: Json = {
    "apiVersion": "ciclo.dev/v1alpha1",
    "kind": "MonitorPolicy",
    "metadata": meta("iris"),
    "spec": {
        "modelRef": {"name": "iris"},
        "rules": [{"name": "a", "metric": "accuracy", "min": 0.9}],
    },
    "status": {
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "Healthy",
                "status": "True",
                "reason": "AllRulesOk",
                "message": "every rule ok",
                "observedGeneration": 2,
                "lastTransitionTime": "2026-11-30T00:00:00Z",
            }
        ],
    },
}
MODEL: Json = {
    "apiVersion": "ciclo.dev/v1alpha1",
    "kind": "Model",
    "metadata": meta("iris"),
    "spec": {"version": "v1"},
    "status": {"servingVersion": "v1", "conditions": []},
}


def test_a_policy_evaluation_that_raises_leaves_healthy_unknown_with_the_reason() -> None:
    kube = FakeKube({("monitorpolicies", "ns", "iris"): POLICY, ("models", "ns", "iris"): MODEL})
    with pytest.raises(Broken):
        monitorpolicy.evaluate_policy(kube, Config(), "ns", "iris", lambda *_: None)  # type: ignore[arg-type]
    ((plural, body, manager, status),) = kube.applied
    assert (plural, manager, status) == (MONITOR_POLICIES.plural, monitorpolicy.MANAGER, True)
    healthy = [c for c in body["status"]["conditions"] if c["type"] == "Healthy"]
    assert [(c["status"], c["reason"]) for c in healthy] == [("Unknown", "EvaluationFailed")]
    assert "listing modelversions broke" in healthy[0]["message"]
    assert body["status"]["observedGeneration"] == 2, "the rest of the status is kept"


def test_a_model_reconcile_that_raises_sets_progressing_unknown_and_raises_for_a_retry() -> None:
    kube = FakeKube({("models", "ns", "iris"): MODEL})
    with pytest.raises(Broken):
        model_controller.reconcile(kube, Config(), "ns", "iris")  # type: ignore[arg-type]
    ((plural, body, _, status),) = kube.applied
    assert (plural, status) == (MODELS.plural, True)
    (progressing,) = body["status"]["conditions"]
    assert (progressing["type"], progressing["status"], progressing["reason"]) == (
        "Progressing",
        "Unknown",
        "ReconcileFailed",
    )
    assert progressing["message"] == "Broken: listing modelversions broke"
