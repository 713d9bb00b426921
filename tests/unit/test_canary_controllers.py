"""A canary through the real controllers on a fake API server: the MonitorPolicy judges the
candidate alone, a breach aborts back to the champion, `ciclo promote` and `ciclo abort`
write status only."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fakekube import FakeKube, any_kube
from test_controllers_fake import NS, POLICY, Source, evaluate, version

from ciclo.config import Config
from ciclo.controllers import model as model_controller
from ciclo.kube.client import (
    DEPLOYMENTS,
    HTTP_ROUTES,
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    SERVICES,
    Json,
)
from ciclo.monitoring.evaluation import Reading
from ciclo.monitoring.sources import Query
from ciclo.records import canary as canary_records

CONFIG = Config(image="img")
STEPS = [{"weight": 10, "pause": "1h"}, {"weight": 100, "pause": "1h"}]


def canary_world(rollout: Json | None = None) -> FakeKube:
    validated = {"conditions": [{"type": "Validated", "status": "True", "reason": "DigestOk"}]}
    model: Json = {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": NS},
        "spec": {
            "version": "v1",
            "serving": {"replicas": 4},
            "rollout": rollout or {"strategy": "canary", "steps": STEPS},
        },
    }
    kube = FakeKube(
        (MODELS, model),
        (MODEL_VERSIONS, version("v1", **copy.deepcopy(validated))),
        (MODEL_VERSIONS, version("v2", **copy.deepcopy(validated))),
        (MONITOR_POLICIES, copy.deepcopy(POLICY)),
    )
    settle(kube)
    assert status(kube)["servingVersion"] == "v1"
    kube.obj(MODELS, NS, "iris")["spec"]["version"] = "v2"
    settle(kube)
    return kube


def settle(kube: FakeKube) -> None:
    """Reconcile, letting every Deployment's pods become ready, until nothing moves."""
    for _ in range(5):
        model_controller.reconcile(any_kube(kube), CONFIG, NS, "iris")
        for (plural, _, _), obj in kube.objects.items():
            if plural == DEPLOYMENTS.plural:
                obj["status"] = {"readyReplicas": obj["spec"]["replicas"]}


def status(kube: FakeKube) -> dict[str, Any]:
    return kube.obj(MODELS, NS, "iris")["status"]


def replicas(kube: FakeKube) -> dict[str, int]:
    return {
        name: obj["spec"]["replicas"]
        for (plural, _, name), obj in kube.objects.items()
        if plural == DEPLOYMENTS.plural
    }


def test_a_breach_of_the_candidate_aborts_its_canary_at_the_first_step() -> None:
    kube = canary_world()
    canary = status(kube)["canary"]
    assert (canary["phase"], canary["step"], canary["weight"]) == ("Progressing", 0, 25)
    assert replicas(kube) == {"iris-v1": 3, "iris-v2": 1}

    low = Source(0.5)
    evaluate(kube, low)
    evaluate(kube, low)
    assert {q.version for q in low.queries} == {"v2"}, "the candidate is judged alone"
    mark = kube.obj(MODEL_VERSIONS, NS, "iris-v2")["status"]["rolledBack"]
    assert mark["reason"] == "MonitorPolicy guard"
    settle(kube)
    canary = status(kube)["canary"]
    assert (canary["phase"], canary["step"], canary["weight"]) == ("Aborted", 0, 0)
    assert "MonitorPolicy guard" in canary["message"]
    assert status(kube)["servingVersion"] == "v1"
    assert replicas(kube) == {"iris-v1": 4}
    assert kube.obj(SERVICES, NS, "iris")["spec"]["selector"]["ciclo.dev/version"] == "v1"
    assert kube.obj(MODELS, NS, "iris")["spec"]["version"] == "v2", "spec untouched"
    assert len(kube.events("CanaryAborted")) == 1


def test_ciclo_promote_promotes_at_once_and_writes_status_only() -> None:
    kube = canary_world()
    assert canary_records.promote(any_kube(kube), NS, "iris", "looks good") == "v2"
    assert status(kube)["promoteRequest"]["version"] == "v2"
    settle(kube)
    assert status(kube)["servingVersion"] == "v2"
    assert status(kube)["canary"]["phase"] == "Promoted"
    assert "looks good" in status(kube)["canary"]["message"]
    assert status(kube)["promoteRequest"]["version"] == "v2", "the controller leaves it alone"
    with pytest.raises(canary_records.NoCanary, match="runs no canary"):
        canary_records.promote(any_kube(kube), NS, "iris", "again")


