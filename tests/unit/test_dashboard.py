"""The Grafana dashboard (charts/ciclo/dashboards/ciclo.json): every panel's PromQL is
checked by promtool (the pinned Prometheus's parser), and names only metrics that the
serving runtime and the operator export."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client import CollectorRegistry

from ciclo.controllers import metrics as operator_metrics
from ciclo.controllers import monitorpolicy
from ciclo.drift.window import Drift
from ciclo.serving.estimation import EstimateCollector
from ciclo.serving.feedback import Quality
from ciclo.serving.metrics import RuntimeMetrics, Snapshot

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "ciclo" / "dashboards" / "ciclo.json"
PROMTOOL = (
    Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo")) / "bin" / "promtool"
)
# What Grafana puts in place of its variables before it sends a query.
VARIABLES = {
    "$namespace": "team-a",
    "$model": "iris",
    "$__rate_interval": "1m",
    "$__range": "3h",
}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and annotation."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} {target['refId']}", target["expr"]))
    for note in dashboard["annotations"]["list"]:
        out.append((f"annotation {note['name']}", note["expr"]))
    return out


def substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def sample_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def exported() -> set[str]:
    runtime = RuntimeMetrics("iris", "v1")
    runtime.watch(
        lambda: Snapshot(
            quality=Quality(0.9, 0.9, 0.9, 0.9, 10),
            drift=[Drift("x", 0.1, 0.2, None), Drift("c", 0.1, None, 0.3)],
            prediction_drift=Drift("prediction", 0.1, None, 0.2),
            drift_samples=10,
        )
    )
    runtime.registry.register(
        EstimateCollector(("iris", "v1"), lambda: (0.8, 0.7, np.int64(10).item()))
    )
    assert monitorpolicy.REGISTRY is operator_metrics.REGISTRY
    return sample_names(runtime.registry) | sample_names(operator_metrics.REGISTRY)


def test_panels_cover_a_model_s_life() -> None:
    titles = {p["title"] for p in load()["panels"]}
    assert {
        "Versions and their state",
        "Traffic per version",
        "Live accuracy and F1",
        "Drift per feature (PSI)",
        "Rule values against thresholds",
        "Actions taken",
    } <= titles


def test_every_query_names_only_exported_metrics() -> None:
    known = exported()
    used = {m for _, expr in queries(load()) for m in re.findall(r"\bciclo_[a-z0-9_]+", expr)}
    assert used, "the dashboard reads ciclo's metrics"
    assert used - known == set()
    assert {"ciclo_estimated_accuracy", "ciclo_modelversion_phase"} <= used


def test_every_query_selects_the_chosen_model() -> None:
    for where, expr in queries(load()):
        for selector in re.findall(r"ciclo_[a-z0-9_]+\{([^}]*)\}", expr):
            assert 'namespace="$namespace"' in selector, where


def test_promtool_parses_every_panel_s_promql(tmp_path: Path) -> None:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make tools`"
    found = queries(load())
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substituted(expr)}
        for i, (_, expr) in enumerate(found)
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(found)} rules found" in out.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: a query with a missing bracket does not pass."""
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make tools`"
    path = tmp_path / "broken.yaml"
    rule = {"record": "dashboard:broken", "expr": "sum(rate(ciclo_requests_total[1m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [rule]}]}))
    out = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert out.returncode != 0
