"""`ciclo card`: a card rendered from resource documents says what those resources say."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.cli.card import render

RESOURCES = Path(__file__).parent / "fixtures" / "card" / "resources.json"


def resources() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    items = json.loads(RESOURCES.read_text())["items"]
    for item in items:  # the documents are valid resources of their kinds
        {"Model": Model, "ModelVersion": ModelVersion, "MonitorPolicy": MonitorPolicy}[
            item["kind"]
        ].model_validate(item)
    (model,) = [i for i in items if i["kind"] == "Model"]
    return (
        model,
        [i for i in items if i["kind"] == "ModelVersion"],
        [i for i in items if i["kind"] == "MonitorPolicy"],
    )


def section(card: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", card, re.S | re.M)
    assert match, f"no section {title}"
    return match.group(1)


def table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in lines
    ]
    header, rows = split[0], split[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def card() -> str:
    model, versions, policies = resources()
    return render(model, versions, policies, generated="2026-11-23T05:00:00Z")


def test_overview_is_the_model_s_spec_and_status() -> None:
    model, _, _ = resources()
    text = section(card(), "Overview")
    assert f"Purpose: {model['spec']['description']}" in text
    assert f"Owner: {model['spec']['owner']}" in text
    assert "Desired version (spec.version): v2" in text
    assert "Serving version: v1" in text
    assert "Ready: True (Serving): v1 serves" in text
    assert f"Endpoint: {model['status']['endpoint']}" in text


def test_every_version_of_the_model_with_its_offline_metrics_and_lineage() -> None:
    _, versions, _ = resources()
    mine = [v for v in versions if v["spec"]["model"] == "iris"]
    rows = table(section(card(), "Versions"))
    assert [r["version"] for r in rows] == ["v1", "v2"], "the other model's version is left out"
    for v, row in zip(mine, rows, strict=True):
        assert row["phase"] == v["status"]["phase"]
        assert row["sha256"] == v["spec"]["artifact"]["sha256"][:12]
        assert row["registered"] == v["metadata"]["creationTimestamp"]
        for name in ("accuracy", "f1"):
            expected = v["spec"]["metrics"].get(name)
            assert row[name] == ("-" if expected is None else f"{expected:.4g}")
    lineage = table(section(card(), "Lineage"))
    for v, row in zip(mine, lineage, strict=True):
        source = v["spec"].get("source", {})
        assert row["artifact"] == v["spec"]["artifact"]["uri"]
        assert row["dataset"] == v["spec"].get("dataset", "-")
        assert row["run"] == source.get("runId", "-")
        assert row["commit"] == source.get("gitCommit", "-")
        assert row["author"] == source.get("author", "-")
    assert lineage[0]["parameters"] == "max_depth=3, n_estimators=50"


def test_what_served_when_is_the_history() -> None:
    model, _, _ = resources()
    rows = table(section(card(), "What served when"))
    assert len(rows) == len(model["status"]["history"])
    for h, row in zip(model["status"]["history"], rows, strict=True):
        assert (row["version"], row["since"], row["outcome"]) == (
            h["version"],
            h["since"],
            h["outcome"],
        )
        assert row["until"] == h.get("until", "(serving)")
    bad = table(section(card(), "Versions marked bad"))
    assert [(r["version"], r["reason"]) for r in bad] == [("v2", "MonitorPolicy iris")]


def test_every_action_with_its_rule_value_and_threshold() -> None:
    _, _, policies = resources()
    actions = policies[0]["status"]["actions"]
    rows = table(section(card(), "Actions"))
    assert len(rows) == len(actions), "the other model's policy is left out"
    assert [r["at"] for r in rows] == sorted(a["at"] for a in actions)
    by_rule = {r["rule"]: r for r in rows}
    for a in actions:
        row = by_rule[a["rule"]]
        assert (row["action"], row["version"], row["threshold"]) == (
            a["action"],
            a["version"],
            a["threshold"],
        )
        assert float(row["value"]) == float(f"{a['value']:.4g}")
        assert row["policy"] == "iris"


def test_current_health_and_drift_are_the_rules_last_values() -> None:
    text = card()
    health = table(section(text, "Current health"))
    drift = table(section(text, "Drift"))
    assert [(r["rule"], r["state"], r["value"], r["threshold"]) for r in health] == [
        ("accuracy", "Ok", "0.98", ">= 0.85")
    ]
    assert [(r["rule"], r["metric"], r["state"], r["value"]) for r in drift] == [
        ("input-drift", "feature_drift_psi", "Breaching", "3.08")
    ]
    assert "iris: Healthy=False (Breaching)" in section(text, "Current health")


def test_a_model_with_nothing_yet_says_so() -> None:
    model = {"metadata": {"name": "new", "namespace": "ns"}, "spec": {"version": "v1"}}
    text = render(model, [], [], generated="now")
    assert "No ModelVersion is registered for this model." in text
    assert "Nothing has served yet." in text
    assert "No policy has acted on this model." in text
    assert "Purpose: - (spec.description is not set)" in text


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.inside = tag == "td"
        if self.inside:
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.cells[-1] += data


def test_html_carries_the_same_cells_escaped() -> None:
    model, versions, policies = resources()
    page = render(model, versions, policies, generated="t", fmt="html")
    assert page.startswith("<!DOCTYPE html>")
    assert "Classifies iris flowers | for the demo" in page
    parser = Cells()
    parser.feed(page)
    markdown = card()
    md_cells = [
        c.strip().replace("\\|", "|")
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("|---")
        for c in re.split(r"(?<!\\)\|", line)[1:-1]
    ]
    assert set(parser.cells) <= set(md_cells)
    assert "&gt;= 0.85" in page and ">= 0.85" not in page
