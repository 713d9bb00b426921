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
]
Action = Literal["alert", "rollback", "retire"]
RuleState = Literal["Ok", "Breaching", "NoData", "Error"]

AT_LEAST_ONE_SECOND = validations(cel("duration(self) >= duration('1s')", "must be at least 1s"))


class BaselineComparison(Schema):
    """Compare the live value with a reference and allow a drop from it."""

    source: Literal["offline", "previous"] = "offline"
    """offline: the ModelVersion's spec.metrics; previous: the previous version's live value."""
    metric: str | None = Field(default=None, max_length=63)
    """The name in spec.metrics, when it differs from the rule's metric."""
    max_drop: float = Field(ge=0, le=1e9)
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
    name: Name
    metric: Metric | None = None
    """A built-in metric of the serving runtime."""
    query: str | None = Field(default=None, max_length=4096)
    """PromQL with {{model}}, {{version}}, {{namespace}}, {{window}}; instead of metric."""
    feature: str | None = Field(default=None, max_length=253)
    """For drift metrics: one input feature; unset means the largest over all features."""
    window: Annotated[Duration, Field(json_schema_extra=AT_LEAST_ONE_SECOND)] = "5m"
    min: float | None = None
    max: float | None = None
    baseline: Annotated[BaselineComparison, Field(json_schema_extra=BASELINE_RULES)] | None = None
    min_samples: int = Field(default=0, ge=0, le=100_000_000)
    """Fewer labelled samples than this in the window is NoData, never a breach."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive breaching evaluations before the action is taken."""
    action: Action = "alert"


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
    bearer_token_key: str | None = Field(default=None, max_length=253)
    username_key: str | None = Field(default=None, max_length=253)
    password_key: str | None = Field(default=None, max_length=253)


class PrometheusSource(Schema):
    url: str | None = Field(default=None, pattern=r"^https?://.+", max_length=2048)
    """The Prometheus HTTP API; the operator's --prometheus-url when unset."""
    secret_ref: SecretKeys | None = None


class MetricSource(Schema):
    type: Literal["prometheus", "pods"] = "prometheus"
    """prometheus: instant queries; pods: the serving pods' own /metrics (no Prometheus needed)."""
    prometheus: PrometheusSource | None = None


SOURCE_RULES = validations(
    cel(
        "self.type == 'prometheus' || !has(self.prometheus)",
        "prometheus settings need type prometheus",
        field_path=".prometheus",
    ),
)


class Webhook(Schema):
    url: str = Field(pattern=r"^https?://.+", max_length=2048)
    """Receives an Alertmanager-compatible JSON body."""


class Alerting(Schema):
    webhook: Webhook | None = None
    prometheus_rule: bool = False
    """Mirror the rules in a PrometheusRule, when the Prometheus Operator is installed."""


class MonitorPolicySpec(Schema):
    model_ref: ObjectReference
    interval: Annotated[Duration, Field(json_schema_extra=AT_LEAST_ONE_SECOND)] = "30s"
    source: Annotated[MetricSource, Field(json_schema_extra=SOURCE_RULES)] = Field(
        default_factory=MetricSource
    )
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
    alerting: Alerting = Field(default_factory=Alerting)


class RuleStatus(Schema):
    name: str
    state: RuleState
    version: str | None = None
    """The serving version evaluated; a new one starts the breach count afresh."""
    value: float | None = None
    threshold: str = ""
    samples: int | None = None
    consecutive_breaches: int = 0
    breaching_since: dt.datetime | None = None
    """When the current run of breaches began: it names the episode an action belongs to."""
    message: str = ""
    last_evaluated: dt.datetime | None = None


class ActionRecord(Schema):
    """One action taken, recorded once (id makes a retried write idempotent)."""

    id: str
    rule: str
    action: Action
    version: str
    value: float | None = None
    threshold: str = ""
    at: dt.datetime
    message: str = ""


class MonitorPolicyStatus(Schema):
    observed_generation: int = Field(default=0, ge=0)
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    rules: list[RuleStatus] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    """The latest actions, newest last (at most 50)."""
    last_evaluation_time: dt.datetime | None = None


class MonitorPolicy(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["MonitorPolicy"] = "MonitorPolicy"
    metadata: ObjectMeta
    spec: MonitorPolicySpec
    status: MonitorPolicyStatus = Field(default_factory=MonitorPolicyStatus)
