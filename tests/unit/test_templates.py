"""Built-in metrics as PromQL, placeholders, and the pods source's combination of /metrics."""

from __future__ import annotations

import math

import pytest

from ciclo.drift.window import Drift
from ciclo.monitoring import templates
from ciclo.monitoring.sources import Credentials, combine, parse
from ciclo.serving.feedback import Quality
from ciclo.serving.metrics import RuntimeMetrics, Snapshot

CTX = templates.Context("prod", "iris", "v2", "10m")


def test_every_built_in_metric_has_a_value_and_a_samples_query() -> None:
    from typing import get_args

    from ciclo.api.monitorpolicy import Metric

    assert set(templates.VALUES) == set(templates.SAMPLES) == set(get_args(Metric))


@pytest.mark.parametrize("metric", sorted(templates.VALUES))
def test_templates_fill_every_placeholder_and_select_the_version(metric: str) -> None:
    value, samples = templates.queries(metric, None, CTX)
    for q in (value, samples):
        assert q is not None
        assert "{{" not in q and "}}" not in q
        assert 'namespace="prod",model="iris",version="v2"' in q
        assert q.count("(") == q.count(")")


def test_accuracy_is_correct_over_matched_feedback_in_the_window() -> None:
    value, samples = templates.queries("accuracy", None, CTX)
    assert value == (
        'sum (increase(ciclo_feedback_correct_total{namespace="prod",model="iris",version="v2"}'
        "[10m])) / sum (increase(ciclo_feedback_total"
        '{namespace="prod",model="iris",version="v2",outcome="matched"}[10m]))'
    )
    assert samples == value.split(" / ")[1]


def test_drift_of_one_feature_or_the_largest() -> None:
    one = templates.queries("feature_drift_psi", None, templates.Context("n", "m", "v", "5m", "a"))
    assert one[0] == 'max(ciclo_drift_psi{namespace="n",model="m",version="v",feature="a"})'
    every = templates.queries("feature_drift_psi", None, templates.Context("n", "m", "v", "5m"))
    assert every[0] == 'max(ciclo_drift_psi{namespace="n",model="m",version="v"})'


def test_a_rules_own_promql_and_escaped_label_values() -> None:
    q, samples = templates.queries(
        None, 'avg_over_time(x{model="{{model}}",v="{{version}}"}[{{window}}])', CTX
    )
    assert (q, samples) == ('avg_over_time(x{model="iris",v="v2"}[10m])', None)
    sneaky = templates.Context("n", 'a"}or vector(1)#', "v", "5m")
    assert templates.render('x{model="{{model}}"}', sneaky) == 'x{model="a\\"}or vector(1)#"}'
    with pytest.raises(ValueError, match="unknown metric"):
        templates.queries("nope", None, CTX)


def test_credentials_header() -> None:
    assert Credentials(bearer_token="t0k\n").header() == "Bearer t0k"
    assert Credentials(username="u", password="p").header() == "Basic dTpw"
    assert Credentials().header() is None


def exposition(quality: Quality | None, drift: list[Drift] | None, samples: int) -> str:
    """What a real runtime serves on /metrics for this window state."""
    metrics = RuntimeMetrics("iris", "v2")
    metrics.watch(lambda: Snapshot(quality, drift, None, samples))
    return metrics.exposition().decode()


def test_pods_are_combined_weighted_by_their_samples() -> None:
    a = parse(exposition(Quality(0.9, 0.8, 0.8, 0.8, 300), [Drift("x", 0.1, 0.05, None)], 100))
    b = parse(exposition(Quality(0.5, 0.4, 0.4, 0.4, 100), [Drift("x", 0.5, 0.3, None)], 300))
    accuracy = combine("accuracy", None, [a, b])
    assert accuracy.value == pytest.approx((0.9 * 300 + 0.5 * 100) / 400)
    assert accuracy.samples == 400
    psi = combine("feature_drift_psi", None, [a, b])
    assert psi.value == pytest.approx((0.1 * 100 + 0.5 * 300) / 400)
    assert psi.samples == 400


def test_an_empty_window_is_no_value() -> None:
    empty = parse(exposition(Quality(math.nan, math.nan, math.nan, math.nan, 0), None, 0))
    assert combine("accuracy", None, [empty]).value is None
    assert combine("feature_drift_psi", None, [empty]).value is None


def test_error_rate_and_latency_from_the_pods_counters() -> None:
    metrics = RuntimeMetrics("iris", "v2")
    for _ in range(90):
        metrics.outcomes["success"].inc()
        metrics.duration.observe(0.003)
    for _ in range(10):
        metrics.outcomes["server_error"].inc()
        metrics.duration.observe(0.2)
    samples = parse(metrics.exposition().decode())
    errors = combine("error_rate", None, [samples])
    assert (errors.value, errors.samples) == (pytest.approx(0.1), 100)
    p99 = combine("latency_p99", None, [samples])
    assert p99.value is not None and 0.1 < p99.value <= 0.25  # in the 0.1-0.25 bucket
    assert combine("latency_p99", None, [[]]).value is None
