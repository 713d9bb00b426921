"""Model: the logical model, which version should serve, and how."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from ciclo.api.meta import CONDITIONS_LIST, Condition, ObjectMeta, Schema
from ciclo.api.promotion import PROMOTION_RULES, Promotion
from ciclo.api.rollout import (
    ABTestResult,
    CanaryStatus,
    PromoteRequest,
    Rollout,
    RolloutSpec,
    ShadowResult,
)
from ciclo.api.training import RetrainRequest, Training, TrainingStatus

Quantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$", max_length=32)
]


class Resources(Schema):
    """Requests and limits of the serving container (cpu, memory, ...)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=8)
    """What the scheduler reserves per pod, by resource name (cpu: 500m, memory: 1Gi)."""
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=8)
    """The most a pod may use, by resource name (memory: 2Gi)."""


class Toleration(Schema):
    """A core/v1 Toleration: the serving pods may run on nodes with a matching taint."""

    key: str | None = Field(default=None, max_length=316)
    """The taint key it matches; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Equal (the default) compares value; Exists matches any value."""
    value: str | None = Field(default=None, max_length=63)
    """The taint value it matches, with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect it matches; unset matches every effect."""
    toleration_seconds: int | None = None
    """With effect NoExecute: how long the pod stays after the taint appears; unset is forever."""


class LocalObjectReference(Schema):
    """A Secret in the Model's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Secret's name."""


class EnvVar(Schema):
    """An environment variable of the serving container."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    """The variable's name."""
    value: str = Field(default="", max_length=32768)
    """Its value."""


PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class Serving(Schema):
    """How the serving pods run."""

    replicas: int = Field(default=1, ge=0, le=1000)
    """Pods serving the current version."""
    keep_previous: int = Field(default=1, ge=0, le=5)
    """Earlier good versions kept warm, so that a rollback is a selector switch."""
    warm_replicas: int = Field(default=1, ge=0, le=100)
    """Pods each warm previous version keeps."""
    image: str | None = Field(default=None, max_length=512)
    """The runtime image; the operator's default when unset."""
    port: int = Field(default=8080, ge=1, le=65535)
    """The container port the runtime listens on and the Service targets."""
    resources: Resources = Field(default_factory=Resources)
    """Requests and limits of the serving container."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Node labels the serving pods must run on, as a pod's nodeSelector."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Taints the serving pods tolerate."""
    affinity: Annotated[dict[str, Any], Field(json_schema_extra=PRESERVE_UNKNOWN)] = Field(
        default_factory=dict
    )
    """A core/v1 Affinity, passed to the pods as it is."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    """Secrets for pulling the runtime image from a private registry."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables of the serving container (credentials for s3:// or gs://
    artifacts, for example)."""
    service_account_name: str | None = Field(default=None, max_length=253)
    """The serving pods' ServiceAccount; the namespace's default when unset."""
    progress_deadline_seconds: int = Field(default=180, ge=10, le=3600)
    """How long a new version may take to have its pods ready before it is marked Failed;
    what serves keeps serving meanwhile."""


class SecretKeySelector(Schema):
    """One key of a Secret in the Model's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Secret's name."""
    key: str = Field(default="url", min_length=1, max_length=253)
    """The key whose value is used."""


class FeedbackStore(Schema):
    """A Valkey or Redis that every serving pod of the Model writes its predictions to, so a
    label sent through the Service is matched whichever pod or version predicted."""

    secret_key_ref: SecretKeySelector
    """The Secret key holding the store's URL (redis://[:password@]host:port/db, or
    rediss:// for TLS); it reaches the pods as CICLO_FEEDBACK_STORE."""


class Feedback(Schema):
    """Where predictions wait for their ground-truth labels."""

    store: FeedbackStore | None = None
    """The shared prediction store; unset, each pod keeps its own predictions in memory,
    which suits one replica only (docs/serving.md)."""
    max_age_seconds: int | None = Field(default=None, ge=60, le=7_776_000)
    """How long a prediction waits for its label, from when it was answered; a later label
    is late. Unset: a day. It reaches the pods as CICLO_FEEDBACK_MAX_AGE, and the shared
    store's entries expire after it (docs/serving.md)."""


class Monitoring(Schema):
    """What the serving pods need to measure quality."""

    feedback: Feedback = Field(default_factory=Feedback)
    """Where predictions wait for their labels."""


