"""The rollback's reaction time, measured from Prometheus' own data: from the first
scrape at which the rule's value crossed its threshold to the Service selecting the
good version (the moment the demo saw it change; it polls every 0.1 s)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Sequence

from ciclo.monitoring import templates

STEP = 0.5
"""Seconds between the points of the range query: finer than the 2 s scrape interval."""


def first_below(points: Sequence[tuple[float, float]], threshold: float) -> float | None:
    """The first time a value is below threshold; points are (unix time, value), in order."""
    return next((t for t, v in points if v < threshold), None)


def accuracy_points(
    prometheus: str, namespace: str, model: str, version: str, window: str, start: float, end: float
) -> list[tuple[float, float]]:
    """The accuracy rule's own PromQL (as the operator evaluates it), over [start, end]."""
    promql = templates.render(
        templates.VALUES["accuracy"], templates.Context(namespace, model, version, window)
    )
    query = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": STEP})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=10) as r:
        result = json.load(r)["data"]["result"]
    if not result:
        return []
    return [(float(t), float(v)) for t, v in result[0]["values"]]
