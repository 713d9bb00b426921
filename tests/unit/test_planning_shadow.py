"""A shadow, planned: the candidate takes a mirror of the requests and none of the
answers, then is promoted or held out on the comparison (planning.shadow), and the
Model's route mirrors through the Gateway API's filter or a Traefik TraefikService."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from test_planning_model import IMAGE, T0, after, cond, mv, ready, settle

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.monitoring.evaluation import Reading
from ciclo.planning import shadow
from ciclo.planning.model import ModelPlan, plan

S = dt.timedelta(seconds=1)
SHADOW = {"duration": "5m", "minSamples": 100, "maxAccuracyDrop": 0.02, "maxDisagreement": 0.1}


def shadow_model(version: str, mirror: str = "RequestMirror", **status: Any) -> Model:
    rollout = {"strategy": "shadow", "shadow": SHADOW, "gateway": {"name": "web", "mirror": mirror}}
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"version": version, "serving": {"replicas": 3}, "rollout": rollout},
            "status": status,
        }
    )


def sizes(p: ModelPlan) -> dict[str, int]:
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in p.deployments}


def shadowing(mirror: str = "RequestMirror") -> tuple[Model, list[ModelVersion], ModelPlan]:
    """v1 serves; spec.version moved to v2, whose one pod came up and took the mirror."""
    m, versions, p, _ = settle(shadow_model("v1", mirror), [mv("v1"), mv("v2")])
    assert p.status.serving_version == "v1"
    spec = m.spec.model_copy(update={"version": "v2"})
    m = m.model_copy(update={"spec": spec})
    p = plan(m, versions, ready(p), IMAGE, T0)
    assert sizes(p) == {"iris-v1": 3, "iris-v2": 1}, "one pod of the candidate, the champion whole"
    m, versions = after(m, p, versions)
    p = plan(m, versions, ready(p), IMAGE, T0 + S)
    return m, versions, p


def rules(p: ModelPlan) -> list[dict[str, Any]]:
    assert p.route is not None
    found: list[dict[str, Any]] = p.route["spec"]["rules"]
    return found


def test_a_shadow_mirrors_inference_and_answers_from_the_champion_only():
    _, _, p = shadowing()
    canary = p.status.canary
    assert canary is not None and (canary.strategy, canary.phase, canary.weight) == (
        "shadow",
        "Progressing",
        0,
    )
    assert "answers discarded" in canary.message
    assert p.status.serving_version == "v1"
    everything, infer = rules(p)
    assert [b["name"] for b in everything["backendRefs"]] == ["iris-v-v1"]
    assert infer["matches"] == [{"path": {"type": "Exact", "value": "/v2/models/iris/infer"}}]
    assert infer["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "iris-v-v2", "port": 80}
            },
        }
    ]
    assert [b["name"] for b in infer["backendRefs"]] == ["iris-v-v1"]
    assert {s["metadata"]["name"] for s in p.version_services} == {"iris-v-v1", "iris-v-v2"}
    assert p.traefik_mirror is None
    assert p.service is not None and p.service["spec"]["selector"]["ciclo.dev/version"] == "v1"


def test_on_traefik_the_route_names_a_mirroring_traefik_service():
    _, _, p = shadowing("TraefikService")
    _, infer = rules(p)
    assert "filters" not in infer
    assert infer["backendRefs"] == [
        {"group": "traefik.io", "kind": "TraefikService", "name": "iris-shadow"}
    ]
    assert p.traefik_mirror is not None
    assert p.traefik_mirror["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert p.traefik_mirror["spec"]["mirroring"] == {
        "name": "iris-v-v1",
        "port": 80,
        "mirrors": [{"name": "iris-v-v2", "port": 80, "percent": 100}],
    }


def verdict(m: Model, promote: bool, at: dt.datetime) -> Model:
    """What the monitoring loop records (records.verdicts) once the shadow is judged."""
    canary = m.status.canary
    assert canary is not None
    status = m.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    status["shadow"] = {
        "version": "v2",
        "champion": "v1",
        "since": canary.since.isoformat(),
        "promote": promote,
        "message": "shadow of v2 passed" if promote else "shadow of v2 failed: accuracy",
        "at": at.isoformat(),
    }
    return Model.model_validate({**m.model_dump(by_alias=True, mode="json"), "status": status})


def test_a_passing_shadow_promotes_with_status_only():
    m, versions, p = shadowing("TraefikService")
    m, versions = after(m, p, versions)
    p = plan(verdict(m, True, T0 + 301 * S), versions, ready(p), IMAGE, T0 + 302 * S)
    assert p.status.serving_version == "v2"
    assert p.status.canary is not None and p.status.canary.phase == "Promoted"
    assert [e.reason for e in p.events if e.reason.startswith("Shadow")] == ["ShadowPromoted"]
    assert [b["name"] for b in rules(p)[0]["backendRefs"]] == ["iris-v-v2"]
    assert len(rules(p)) == 1 and p.traefik_mirror is None, "the mirror ends with the shadow"
    assert m.spec.version == "v2"


def test_a_failing_shadow_is_never_exposed_and_holds_its_candidate_out():
    m, versions, p = shadowing()
    m, versions = after(m, p, versions)
    p = plan(verdict(m, False, T0 + 301 * S), versions, ready(p), IMAGE, T0 + 302 * S)
    assert p.status.serving_version == "v1"
    assert p.status.canary is not None and p.status.canary.phase == "Aborted"
    assert sizes(p) == {"iris-v1": 3, "iris-v2": 0}, "the candidate keeps no pod"
    assert len(rules(p)) == 1 and [b["name"] for b in rules(p)[0]["backendRefs"]] == ["iris-v-v1"]
    assert [e.reason for e in p.events if e.reason.startswith("Shadow")] == ["ShadowAborted"]
    assert cond(p, "Degraded").reason == "ShadowAborted"
    assert "accuracy" in cond(p, "Progressing").message
    m, versions = after(m, p, versions)
    later = plan(m, versions, ready(p), IMAGE, T0 + 900 * S)
    assert later.status.canary == p.status.canary, "no new shadow of the same candidate"
    assert sizes(later).get("iris-v2", 0) == 0 and later.events == []


def reading(value: float | None, samples: int = 0) -> Reading:
    return Reading(value, samples)


def running(since: dt.datetime = T0) -> Model:
    canary = {
        "version": "v2",
        "champion": "v1",
        "strategy": "shadow",
        "step": 0,
        "weight": 0,
        "stepSince": since.isoformat(),
        "since": since.isoformat(),
    }
    return shadow_model("v2", canary=canary)


GOOD = {"v1": reading(0.95, 500), "v2": reading(0.96, 480)}
FAST = {"v1": reading(0.004, 900), "v2": reading(0.005, 900)}


@pytest.mark.parametrize(
    ("case", "accuracy", "agreement", "latency", "failed"),
    [
        ("passes", GOOD, reading(0.97, 480), FAST, []),
        ("within-the-drop", {**GOOD, "v2": reading(0.935, 480)}, reading(0.95, 480), FAST, []),
        ("worse", {**GOOD, "v2": reading(0.6, 480)}, reading(0.95, 480), FAST, ["accuracy 0.600"]),
        ("too-few-labels", {**GOOD, "v2": reading(0.99, 40)}, reading(1.0, 40), FAST, ["40 lab"]),
        ("no-labels", {}, reading(None), FAST, ["0 labelled", "no labelled rows"]),
        ("disagrees", GOOD, reading(0.8, 480), FAST, ["disagreement 0.200"]),
        ("slow", GOOD, reading(0.97, 480), {**FAST, "v2": reading(0.02, 900)}, ["p99 latency"]),
        ("latency-unknown", GOOD, reading(0.97, 480), {}, []),
    ],
)
def test_the_verdict(
    case: str,
    accuracy: dict[str, Reading],
    agreement: Reading,
    latency: dict[str, Reading],
    failed: list[str],
) -> None:
    result = shadow.conclude(running(), accuracy, agreement, latency, T0 + 300 * S)
    assert result is not None, case
    assert result.promote == (not failed), (case, result.failed)
    assert len(result.failed) == len(failed), (case, result.failed)
    for expected, found in zip(failed, result.failed, strict=True):
        assert expected in found, (case, found)
    assert result.since == T0 and result.version == "v2" and result.champion == "v1"
    assert ("passed" if not failed else "failed") in result.message, case


def test_no_verdict_before_the_duration_nor_twice():
    assert shadow.window(running(), T0 + 299 * S) is None
    assert shadow.window(running(), T0 + 300 * S) == "300s"
    assert shadow.conclude(running(), GOOD, reading(1.0, 480), FAST, T0 + 299 * S) is None
    done = shadow.conclude(running(), GOOD, reading(1.0, 480), FAST, T0 + 300 * S)
    assert done is not None
    m = running()
    status = m.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    status["shadow"] = done.model_dump(by_alias=True, mode="json", exclude_none=True)
    judged = Model.model_validate({**m.model_dump(by_alias=True, mode="json"), "status": status})
    assert shadow.window(judged, T0 + 400 * S) is None