class ModelSpec(Schema):
    """What the Model should be: the version that serves, and how."""

    version: str = Field(pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$", max_length=40)
    """The version that should serve: a ModelVersion of this model."""
    serving: Serving = Field(default_factory=Serving)
    """How the serving pods run."""
    monitoring: Monitoring = Field(default_factory=Monitoring)
    """What the serving pods need to measure quality: the shared prediction store."""
    promotion: Annotated[Promotion, Field(json_schema_extra=PROMOTION_RULES)] | None = None
    """What a new spec.version must pass (an evaluation against the champion, gates, an
    approval) before it takes any traffic; unset, it takes traffic once its pods are ready."""
    retired: bool = False
    """True scales everything to zero and removes the Service; the registry keeps every version."""
    description: str | None = Field(default=None, max_length=4096)
    """What the model is for and who uses it, for people; `ciclo card` shows it first."""
    owner: str | None = Field(default=None, max_length=256)
    """Who answers for the model: a team or a person, shown on its model card."""
    task: Literal["classification", "regression"] = "classification"
    """What the model predicts: classes (classification) or numbers (regression)."""
    rollout: RolloutSpec = Field(default_factory=Rollout)
    """How a new spec.version takes traffic from the one that serves (docs/rollout.md)."""
    training: Training | None = None
    """How new versions are trained: a Job template, a schedule, triggers (docs/training.md)."""


class HistoryEntry(Schema):
    """A version that served, newest first."""

    version: str
    """The version that served."""
    since: dt.datetime
    """When it began to take traffic."""
    until: dt.datetime | None = None
    """When it stopped; unset while it serves."""
    outcome: Literal["Serving", "Replaced", "RolledBack", "Retired"] = "Serving"
    """Serving (still), Replaced (another version took over), RolledBack or Retired."""


class RolloutStatus(Schema):
    """The version being brought up while another serves: it takes traffic once ready."""

    version: str
    """The version coming up."""
    since: dt.datetime
    """When it began to come up; its progress deadline counts from here."""


class RetirementRecord(Schema):
    """A MonitorPolicy's retirement of the Model, kept in status so the spec stays the user's.

    It holds while spec.version names `version`; naming another version, or setting
    spec.retired (the user's own decision), ends it."""

    version: str
    """spec.version when the Model was retired."""
    reason: str = Field(max_length=1024)
    """A CamelCase word for why (the policy's reason)."""
    message: str = Field(default="", max_length=4096)
    """The rule, its value and threshold, for people."""
    action: str | None = Field(default=None, max_length=512)
    """The id of the policy action that retired it."""
    at: dt.datetime
    """When it was retired."""


class ModelStatus(Schema):
    """What the operator observed and did: what serves, its history, its conditions."""

    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this status was written for."""
    serving_version: str | None = None
    """What actually serves: differs from spec.version after an automatic rollback."""
    desired_version: str | None = None
    """spec.version as last seen, so that a change of it is noticed once."""
    ready_replicas: int = 0
    """Ready pods of the serving version."""
    rollout: RolloutStatus | None = None
    """The version being brought up while another serves, if any."""
    retirement: RetirementRecord | None = None
    """Set when a MonitorPolicy retired the Model."""
    canary: CanaryStatus | None = None
    """The latest gradual rollout (canary), its step and weight, or how it ended."""
    promote_request: PromoteRequest | None = None
    """Set by `ciclo promote`: promote the running canary's candidate now."""
    abtest: ABTestResult | None = None
    """The latest A/B test's verdict, set by the monitoring loop when the test ends."""
    shadow: ShadowResult | None = None
    """The latest shadow's verdict, set by the monitoring loop when its duration ends."""
    retrain_request: RetrainRequest | None = None
    """The latest request for a training run (`ciclo retrain`, a policy's retrain action)."""
    training: TrainingStatus | None = None
    """The training runs and the newest version they registered (the training controller)."""
    endpoint: str | None = None
    """The Service's in-cluster URL, Open Inference Protocol v2 (REST)."""
    history: list[HistoryEntry] = Field(default_factory=list)
    """The versions that served, newest first: what served when, and how it ended."""
    last_action: str | None = None
    """The latest thing the operator did, for people (ciclo status shows it)."""
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    """Ready, Progressing, Degraded (the Model controller), Alerting (the monitoring loop),
    Training and TrainingFailed (the training controller)."""


class Model(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["Model"] = "Model"
    metadata: ObjectMeta
    spec: ModelSpec
    status: ModelStatus = Field(default_factory=ModelStatus)
