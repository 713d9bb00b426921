"""A MonitorPolicy's rules as a PrometheusRule: the operator's PromQL and limits, checked
by promtool (the pinned Prometheus's) as Prometheus would load them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.monitoring import templates
from ciclo.planning.prometheusrule import alert_name, duration, prometheus_rule

PROMTOOL = (
    Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo")) / "bin" / "promtool"
)
ACCURACY_V2 = templates.queries("accuracy", None, templates.Context("ns", "iris", "v2", "5m"))


def policy(*rules: dict[str, Any], interval: str = "30s") -> MonitorPolicy:
    return MonitorPolicy.model_validate(
        {
            "metadata": {"name": "iris-quality", "namespace": "ns", "uid": "p1", "generation": 2},
            "spec": {
                "modelRef": {"name": "iris"},
                "interval": interval,
                "alerting": {"prometheusRule": True},
                "rules": list(rules),
            },
        }
    )


def alerts(p: MonitorPolicy, **kw: Any) -> list[dict[str, Any]]:
    planned = prometheus_rule(p, "v2", kw.pop("offline", {}), **kw)
    (group,) = planned.manifest["spec"]["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def test_extra_labels_go_on_the_object_not_the_alerts() -> None:
    p = policy({"name": "a", "metric": "accuracy", "min": 0.8})
    planned = prometheus_rule(p, "v2", {}, extra_labels={"release": "kps"})
    assert planned.manifest["metadata"]["labels"]["release"] == "kps"
    assert "release" not in planned.manifest["spec"]["groups"][0]["rules"][0]["labels"]


def test_a_bound_is_the_alert_on_the_serving_version_for_threshold_times_interval() -> None:
    p = policy({"name": "accuracy-floor", "metric": "accuracy", "min": 0.8, "failureThreshold": 4})
    planned = prometheus_rule(p, "v2", {})
    meta = planned.manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == ("iris-quality", "ns")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": "MonitorPolicy",
            "name": "iris-quality",
            "uid": "p1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["ciclo.dev/model"] == "iris"
    (group,) = planned.manifest["spec"]["groups"]
    assert group["interval"] == "30s"
    (alert,) = group["rules"]
    assert alert["alert"] == "ciclo_accuracy_floor"
    assert alert["expr"] == f"({ACCURACY_V2[0]}) < 0.8"
    assert alert["for"] == "120s"
    assert alert["labels"] == {
        "namespace": "ns",
        "model": "iris",
        "version": "v2",
        "monitorpolicy": "iris-quality",
        "rule": "accuracy-floor",
        "action": "alert",
        "severity": "warning",
    }
    assert alert["annotations"]["summary"] == "iris v2: accuracy is {{ $value }}; wanted >= 0.8"
    assert (planned.alerts, planned.skipped) == (1, [])


def test_min_and_max_either_breach_and_actions_set_severity() -> None:
    (alert,) = alerts(
        policy(
            {"name": "latency", "metric": "latency_p99", "min": 0, "max": 0.5, "action": "rollback"}
        )
    )
    value = templates.queries("latency_p99", None, templates.Context("ns", "iris", "v2", "5m"))[0]
    assert alert["expr"] == f"({value}) < 0 or ({value}) > 0.5"
    assert alert["labels"]["severity"] == "critical"
    assert "wanted >= 0 and <= 0.5" in alert["annotations"]["summary"]


def test_min_samples_guards_the_alert_as_no_data_guards_the_operator() -> None:
    (alert,) = alerts(policy({"name": "a", "metric": "accuracy", "min": 0.8, "minSamples": 50}))
    value, samples = ACCURACY_V2
    assert alert["expr"] == f"(({value}) < 0.8) and on() (({samples}) >= 50)"


def test_an_offline_baseline_becomes_a_bound_from_the_versions_metrics() -> None:
    p = policy({"name": "f1", "metric": "f1", "baseline": {"maxDrop": 0.05}})
    (alert,) = alerts(p, offline={"f1": 0.95})
    assert alert["expr"].endswith(") < 0.9")
    lower = policy(
        {
            "name": "err",
            "metric": "error_rate",
            "max": 0.2,
            "baseline": {"maxDrop": 0.5, "relative": True, "metric": "errors"},
        }
    )
    (alert,) = alerts(lower, offline={"errors": 0.1})
    assert alert["expr"].endswith(") > 0.15")


def test_a_previous_baseline_compares_with_the_previous_versions_live_value() -> None:
    p = policy(
        {
            "name": "acc",
            "metric": "accuracy",
            "baseline": {"source": "previous", "maxDrop": 0.1, "relative": True},
        }
    )
    (alert,) = alerts(p, previous="v1")
    v1 = templates.queries("accuracy", None, templates.Context("ns", "iris", "v1", "5m"))[0]
    assert alert["expr"] == f"({ACCURACY_V2[0]}) < ignoring(version) (({v1}) - 0.1 * abs({v1}))"
    assert "wanted at most 10% below version v1" in alert["annotations"]["summary"]


def test_a_query_of_its_own_is_rendered_with_the_placeholders() -> None:
    query = (
        'sum(rate(x{namespace="{{namespace}}",model="{{model}}",version="{{version}}"}'
        "[{{window}}]))"
    )
    (alert,) = alerts(policy({"name": "custom", "query": query, "max": 5, "window": "10m"}))
    assert alert["expr"] == '(sum(rate(x{namespace="ns",model="iris",version="v2"}[10m]))) > 5'
    assert alert["annotations"]["summary"].startswith("iris v2: the query is")


def test_rules_the_operator_cannot_judge_are_left_out_and_said_so() -> None:
    p = policy(
        {"name": "ok", "metric": "accuracy", "min": 0.5},
        {"name": "offline", "metric": "f1", "baseline": {"maxDrop": 0.05}},
        {"name": "previous", "metric": "f1", "baseline": {"source": "previous", "maxDrop": 0.05}},
        {"name": "samples", "query": "up", "min": 1, "minSamples": 10},
    )
    planned = prometheus_rule(p, "v2", {})
    assert planned.alerts == 1
    assert [s.split(":")[0] for s in planned.skipped] == ["offline", "previous", "samples"]
    assert "version v2 has no offline metric f1" in planned.skipped[0]


@pytest.mark.parametrize(
    ("seconds", "text"), [(90.0, "90s"), (1.5, "1500ms"), (3600.0, "3600s"), (0.25, "250ms")]
)
def test_durations_in_prometheus_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_alert_names_are_metric_names() -> None:
    assert alert_name("accuracy-floor.v2") == "ciclo_accuracy_floor_v2"


def test_promtool_loads_every_kind_of_alert(tmp_path: Path) -> None:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make tools`"
    p = policy(
        *[
            {
                "name": metric.replace("_", "-"),
                "metric": metric,
                "min": 0.1,
                "max": 0.9,
                "minSamples": 5,
            }
            for metric in sorted(templates.VALUES)
        ],
        {
            "name": "vs-previous",
            "metric": "recall",
            "baseline": {"source": "previous", "maxDrop": 0.1, "relative": True},
        },
        {"name": "vs-offline", "metric": "precision", "baseline": {"maxDrop": 0.1}, "max": 1},
        {"name": "custom", "query": 'sum(up{namespace="{{namespace}}"})', "min": 1},
        interval="1.5s",
    )
    planned = prometheus_rule(p, "v2", {"precision": 0.9}, "v1")
    assert planned.skipped == []
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": planned.manifest["spec"]["groups"]}))
    out = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(p.spec.rules)} rules found" in out.stdout
