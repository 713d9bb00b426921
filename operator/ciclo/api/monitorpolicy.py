"""MonitorPolicy: what healthy means for a Model, and what to do when it is not."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from ciclo.api.meta import (
    CONDITIONS_LIST,
    Condition,
    Duration,
    Name,
    ObjectMeta,
    ObjectReference,
    Schema,
    cel,
    validations,
)

Metric = Literal[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "error_rate",
    "latency_p99",
    "feature_drift_psi",
    "feature_drift_ks",
    "prediction_drift_psi",
    "estimated_accuracy",
    "estimated_f1",
]
Action = Literal["alert", "rollback", "retire", "retrain"]
RuleState = Literal["Ok", "Breaching", "NoData", "Error"]

AT_LEAST_ONE_SECOND = validations(cel("duration(self) >= duration('1s')", "must be at least 1s"))


class BaselineComparison(Schema):
    """Compare the live value with a reference and allow a drop from it."""

    source: Literal["offline", "previous"] = "offline"
    """offline: the ModelVersion's spec.metrics; previous: the previous version's live value."""
    metric: str | None = Field(default=None, max_length=63)
    """The name in spec.metrics, when it differs from the rule's metric."""
    max_drop: float = Field(ge=0, le=1e9)
    """How far the live value may fall below the baseline before the rule breaches."""
    relative: bool = False
    """True: max_drop is a fraction of the baseline (0.05 = 5%); false: an absolute amount."""


BASELINE_RULES = validations(
    cel(
        "!has(self.relative) || !self.relative || self.maxDrop <= 1.0",
        "a relative maxDrop is a fraction of the baseline: between 0 and 1",
        field_path=".maxDrop",
    ),
)


class Rule(Schema):
    """One check: a metric over a window against a bound or a baseline, and what to do."""

    name: Name
    """The rule's name, unique within the policy; it names the rule in status and alerts."""
    metric: Metric | None = None
    """A built-in metric of the serving runtime: quality from labels (accuracy, precision,
    recall, f1), estimated quality before labels (estimated_accuracy, estimated_f1: CBPE),
    error_rate, latency_p99, or drift."""
    query: str | None = Field(default=None, max_length=4096)
    """PromQL with {{model}}, {{version}}, {{namespace}}, {{window}}; instead of metric."""
    feature: str | None = Field(default=None, max_length=253)
    """For drift metrics: one input feature; unset means the largest over all features."""
    window: Annotated[Duration, Field(json_schema_extra=AT_LEAST_ONE_SECOND)] = "5m"
    """How far back the metric looks (30s, 5m, 1h): the {{window}} of a query."""
    min: float | None = None
    """The value breaches below this bound."""
    max: float | None = None
    """The value breaches above this bound."""
    baseline: Annotated[BaselineComparison, Field(json_schema_extra=BASELINE_RULES)] | None = None
    """Compare with the version's offline metrics or the previous version, instead of a bound."""
    min_samples: int = Field(default=0, ge=0, le=100_000_000)
    """Fewer labelled samples than this in the window is NoData, never a breach."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive breaching evaluations before the action is taken."""
    action: Action = "alert"
    """alert (the Alerting condition, a webhook), rollback (serve the last good version),
    retire (stop serving the Model) or retrain (ask for a training run: spec.training)."""


RULE_RULES = validations(
    cel("has(self.metric) != has(self.query)", "set exactly one of metric and query"),
    cel(
        "has(self.min) || has(self.max) || has(self.baseline)",
        "set a bound (min, max) or a baseline",
    ),
    cel(
        "!has(self.min) || !has(self.max) || self.min <= self.max",
        "min must not exceed max",
        field_path=".min",
    ),
    cel(
        "!has(self.feature) || (has(self.metric) && self.metric.startsWith('feature_drift'))",
        "feature applies only to feature_drift metrics",
        field_path=".feature",
    ),
)


class SecretKeys(Schema):
    """Credentials for Prometheus from a Secret in the policy's namespace."""

    name: Name
    """The Secret's name."""
    bearer_token_key: str | None = Field(default=None, max_length=253)
    """The key holding a bearer token."""
    username_key: str | None = Field(default=None, max_length=253)
    """The key holding the basic-auth user name."""
    password_key: str | None = Field(default=None, max_length=253)
    """The key holding the basic-auth password."""


