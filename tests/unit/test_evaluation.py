"""Rule evaluation as tables of cases: bounds, baselines, minSamples, thresholds, recovery."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ciclo.api.monitorpolicy import Rule, RuleStatus
from ciclo.monitoring.evaluation import Bounds, Reading, action_id, bounds, evaluate

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {"name": "r", "metric": "accuracy", "failureThreshold": 3}
    return Rule.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("spec", "baseline", "expected"),
    [
        ({"min": 0.85}, None, Bounds(0.85, None)),
        ({"max": 0.2, "metric": "feature_drift_psi"}, None, Bounds(None, 0.2)),
        ({"min": 0.1, "max": 0.9}, None, Bounds(0.1, 0.9)),
        # absolute drop below the offline accuracy
        ({"baseline": {"maxDrop": 0.05}}, 0.95, Bounds(0.9, None)),
        # relative drop: 10% of 0.8
        ({"baseline": {"maxDrop": 0.1, "relative": True}}, 0.8, Bounds(0.72, None)),
        # the stricter of a bound and the baseline wins
        ({"min": 0.92, "baseline": {"maxDrop": 0.05}}, 0.95, Bounds(0.92, None)),
        ({"min": 0.5, "baseline": {"maxDrop": 0.05}}, 0.95, Bounds(0.9, None)),
        # lower is better: the baseline allows a rise
        ({"metric": "error_rate", "baseline": {"maxDrop": 0.01}}, 0.02, Bounds(None, 0.03)),
        (
            {"metric": "latency_p99", "baseline": {"maxDrop": 0.5, "relative": True}},
            0.2,
            Bounds(None, 0.3),
        ),
        # baseline needed but unknown: nothing to judge by
        ({"baseline": {"maxDrop": 0.05}}, None, None),
        ({"baseline": {"maxDrop": 0.05}}, float("nan"), None),
    ],
)
def test_bounds(spec: dict[str, Any], baseline: float | None, expected: Bounds | None) -> None:
    got = bounds(rule(**spec), baseline)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.min, got.max) == pytest.approx((expected.min, expected.max))


@pytest.mark.parametrize(
    ("spec", "reading", "state", "count"),
    [
        ({"min": 0.85}, Reading(0.9, 500), "Ok", 0),
        ({"min": 0.85}, Reading(0.85, 500), "Ok", 0),  # the bound itself is healthy
        ({"min": 0.85}, Reading(0.6, 500), "Breaching", 1),
        ({"max": 0.2, "metric": "feature_drift_psi"}, Reading(0.35, 1000), "Breaching", 1),
        ({"max": 0.2, "metric": "feature_drift_psi"}, Reading(0.1, 1000), "Ok", 0),
        # too few labelled samples: NoData, however bad the value looks
        ({"min": 0.85, "minSamples": 100}, Reading(0.1, 99), "NoData", 0),
        ({"min": 0.85, "minSamples": 100}, Reading(0.1, None), "NoData", 0),
        ({"min": 0.85, "minSamples": 100}, Reading(0.1, 100), "Breaching", 1),
        # no value, NaN, a failed query: never a breach
        ({"min": 0.85}, Reading(None, 0), "NoData", 0),
        ({"min": 0.85}, Reading(float("nan"), 10), "NoData", 0),
        ({"min": 0.85}, Reading(error="prometheus unreachable"), "Error", 0),
        ({"baseline": {"maxDrop": 0.05}}, Reading(0.1, 10), "NoData", 0),  # no baseline value
    ],
)
def test_one_evaluation(spec: dict[str, Any], reading: Reading, state: str, count: int) -> None:
    verdict = evaluate(rule(**spec), reading, None, "v2", T0)
    assert verdict.status.state == state
    assert verdict.status.consecutive_breaches == count
    assert not verdict.act  # failureThreshold 3: one evaluation never acts


def run(
    readings: list[Reading], spec: dict[str, Any] | None = None, versions: str = ""
) -> list[tuple[str, int, bool]]:
    """Evaluate a sequence, each step fed the last status; (state, count, act) per step."""
    r = rule(**(spec or {"min": 0.85}))
    status: RuleStatus | None = None
    out = []
    for i, reading in enumerate(readings):
        version = versions[i] if versions else "2"
        v = evaluate(r, reading, status, f"v{version}", T0 + dt.timedelta(seconds=10 * i))
        status = v.status
        out.append((status.state, status.consecutive_breaches, v.act))
    return out


BAD, GOOD, NONE, ERR = Reading(0.6, 500), Reading(0.95, 500), Reading(None, 0), Reading(error="x")


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        # three in a row act, and a fourth still does (the record makes it happen once)
        (
            [BAD, BAD, BAD, BAD],
            [
                ("Breaching", 1, False),
                ("Breaching", 2, False),
                ("Breaching", 3, True),
                ("Breaching", 4, True),
            ],
        ),
        # a recovery resets the count
        (
            [BAD, BAD, GOOD, BAD, BAD],
            [
                ("Breaching", 1, False),
                ("Breaching", 2, False),
                ("Ok", 0, False),
                ("Breaching", 1, False),
                ("Breaching", 2, False),
            ],
        ),
        # NoData and errors neither count nor reset
        (
            [BAD, NONE, BAD, ERR, BAD],
            [
                ("Breaching", 1, False),
                ("NoData", 1, False),
                ("Breaching", 2, False),
                ("Error", 2, False),
                ("Breaching", 3, True),
            ],
        ),
        # a Prometheus outage alone never acts
        ([ERR] * 5, [("Error", 0, False)] * 5),
    ],
)
def test_consecutive_breaches(
    readings: list[Reading], expected: list[tuple[str, int, bool]]
) -> None:
    assert run(readings) == expected


def test_a_new_serving_version_starts_afresh() -> None:
    assert run([BAD, BAD, BAD], versions="221") == [
        ("Breaching", 1, False),
        ("Breaching", 2, False),
        ("Breaching", 1, False),
    ]


def test_an_episode_keeps_its_start_so_its_action_has_one_id() -> None:
    r = rule(min=0.85, failureThreshold=2)
    first = evaluate(r, BAD, None, "v2", T0).status
    second = evaluate(r, BAD, first, "v2", T0 + dt.timedelta(seconds=10))
    third = evaluate(r, BAD, second.status, "v2", T0 + dt.timedelta(seconds=20))
    assert second.act and third.act
    assert second.status.breaching_since == third.status.breaching_since == T0
    assert action_id("r", "v2", third.status.breaching_since) == "r/v2/20260101T000000Z"
    ok = evaluate(r, GOOD, third.status, "v2", T0 + dt.timedelta(seconds=30)).status
    assert ok.breaching_since is None
    again = evaluate(r, BAD, ok, "v2", T0 + dt.timedelta(seconds=40)).status
    assert again.breaching_since == T0 + dt.timedelta(seconds=40)


def test_status_says_value_threshold_and_why() -> None:
    status = evaluate(rule(min=0.85, minSamples=10), Reading(0.6, 200), None, "v2", T0).status
    assert (status.value, status.threshold, status.samples, status.version) == (
        0.6,
        ">= 0.85",
        200,
        "v2",
    )
    assert "0.6 outside >= 0.85 (1/3)" in status.message
    nodata = evaluate(rule(min=0.85), Reading(0.6), None, None, T0).status
    assert nodata.state == "NoData" and "serves no version" in nodata.message


@pytest.mark.parametrize(
    ("text", "expected"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2.5s", 2.5)]
)
def test_durations(text: str, expected: float) -> None:
    from ciclo.monitoring.evaluation import seconds

    assert seconds(text) == expected
    with pytest.raises(ValueError):
        seconds(text + "x")
