"""A MonitorPolicy's evaluation, planned: rules judged on what was observed, the actions due,
the records recovered after a restart, the conditions and the Model's mirrored alert."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import ActionRecord, MonitorPolicy
from ciclo.monitoring.evaluation import Reading, action_id
from ciclo.planning import monitorpolicy as planning
from ciclo.planning.monitorpolicy import Observed

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EPISODE = T0 - dt.timedelta(minutes=1)


def policy(action: str = "rollback", threshold: int = 2, **status: Any) -> MonitorPolicy:
    return MonitorPolicy.model_validate(
        {
            "metadata": {"name": "guard", "namespace": "ns", "uid": "p1", "generation": 3},
            "spec": {
                "modelRef": {"name": "iris"},
                "rules": [
                    {
                        "name": "acc",
                        "metric": "accuracy",
                        "min": 0.9,
                        "action": action,
                        "failureThreshold": threshold,
                    },
                    {"name": "lat", "metric": "latency_p99", "max": 0.5},
                ],
            },
            "status": status,
        }
    )


def breaching(count: int, version: str = "v2") -> dict[str, Any]:
    """A status whose `acc` rule has breached `count` times in a row on `version`."""
    return {
        "rules": [
            {
                "name": "acc",
                "state": "Breaching",
                "version": version,
                "consecutiveBreaches": count,
                "breachingSince": EPISODE.isoformat(),
            }
        ]
    }


def model(serving: str | None = "v2", **status: Any) -> Model:
    history = [
        {"version": "v2", "since": T0.isoformat()},
        {"version": "v1", "since": T0.isoformat()},
    ]
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "m1", "generation": 5},
            "spec": {"version": "v2"},
            "status": {"servingVersion": serving, "history": history, **status},
        }
    )


def version(name: str, **status: Any) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "metadata": {"name": f"iris-{name}", "namespace": "ns"},
            "spec": {
                "model": "iris",
                "version": name,
                "artifact": {"uri": f"file:///m/{name}", "format": "sklearn", "sha256": "a" * 64},
                "metrics": {"accuracy": 0.95},
            },
            "status": status,
        }
    )


VERSIONS = {"v1": version("v1"), "v2": version("v2")}
LOW = {"acc": Observed(Reading(0.5, 100)), "lat": Observed(Reading(0.1))}
GOOD = {"acc": Observed(Reading(0.97, 100)), "lat": Observed(Reading(0.1))}
IDENT = action_id("acc", "v2", EPISODE)


@pytest.mark.parametrize(
    ("previous", "observed", "states", "due"),
    [
        # first breach: counted, nothing due yet (failureThreshold 2)
        ({}, LOW, ["Breaching", "Ok"], []),
        # second breach in a row: the rollback is due, named by its episode
        (breaching(1), LOW, ["Breaching", "Ok"], [IDENT]),
        # a recovery resets the count: nothing due
        (breaching(1), GOOD, ["Ok", "Ok"], []),
        # no data is never a breach, and keeps the count where it was
        (breaching(1), {}, ["NoData", "NoData"], []),
        # another version serves now: the old one's breaches do not count against it
        (breaching(1, version="v1"), LOW, ["Breaching", "Ok"], []),
    ],
)
def test_rules_and_actions_due(
    previous: dict[str, Any], observed: dict[str, Observed], states: list[str], due: list[str]
) -> None:
    planned = planning.plan(policy(**previous), model(), VERSIONS, observed, None, T0)
    assert [r.state for r in planned.rules] == states
    assert [d.id for d in planned.due] == due
    assert all(d.version == "v2" and "accuracy 0.5 outside >= 0.9" in d.detail for d in planned.due)


def test_an_action_recorded_is_never_due_again() -> None:
    record = {"id": IDENT, "rule": "acc", "action": "rollback", "version": "v2", "at": T0}
    p = policy(**breaching(3), actions=[record])
    planned = planning.plan(p, model(), VERSIONS, LOW, None, T0)
    assert planned.due == [] and [r.id for r in planned.records] == [IDENT]


def test_a_restart_between_the_rollback_mark_and_the_record_recovers_the_record() -> None:
    """The mark carries the action id in a typed field; the next evaluation records it and
    does not roll back again (v1 serves by then, v2 is marked)."""
    mark = {
        "reason": "MonitorPolicy guard",
        "message": "rule acc: accuracy 0.5 outside >= 0.9",
        "at": T0,
        "action": IDENT,
    }
    versions = {"v1": version("v1"), "v2": version("v2", rolledBack=mark)}
    planned = planning.plan(policy(**breaching(2)), model("v1"), versions, GOOD, None, T0)
    assert planned.due == []
    [recovered] = planned.records
    assert (recovered.id, recovered.action, recovered.version) == (IDENT, "rollback", "v2")
    assert "[" not in recovered.message, "the id is a field, not part of the message"
    # Even while v2 still serves (the Model controller has not moved yet): not due twice.
    still = planning.plan(policy(**breaching(2)), model("v2"), versions, LOW, None, T0)
    assert still.due == [] and [r.id for r in still.records] == [IDENT]


def test_a_mark_by_someone_else_is_not_the_policys() -> None:
    mark = {"reason": "ManualRollback", "message": "by hand", "at": T0}
    versions = {"v1": version("v1"), "v2": version("v2", rolledBack=mark)}
    assert planning.plan(policy(), model("v1"), versions, GOOD, None, T0).records == []


def test_a_restart_between_the_retirement_and_the_record_recovers_the_record() -> None:
    retirement = {
        "version": "v2",
        "reason": "MonitorPolicy guard",
        "message": "traffic gone",
        "action": IDENT,
        "at": T0,
    }
    m = model("v2", retirement=retirement)
    planned = planning.plan(policy("retire", **breaching(2)), m, VERSIONS, LOW, None, T0)
    assert planned.due == []
    assert [(r.id, r.action, r.message) for r in planned.records] == [
        (IDENT, "retire", "retired: traffic gone")
    ]


def test_alerts_fire_on_every_evaluation_while_breaching_but_act_once() -> None:
    first = planning.plan(policy("alert", **breaching(1)), model(), VERSIONS, LOW, None, T0)
    assert [d.id for d in first.due] == [IDENT] and len(first.alerting) == 1
    assert first.acting == frozenset({"acc"})
    taken = [planning.record(d, "alert: sent", T0) for d in first.due]
    status = planning.status(policy("alert"), True, first, taken, T0)
    again = policy("alert", **status.model_dump(by_alias=True, mode="json"))
    second = planning.plan(again, model(), VERSIONS, LOW, None, T0)
    assert second.due == [] and len(second.alerting) == 1, "still firing, not sent again"


def test_without_a_model_or_source_every_rule_has_no_data_with_the_reason() -> None:
    planned = planning.plan(policy(), None, {}, {}, "model iris not found", T0)
    assert [r.state for r in planned.rules] == ["NoData", "NoData"]
    failing = planning.plan(policy(), model(), VERSIONS, {}, "no Prometheus URL", T0)
    assert [(r.state, r.message) for r in failing.rules] == [("Error", "no Prometheus URL")] * 2
    status = planning.status(policy(), True, failing, [], T0)
    by_type = {c.type: c for c in status.conditions}
    assert (by_type["Healthy"].status, by_type["Healthy"].reason) == ("False", "NoData")
    assert (by_type["NoData"].status, by_type["NoData"].reason) == ("True", "QueryError")


def test_the_status_owns_four_conditions_keeps_their_transition_times_and_caps_records() -> None:
    planned = planning.plan(policy(), model(), VERSIONS, GOOD, None, T0)
    records = [
        ActionRecord(id=f"acc/v2/{i}", rule="acc", action="alert", version="v2", at=T0)
        for i in range(60)
    ]
    first = planning.status(policy(), True, planned, records, T0)
    assert [c.type for c in first.conditions] == list(planning.POLICY_CONDITIONS)
    assert len(first.actions) == planning.MAX_ACTIONS and first.actions[-1].id == "acc/v2/59"
    later = T0 + dt.timedelta(minutes=5)
    p = policy(**first.model_dump(by_alias=True, mode="json"))
    second = planning.status(
        p, True, planning.plan(p, model(), VERSIONS, GOOD, None, later), [], later
    )
    assert all(c.last_transition_time == T0 for c in second.conditions), "nothing changed"
    assert second.last_evaluation_time == later


def test_a_failed_evaluation_leaves_healthy_unknown_and_drops_other_writers_conditions() -> None:
    other = {"type": "PrometheusRule", "status": "True", "reason": "Applied", "message": "ok"}
    healthy = {"type": "Healthy", "status": "True", "reason": "AllRulesOk", "message": "ok"}
    p = policy(conditions=[other, healthy], **breaching(1))
    failed = planning.failed(p, "ApiError: 500", T0)
    assert [(c.type, c.status, c.reason) for c in failed.conditions] == [
        ("Healthy", "Unknown", "EvaluationFailed")
    ]
    assert failed.rules == p.status.rules, "the last evaluation's rules stay"


def test_the_mirrored_alert_is_written_only_when_it_says_something_new() -> None:
    assert planning.alert_condition(model(), "guard", [], T0) is None, "never fired: silent"
    firing = planning.alert_condition(model(), "guard", ["rule acc: ..."], T0)
    assert firing is not None and (firing.status, firing.reason) == ("True", "RuleBreached")
    m = model(conditions=[firing.model_dump(by_alias=True, mode="json")])
    assert planning.alert_condition(m, "guard", ["rule acc: ..."], T0) is None
    cleared = planning.alert_condition(m, "guard", [], T0)
    assert cleared is not None and (cleared.status, cleared.reason) == ("False", "NoAlert")


def test_offline_and_previous_version_baselines() -> None:
    p = policy()
    assert planning.previous_version(model()) == "v1"
    assert planning.previous_version(None) is None
    assert planning.offline_baseline(p.spec.rules[0], VERSIONS, "v2") == 0.95
    assert planning.offline_baseline(p.spec.rules[0], VERSIONS, "v9") is None