class PrometheusSource(Schema):
    """Where Prometheus is, and how to authenticate."""

    url: str | None = Field(default=None, pattern=r"^https?://.+", max_length=2048)
    """The Prometheus HTTP API; the operator's --prometheus-url when unset."""
    secret_ref: SecretKeys | None = None
    """Credentials from a Secret in the policy's namespace."""


class MetricSource(Schema):
    """Where the rules' values come from."""

    type: Literal["prometheus", "pods"] = "prometheus"
    """prometheus: instant queries; pods: the serving pods' own /metrics (no Prometheus needed)."""
    prometheus: PrometheusSource | None = None
    """Prometheus settings, with type prometheus."""


SOURCE_RULES = validations(
    cel(
        "self.type == 'prometheus' || !has(self.prometheus)",
        "prometheus settings need type prometheus",
        field_path=".prometheus",
    ),
)


class Webhook(Schema):
    """An HTTP endpoint told of every alert."""

    url: str = Field(pattern=r"^https?://.+", max_length=2048)
    """Receives an Alertmanager-compatible JSON body."""


class Alerting(Schema):
    """Where alerts go besides the Alerting condition and Events."""

    webhook: Webhook | None = None
    """An HTTP endpoint told of every alert."""
    prometheus_rule: bool = False
    """Mirror the rules in a PrometheusRule, when the Prometheus Operator is installed."""


class MonitorPolicySpec(Schema):
    """What healthy means for a Model: its rules, how often they are evaluated, and where the
    values come from."""

    model_ref: ObjectReference
    """The Model in the policy's namespace."""
    interval: Annotated[Duration, Field(json_schema_extra=AT_LEAST_ONE_SECOND)] = "30s"
    """How often the rules are evaluated."""
    source: Annotated[MetricSource, Field(json_schema_extra=SOURCE_RULES)] = Field(
        default_factory=MetricSource
    )
    """Where the rules' values come from: Prometheus or the serving pods' /metrics."""
    rules: Annotated[
        list[Annotated[Rule, Field(json_schema_extra=RULE_RULES)]],
        Field(
            min_length=1,
            max_length=32,
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        ),
    ]
    """The rules, each evaluated on the serving version (on the candidate alone while one comes
    up)."""
    alerting: Alerting = Field(default_factory=Alerting)
    """Where alerts go besides the Alerting condition and Events."""


class RuleStatus(Schema):
    """A rule's last evaluation."""

    name: str
    """The rule's name."""
    state: RuleState
    """Ok, Breaching, NoData (too few samples, or no answer: never a breach) or Error."""
    version: str | None = None
    """The serving version evaluated; a new one starts the breach count afresh."""
    value: float | None = None
    """The metric's value at the last evaluation."""
    threshold: str = ""
    """The bound it was judged against, as text (>= 0.85, <= 0.2)."""
    samples: int | None = None
    """Labelled samples in the window, for quality metrics."""
    consecutive_breaches: int = 0
    """Breaching evaluations in a row; the action is taken at failureThreshold."""
    breaching_since: dt.datetime | None = None
    """When the current run of breaches began: it names the episode an action belongs to."""
    message: str = ""
    """The evaluation for people: the value, the bound, why NoData."""
    last_evaluated: dt.datetime | None = None
    """When the rule was last evaluated."""


class ActionRecord(Schema):
    """One action taken, recorded once (id makes a retried write idempotent)."""

    id: str
    """rule/version/episode: the same breach episode never acts twice."""
    rule: str
    """The rule that breached."""
    action: Action
    """What was done: alert, rollback, retire or retrain."""
    version: str
    """The version the rule judged."""
    value: float | None = None
    """The rule's value when it acted."""
    threshold: str = ""
    """The bound the value broke."""
    at: dt.datetime
    """When the action was taken."""
    message: str = ""
    """The action for people."""


class MonitorPolicyStatus(Schema):
    """The rules' last evaluation and the actions taken."""

    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this status was written for."""
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    """Healthy (the monitoring loop) and PrometheusRule (when it mirrors the rules)."""
    rules: list[RuleStatus] = Field(default_factory=list)
    """Each rule's last evaluation."""
    actions: list[ActionRecord] = Field(default_factory=list)
    """The latest actions, newest last (at most 50)."""
    last_evaluation_time: dt.datetime | None = None
    """When the rules were last evaluated."""


class MonitorPolicy(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["MonitorPolicy"] = "MonitorPolicy"
    metadata: ObjectMeta
    spec: MonitorPolicySpec
    status: MonitorPolicyStatus = Field(default_factory=MonitorPolicyStatus)
