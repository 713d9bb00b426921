"""The canary planner: steps, weights, replicas, promotion and abort, as a table and as a
Model's plan over time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from test_planning_model import IMAGE, T0, after, cond, mark_bad, mv, ready, settle

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy, RuleStatus
from ciclo.api.rollout import CanaryStatus
from ciclo.planning import manifests
from ciclo.planning.model import ModelPlan, plan
from ciclo.planning.rollout import Split, aborting_rules, decide, judged, replica_split

STEPS = [
    {"weight": 10, "pause": "1m"},
    {"weight": 50, "pause": "1m"},
    {"weight": 100, "pause": "30s"},
]


def canary_model(version: str, replicas: int = 10, gateway: bool = False, **status: Any) -> Model:
    rollout: dict[str, Any] = {"strategy": "canary", "steps": STEPS}
    if gateway:
        rollout["gateway"] = {"name": "web"}
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"version": version, "serving": {"replicas": replicas}, "rollout": rollout},
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("replicas", "weight", "gateway", "expected"),
    [
        (10, 10, False, Split(9, 1, 10)),
        (10, 50, False, Split(5, 5, 50)),
        (10, 100, False, Split(0, 10, 100)),
        (4, 10, False, Split(3, 1, 25)),  # the rounding is reported, not hidden
        (1, 10, False, Split(1, 1, 50)),
        (10, 10, True, Split(10, 1, 10)),  # a Gateway's weights are exact
        (3, 50, True, Split(3, 2, 50)),
    ],
)
def test_replica_split(replicas: int, weight: int, gateway: bool, expected: Split) -> None:
    assert replica_split(replicas, weight, gateway) == expected


def running_canary(step: int, since: dt.datetime, **update: Any) -> CanaryStatus:
    return CanaryStatus(
        version="v2", champion="v1", step=step, weight=0, step_since=since, since=T0, **update
    )


S = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("case", "canary", "candidate", "ready", "at", "phase", "step", "active", "promote"),
    [
        ("waits-for-first-pods", None, "v2", 0, T0, None, None, False, False),
        ("starts-at-step-0", None, "v2", 1, T0, "Progressing", 0, True, False),
        ("pause-holds", running_canary(0, T0), "v2", 1, T0 + 59 * S, "Progressing", 0, True, False),
        ("pause-ends", running_canary(0, T0), "v2", 1, T0 + 60 * S, "Progressing", 1, True, False),
        (
            "step-pods-not-ready",
            running_canary(1, T0),
            "v2",
            1,
            T0 + 90 * S,
            "Progressing",
            1,
            True,
            False,
        ),
        (
            "last-step-promotes",
            running_canary(2, T0),
            "v2",
            10,
            T0 + 30 * S,
            "Promoted",
            2,
            False,
            True,
        ),
        (
            "rolled-back-aborts",
            running_canary(1, T0),
            None,
            5,
            T0 + 5 * S,
            "Aborted",
            1,
            False,
            False,
        ),
        (
            "new-version-restarts",
            running_canary(1, T0),
            "v3",
            1,
            T0 + 5 * S,
            "Progressing",
            0,
            True,
            False,
        ),
    ],
)
def test_decide(
    case: str,
    canary: CanaryStatus | None,
    candidate: str | None,
    ready: int,
    at: dt.datetime,
    phase: str | None,
    step: int | None,
    active: bool,
    promote: bool,
) -> None:
    m = canary_model("v2", canary=canary.model_dump(by_alias=True, mode="json") if canary else None)
    d = decide(m, "v1", candidate, ready, at, "rule accuracy breached")
    assert (d.canary.phase if d.canary else None) == phase, case
    assert (d.canary.step if d.canary else None) == step, case
    assert (d.active, d.promote) == (active, promote), case
    if phase == "Aborted":
        assert d.canary is not None and d.canary.message == "rule accuracy breached"
        assert d.canary.weight == 0 and d.canary.until == at


def serving_v1(**kw: Any) -> tuple[Model, list[ModelVersion], ModelPlan]:
    versions = [mv("v1"), mv("v2")]
    m, versions, p, _ = settle(canary_model("v1", **kw), versions)
    assert p.status.serving_version == "v1"
    return m, versions, p


def to_v2(m: Model) -> Model:
    spec = m.spec.model_copy(update={"version": "v2"})
    return m.model_copy(update={"spec": spec})


def sizes(p: ModelPlan) -> dict[str, int]:
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in p.deployments}


def test_a_good_canary_walks_every_step_then_promotes_with_status_only():
    m, versions, p = serving_v1()
    m = to_v2(m)
    p = plan(m, versions, ready(p), IMAGE, T0)
    assert sizes(p) == {"iris-v1": 10, "iris-v2": 1}, "the candidate comes up at its first share"
    assert p.status.serving_version == "v1" and p.status.canary is None
    m, versions = after(m, p, versions)
    p = plan(m, versions, ready(p), IMAGE, T0 + S)
    assert p.status.canary is not None and p.status.canary.phase == "Progressing"
    assert (p.status.canary.step, p.status.canary.weight) == (0, 10)
    assert sizes(p) == {"iris-v1": 9, "iris-v2": 1}
    assert p.service is not None and manifests.VERSION_LABEL not in p.service["spec"]["selector"]
    assert cond(p, "Progressing").reason == "Canary"
    assert [e.reason for e in p.events] == ["CanaryStep"]
    assert judged(after(m, p, versions)[0]) == "v2", "the policy judges the candidate alone"

    t = T0 + S
    seen: list[tuple[int, int]] = []
    for _ in range(8):
        m, versions = after(m, p, versions)
        # Re-applying the same Model changes nothing: the step holds its timestamp.
        again = plan(m, versions, ready(p), IMAGE, t)
        assert again.status.canary == p.status.canary
        t += 30 * S
        p = plan(m, versions, ready(p), IMAGE, t)
        if p.status.canary is not None and p.status.canary.phase == "Progressing":
            seen.append((p.status.canary.step, p.status.canary.weight))
        if p.status.serving_version == "v2":
            break
    assert p.status.serving_version == "v2"
    assert p.status.canary is not None and p.status.canary.phase == "Promoted"
    assert (1, 50) in seen and (2, 100) in seen
    assert "CanaryPromoted" in [e.reason for e in p.events]
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v2"
    assert m.spec.version == "v2", "promotion is status, never a spec write"


def test_a_breach_at_the_first_step_aborts_back_to_the_champion():
    m, versions, p = serving_v1()
    m = to_v2(m)
    p = plan(m, versions, ready(p), IMAGE, T0)
    m, versions = after(m, p, versions)
    p = plan(m, versions, ready(p), IMAGE, T0 + S)
    m, versions = after(m, p, versions)
    assert p.status.canary is not None and p.status.canary.step == 0
    versions = mark_bad(versions, "v2")  # what a MonitorPolicy's rollback action writes
    p = plan(m, versions, ready(p), IMAGE, T0 + 20 * S)
    assert p.status.serving_version == "v1"
    assert p.status.canary is not None and p.status.canary.phase == "Aborted"
    assert p.status.canary.step == 0 and p.status.canary.weight == 0
    assert "ManualRollback" in p.status.canary.message
    assert sizes(p) == {"iris-v1": 10}
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    assert cond(p, "Degraded").status == "True"
    assert [e.reason for e in p.events] == ["CanaryAborted"]
    m, versions = after(m, p, versions)
    later = plan(m, versions, ready(p), IMAGE, T0 + 600 * S)
    assert later.status.canary == p.status.canary and later.events == []
    assert cond(later, "Progressing").status == "False", "the champion is back at full size"


def test_a_gateway_canary_keeps_the_champion_at_full_size():
    m, versions, p = serving_v1(gateway=True)
    m = to_v2(m)
    p = plan(m, versions, ready(p), IMAGE, T0)
    m, versions = after(m, p, versions)
    p = plan(m, versions, ready(p), IMAGE, T0 + S)
    assert sizes(p) == {"iris-v1": 10, "iris-v2": 1}
    assert p.status.canary is not None and p.status.canary.weight == 10
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    assert weights(p) == {"iris-v-v1": 90, "iris-v-v2": 10}
    assert p.route is not None and p.route["spec"]["parentRefs"][0]["name"] == "web"
    assert p.route["metadata"]["ownerReferences"][0]["uid"] == "u1"
    match = p.route["spec"]["rules"][0]["matches"][0]["path"]
    assert match == {"type": "PathPrefix", "value": "/v2/models/iris"}
    selectors = {s["metadata"]["name"]: s["spec"]["selector"] for s in p.version_services}
    assert selectors["iris-v-v2"] == {manifests.MODEL_LABEL: "iris", manifests.VERSION_LABEL: "v2"}
    m, versions = after(m, p, versions)
    versions = mark_bad(versions, "v2")
    p = plan(m, versions, ready(p), IMAGE, T0 + 2 * S)
    assert weights(p) == {"iris-v-v1": 100}, "an abort puts every request back on the champion"


def weights(p: ModelPlan) -> dict[str, int]:
    assert p.route is not None
    return {b["name"]: b["weight"] for b in p.route["spec"]["rules"][0]["backendRefs"]}


def test_the_first_version_of_a_model_switches_in_without_a_canary():
    _, _, p, seen = settle(canary_model("v1"), [mv("v1")])
    assert p.status.serving_version == "v1" and p.status.canary is None and seen == ["Serving"]


def rule(state: str, version: str = "v2", at: dt.datetime | None = None) -> RuleStatus:
    return RuleStatus(name="accuracy", state=state, version=version, last_evaluated=at)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "rules", "step", "waiting"),
    [
        ("no-rule-the-pause-decides", [], 1, None),
        ("judged-ok-since-the-step", [rule("Ok", at=T0 + 30 * S)], 1, None),
        ("not-yet-evaluated", [rule("Ok", at=None)], 0, "to judge v2"),
        ("judged-before-the-step", [rule("Ok", at=T0 - S)], 0, "to judge v2"),
        ("judged-the-champion", [rule("Ok", version="v1", at=T0 + 30 * S)], 0, "to judge v2"),
        ("too-few-labels", [rule("NoData", at=T0 + 30 * S)], 0, "(NoData)"),
        ("breaching-below-threshold", [rule("Breaching", at=T0 + 30 * S)], 0, "(Breaching)"),
        ("one-of-two-unjudged", [rule("Ok", at=T0 + 30 * S), rule("Ok", at=None)], 0, "judge"),
    ],
)
def test_a_step_ends_only_once_its_rules_judged_the_candidate_ok(
    case: str, rules: list[RuleStatus], step: int, waiting: str | None
) -> None:
    """The pause is over in every case; the policy's verdict decides whether step 1 ends."""
    m = canary_model("v2", canary=running_canary(0, T0).model_dump(by_alias=True, mode="json"))
    d = decide(m, "v1", "v2", 10, T0 + 61 * S, None, rules)
    assert d.canary is not None and (d.canary.phase, d.canary.step) == ("Progressing", step), case
    assert d.active and not d.promote, case
    if waiting is None:
        assert d.canary.step_since == T0 + 61 * S, case
    else:
        assert waiting in d.canary.message and d.canary.step_since == T0, case
        assert d.requeue_after is not None and d.requeue_after <= 5, case


def test_the_aborting_rules_are_the_rollback_rules_of_the_models_policies() -> None:
    def policy(model: str) -> MonitorPolicy:
        return MonitorPolicy.model_validate(
            {
                "metadata": {"name": model, "namespace": "ns"},
                "spec": {
                    "modelRef": {"name": model},
                    "rules": [
                        {
                            "name": "accuracy",
                            "metric": "accuracy",
                            "min": 0.9,
                            "action": "rollback",
                        },
                        {"name": "drift", "metric": "prediction_drift_psi", "max": 0.2},
                    ],
                },
                "status": {
                    "rules": [
                        {"name": "accuracy", "state": "Ok", "version": "v2"},
                        {"name": "drift", "state": "NoData", "version": "v2"},
                    ]
                },
            }
        )

    found = aborting_rules([policy("iris"), policy("other")], "iris")
    assert [(r.name, r.state) for r in found] == [("accuracy", "Ok")]
