"""What every ciclo resource shares: the model base, conditions, and schema markers.

Field constraints that the API server should enforce at admission are written
as `x-kubernetes-validations` (CEL) through `cel(...)`; ciclo.api.crd turns the
pydantic schema into the CRDs' structural OpenAPI.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "ciclo.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes-style durations such as 30s, 5m, 1h30m.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """One CEL validation rule, as the CRD schema spells it."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def immutable(what: str) -> dict[str, Any]:
    return validations(cel("self == oldSelf", f"{what} is immutable once registered"))


class Schema(BaseModel):
    """camelCase JSON, unknown fields rejected, Python names in snake_case."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=63)]

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Schema):
    """A condition as the Kubernetes API conventions define it."""

    type: str = Field(max_length=316)
    """The condition's type, in CamelCase (Ready, Progressing, Degraded, Healthy, ...)."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """A CamelCase word for why the condition last changed, for programs."""
    message: str = Field(default="", max_length=32768)
    """The same for people: what happened, with the details."""
    observed_generation: int = Field(default=0, ge=0)
    """The object's metadata.generation this condition was set from."""
    last_transition_time: dt.datetime | None = None
    """When status last changed."""


# Conditions are a map keyed by type: server-side apply merges them per type.
CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class ObjectReference(Schema):
    """A reference to an object in the same namespace."""

    name: Name
    """The object's name."""


class ObjectMeta(BaseModel):
    """The parts of metadata ciclo reads; the rest is the API server's."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    deletion_timestamp: dt.datetime | None = None
    creation_timestamp: dt.datetime | None = None
