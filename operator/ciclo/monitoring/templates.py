"""Built-in metrics as PromQL over the serving runtime's metric names (docs/serving.md).

Each built-in metric has a value query and a samples query (what minSamples counts:
labelled samples for quality, input rows for drift, requests for errors and latency).
Quality is computed from counters over the rule's window, so any window works;
drift reads the runtime's windowed gauges. A rule's own PromQL uses the same
placeholders: {{model}}, {{version}}, {{namespace}}, {{window}}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SELECTOR = 'namespace="{{namespace}}",model="{{model}}",version="{{version}}"'


def _inc(name: str, extra: str = "", by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (increase({name}{{{SELECTOR}{extra}}}[{{{{window}}}}]))"


MATCHED = _inc("ciclo_feedback_total", ',outcome="matched"')
_TP = _inc("ciclo_class_true_positives_total", by="class")
_PRED = _inc("ciclo_class_predicted_total", by="class")
_ACT = _inc("ciclo_class_actual_total", by="class")
_REQUESTS = _inc("ciclo_requests_total")
_SERVER_ERRORS = _inc("ciclo_requests_total", ',outcome="server_error"')

VALUES: dict[str, str] = {
    "accuracy": f"{_inc('ciclo_feedback_correct_total')} / {MATCHED}",
    # macro averages over classes, as scikit-learn's average="macro"
    "precision": f"avg(({_TP}) / ({_PRED} > 0))",
    "recall": f"avg(({_TP}) / ({_ACT} > 0))",
    "f1": f"avg((2 * {_TP}) / (({_PRED} + {_ACT}) > 0))",
    "error_rate": f"{_SERVER_ERRORS} / {_REQUESTS}",
    "latency_p99": "histogram_quantile(0.99, sum by (le) "
    f"(rate(ciclo_request_duration_seconds_bucket{{{SELECTOR}}}[{{{{window}}}}])))",
    "feature_drift_psi": f"max(ciclo_drift_psi{{{SELECTOR}{{{{feature}}}}}})",
    "feature_drift_ks": f"max(ciclo_drift_ks{{{SELECTOR}{{{{feature}}}}}})",
    "prediction_drift_psi": f"max(ciclo_prediction_drift_psi{{{SELECTOR}}})",
    # CBPE (docs/cbpe.md): the runtime's estimate over its last predictions, before labels
    "estimated_accuracy": f"max(ciclo_estimated_accuracy{{{SELECTOR}}})",
    "estimated_f1": f"max(ciclo_estimated_f1{{{SELECTOR}}})",
}

_DRIFT_SAMPLES = f"max(ciclo_drift_window_samples{{{SELECTOR}}})"
SAMPLES: dict[str, str] = {
    "accuracy": MATCHED,
    "precision": MATCHED,
    "recall": MATCHED,
    "f1": MATCHED,
    "error_rate": _REQUESTS,
    "latency_p99": _REQUESTS,
    "feature_drift_psi": _DRIFT_SAMPLES,
    "feature_drift_ks": _DRIFT_SAMPLES,
    "prediction_drift_psi": _DRIFT_SAMPLES,
    "estimated_accuracy": f"max(ciclo_estimation_window_samples{{{SELECTOR}}})",
    "estimated_f1": f"max(ciclo_estimation_window_samples{{{SELECTOR}}})",
}

_COMPARED = _inc("ciclo_feedback_compared_total", "{{other}}")
AGREEMENT = (f"{_inc('ciclo_feedback_agreed_total', '{{other}}')} / {_COMPARED}", _COMPARED)
"""The share of labelled rows on which `version` predicted what `other` did, and the rows
compared: not a rule's metric, the operator's question about a shadow (its agreement with
the champion), asked as metric "agreement" with Context.other."""

_LABEL_VALUE = re.compile(r'["\\\n]')


def _quote(value: str) -> str:
    """A label value inside a PromQL string literal."""
    return _LABEL_VALUE.sub(lambda m: {'"': r"\"", "\\": r"\\", "\n": r"\n"}[m.group()], value)


@dataclass(frozen=True)
class Context:
    namespace: str
    model: str
    version: str
    window: str
    feature: str | None = None
    other: str | None = None
    """The version compared with, for "agreement"."""


def render(template: str, ctx: Context) -> str:
    """Fill the placeholders; label values are escaped, the window is a duration already."""
    feature = f',feature="{_quote(ctx.feature)}"' if ctx.feature else ""
    other = f',other="{_quote(ctx.other)}"' if ctx.other is not None else ""
    return (
        template.replace("{{namespace}}", _quote(ctx.namespace))
        .replace("{{model}}", _quote(ctx.model))
        .replace("{{version}}", _quote(ctx.version))
        .replace("{{window}}", ctx.window)
        .replace("{{feature}}", feature)
        .replace("{{other}}", other)
    )


def queries(metric: str | None, query: str | None, ctx: Context) -> tuple[str, str | None]:
    """The value query and the samples query (None for a rule's own PromQL)."""
    if query is not None:
        return render(query, ctx), None
    if metric == "agreement":
        if ctx.other is None:
            raise ValueError("agreement compares two versions: give the other")
        return render(AGREEMENT[0], ctx), render(AGREEMENT[1], ctx)
    if metric is None or metric not in VALUES:
        raise ValueError(f"unknown metric {metric!r}")
    return render(VALUES[metric], ctx), render(SAMPLES[metric], ctx)
