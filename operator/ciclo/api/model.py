"""Model: the logical model, which version should serve, and how."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from ciclo.api.meta import CONDITIONS_LIST, Condition, ObjectMeta, Schema

Quantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$", max_length=32)
]


class Resources(Schema):
    """Requests and limits of the serving container (cpu, memory, ...)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=8)
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=8)


class Toleration(Schema):
    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class LocalObjectReference(Schema):
    name: str = Field(min_length=1, max_length=253)


class EnvVar(Schema):
    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    value: str = Field(default="", max_length=32768)


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
    resources: Resources = Field(default_factory=Resources)
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: Annotated[dict[str, Any], Field(json_schema_extra=PRESERVE_UNKNOWN)] = Field(
        default_factory=dict
    )
    """A core/v1 Affinity, passed to the pods as it is."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    service_account_name: str | None = Field(default=None, max_length=253)
    progress_deadline_seconds: int = Field(default=180, ge=10, le=3600)
    """How long a new version may take to have its pods ready before it is marked Failed;
    what serves keeps serving meanwhile."""


class ModelSpec(Schema):
    version: str = Field(pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$", max_length=40)
    """The version that should serve: a ModelVersion of this model."""
    serving: Serving = Field(default_factory=Serving)
    retired: bool = False
    """True scales everything to zero and removes the Service; the registry keeps every version."""
    owner: str | None = Field(default=None, max_length=256)
    task: Literal["classification", "regression"] = "classification"


class HistoryEntry(Schema):
    """A version that served, newest first."""

    version: str
    since: dt.datetime
    until: dt.datetime | None = None
    outcome: Literal["Serving", "Replaced", "RolledBack", "Retired"] = "Serving"


class RolloutStatus(Schema):
    """The version being brought up while another serves: it takes traffic once ready."""

    version: str
    since: dt.datetime


class RetirementRecord(Schema):
    """A MonitorPolicy's retirement of the Model, kept in status so the spec stays the user's.

    It holds while spec.version names `version`; naming another version, or setting
    spec.retired (the user's own decision), ends it."""

    version: str
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=4096)
    action: str | None = Field(default=None, max_length=512)
    """The id of the policy action that retired it."""
    at: dt.datetime


class ModelStatus(Schema):
    observed_generation: int = Field(default=0, ge=0)
    serving_version: str | None = None
    """What actually serves: differs from spec.version after an automatic rollback."""
    desired_version: str | None = None
    """spec.version as last seen, so that a change of it is noticed once."""
    ready_replicas: int = 0
    rollout: RolloutStatus | None = None
    retirement: RetirementRecord | None = None
    endpoint: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    last_action: str | None = None
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )


class Model(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["Model"] = "Model"
    metadata: ObjectMeta
    spec: ModelSpec
    status: ModelStatus = Field(default_factory=ModelStatus)
