"""A MonitorPolicy's rules as a PrometheusRule: the same PromQL and limits, evaluated by
Prometheus, so that Alertmanager routes them like any other alert.

The queries select the version the Model serves, as the operator's own evaluation does
(ciclo.monitoring.templates), so the rule is rewritten when another version serves. A
rule the operator could not judge either (its baseline is unknown, or minSamples on a
query of its own, which has no sample count) is left out, and said so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ciclo.api.monitorpolicy import MonitorPolicy, Rule
from ciclo.monitoring import templates
from ciclo.monitoring.evaluation import LOWER_IS_BETTER, Bounds, bounds, seconds
from ciclo.planning.manifests import Json, labels, owner

API_VERSION = "monitoring.coreos.com/v1"
POLICY_LABEL = "ciclo.dev/monitorpolicy"
# The operator acts on rollback and retire rules itself; people should still hear of them first.
SEVERITY = {"alert": "warning", "rollback": "critical", "retire": "critical", "retrain": "warning"}


@dataclass(frozen=True)
class Planned:
    manifest: Json
    alerts: int
    skipped: list[str]
    """`rule: why` for each rule left out."""


def duration(total: float) -> str:
    """Seconds as a Prometheus duration (90s, 1500ms): its format has no fractions."""
    ms = round(total * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def alert_name(rule: str) -> str:
    """Alert names follow metric-name syntax: no dashes."""
    return "ciclo_" + re.sub(r"[^a-zA-Z0-9_]", "_", rule)


def _number(x: float) -> str:
    return format(x, ".15g")  # 0.95 - 0.05 reads 0.9, as a person wrote it


def _expression(
    rule: Rule, ctx: templates.Context, offline: Mapping[str, float], previous: str | None
) -> tuple[str, str] | str:
    """The alert's PromQL and its threshold for people, or why the rule is left out."""
    value, samples = templates.queries(rule.metric, rule.query, ctx)
    if rule.min_samples and samples is None:
        return "minSamples needs a built-in metric (a query of its own has no sample count)"
    limits: Bounds | None = Bounds(rule.min, rule.max)
    versus: tuple[str, str] | None = None
    """The comparison with the previous version: PromQL, and for people."""
    base = rule.baseline
    if base is not None and base.source == "offline":
        name = base.metric or rule.metric or rule.name
        if name not in offline:
            return f"version {ctx.version} has no offline metric {name} to compare with"
        limits = bounds(rule, offline[name])
    elif base is not None:
        if previous is None:
            return "no previous version to compare with"
        # The previous version's live value, as the operator reads it.
        ctx_before = dataclasses.replace(ctx, version=previous)
        before = templates.queries(rule.metric, rule.query, ctx_before)[0]
        allowed = _number(base.max_drop) + (f" * abs({before})" if base.relative else "")
        op, sign = (">", "+") if rule.metric in LOWER_IS_BETTER else ("<", "-")
        drop = f"{base.max_drop:.0%}" if base.relative else f"{base.max_drop:g}"
        versus = (
            f"({value}) {op} ignoring(version) (({before}) {sign} {allowed})",
            f"at most {drop} {'above' if op == '>' else 'below'} version {previous}",
        )
    assert limits is not None  # bounds() is None only for an unknown baseline, handled above
    parts: list[str] = []
    if limits.min is not None:
        parts.append(f"({value}) < {_number(limits.min)}")
    if limits.max is not None:
        parts.append(f"({value}) > {_number(limits.max)}")
    described = [limits.describe()] if parts else []
    if versus is not None:
        parts.append(versus[0])
        described.append(versus[1])
    expr = " or ".join(parts)
    if rule.min_samples and samples is not None:
        # Fewer samples is NoData for the operator, never a breach: the same here.
        expr = f"({expr}) and on() (({samples}) >= {rule.min_samples})"
    return expr, " and ".join(described)


def prometheus_rule(
    policy: MonitorPolicy,
    version: str,
    offline: Mapping[str, float],
    previous: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Planned:
    """The PrometheusRule for `policy` while `version` serves; `offline` is that version's
    spec.metrics (offline baselines), `previous` the version that served before it,
    `extra_labels` for a Prometheus that selects rules by label (ciclo's own win)."""
    ns, name = policy.metadata.namespace, policy.metadata.name
    model = policy.spec.model_ref.name
    interval = seconds(policy.spec.interval)
    alerts: list[Json] = []
    skipped: list[str] = []
    for rule in policy.spec.rules:
        ctx = templates.Context(ns, model, version, rule.window, rule.feature)
        planned = _expression(rule, ctx, offline, previous)
        if isinstance(planned, str):
            skipped.append(f"{rule.name}: {planned}")
            continue
        expr, threshold = planned
        what = rule.metric or "the query"
        # The operator acts after failureThreshold breaching evaluations, one an interval.
        wait = duration(rule.failure_threshold * interval)
        alerts.append(
            {
                "alert": alert_name(rule.name),
                "expr": expr,
                "for": wait,
                "labels": {
                    "namespace": ns,
                    "model": model,
                    "version": version,
                    "monitorpolicy": name,
                    "rule": rule.name,
                    "action": rule.action,
                    "severity": SEVERITY[rule.action],
                },
                "annotations": {
                    "summary": f"{model} {version}: {what} is {{{{ $value }}}}; wanted {threshold}",
                    "description": f"MonitorPolicy {ns}/{name}, rule {rule.name}: {what} "
                    f"not {threshold} for {wait}; ciclo's action: {rule.action}.",
                },
            }
        )
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {**(extra_labels or {}), **labels(model), POLICY_LABEL: name},
            "ownerReferences": [owner(policy)],
        },
        "spec": {
            "groups": [{"name": f"ciclo.{name}", "interval": duration(interval), "rules": alerts}]
        },
    }
    return Planned(manifest, len(alerts), skipped)