def test_ciclo_abort_marks_the_candidate_and_the_champion_takes_it_all_back() -> None:
    kube = canary_world()
    done = canary_records.abort(any_kube(kube), "img", NS, "iris", "not today")
    assert (done.bad, done.target) == ("v2", "v1")
    settle(kube)
    assert status(kube)["canary"]["phase"] == "Aborted"
    assert status(kube)["servingVersion"] == "v1"
    with pytest.raises(canary_records.NoCanary):
        canary_records.abort(any_kube(kube), "img", NS, "iris", "again")


class ByVersion:
    """A source answering each version's accuracy, on `samples` labelled predictions."""

    def __init__(self, accuracy: dict[str, float], samples: int) -> None:
        self.accuracy, self.samples = accuracy, samples
        self.windows: list[str] = []

    def read(self, query: Query) -> Reading:
        self.windows.append(query.window)
        return Reading(self.accuracy[query.version], self.samples)


AB: Json = {"split": 50, "sampleSize": 500, "promoteWinner": True}


def test_an_ab_test_names_the_better_version_and_promotes_it() -> None:
    kube = canary_world({"strategy": "abtest", "abtest": AB})
    canary = status(kube)["canary"]
    assert (canary["strategy"], canary["phase"], canary["weight"]) == ("abtest", "Progressing", 50)
    assert replicas(kube) == {"iris-v1": 2, "iris-v2": 2}
    early = ByVersion({"v1": 0.90, "v2": 0.95}, 100)
    evaluate(kube, early)
    assert "abtest" not in status(kube), "fewer labels than sampleSize: the test goes on"
    source = ByVersion({"v1": 0.90, "v2": 0.95}, 1000)
    evaluate(kube, source)
    verdict = status(kube)["abtest"]
    assert verdict["winner"] == "v2" and verdict["pValue"] < 0.05
    assert verdict["effect"] == pytest.approx(0.05)
    assert [a["total"] for a in verdict["arms"]] == [1000, 1000]
    tested = [w for w in source.windows if w != "5m"]  # the policy rule's own window
    assert tested and all(w.endswith("s") for w in tested), "judged over the test so far"
    settle(kube)
    assert status(kube)["servingVersion"] == "v2"
    assert status(kube)["canary"]["phase"] == "Promoted"
    assert "v2 wins" in status(kube)["canary"]["message"]


def test_an_ab_test_between_identical_versions_names_none_and_keeps_the_champion() -> None:
    kube = canary_world({"strategy": "abtest", "abtest": AB})
    evaluate(kube, ByVersion({"v1": 0.93, "v2": 0.93}, 1000))
    verdict = status(kube)["abtest"]
    assert "winner" not in verdict and verdict["pValue"] > 0.5
    settle(kube)
    assert status(kube)["servingVersion"] == "v1"
    assert status(kube)["canary"]["phase"] == "Concluded"
    assert "no winner" in status(kube)["canary"]["message"]
    assert replicas(kube) == {"iris-v1": 4, "iris-v2": 0}
    progressing = {c["type"]: c for c in status(kube)["conditions"]}["Progressing"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ABTestConcluded")
    evaluate(kube, ByVersion({"v1": 0.93, "v2": 0.99}, 1000))
    assert "winner" not in status(kube)["abtest"], "a concluded test is not judged again"


def test_a_gateway_canary_owns_its_route_and_a_converged_one_is_not_written_again() -> None:
    kube = canary_world({"strategy": "canary", "steps": STEPS, "gateway": {"name": "web"}})
    route = kube.obj(HTTP_ROUTES, NS, "iris")
    backends = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert backends == {"iris-v-v1": 90, "iris-v-v2": 10}
    assert route["metadata"]["ownerReferences"][0]["kind"] == "Model"
    assert kube.obj(SERVICES, NS, "iris-v-v2")["spec"]["selector"]["ciclo.dev/version"] == "v2"
    writes = kube.count("apply", "httproutes")
    model_controller.reconcile(any_kube(kube), CONFIG, NS, "iris")
    assert kube.count("apply", "httproutes") == writes
