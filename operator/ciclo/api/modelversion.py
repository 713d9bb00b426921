"""ModelVersion: one registered, immutable model artifact. The registry entry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from ciclo.api.meta import (
    CONDITIONS_LIST,
    Condition,
    Name,
    ObjectMeta,
    Schema,
    cel,
    immutable,
    validations,
)

Format = Literal["sklearn", "xgboost", "lightgbm", "onnx"]
URI_PATTERN = r"^(s3|gs|https|http|file|pvc)://.+"
SHA256_PATTERN = r"^[a-f0-9]{64}$"

Phase = Literal["Registered", "Deploying", "Serving", "Standby", "RolledBack", "Failed", "Retired"]


class Artifact(Schema):
    """Where the model file is, what it is, and the digest it must have."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """s3://, gs://, https://, http://, file:// or pvc://CLAIM/path."""
    format: Format
    sha256: str = Field(pattern=SHA256_PATTERN)
    """Hex sha256 of the artifact; the serving pod refuses a file that does not match."""


class Baseline(Schema):
    """The training-data profile that drift is measured against (built by `ciclo profile`)."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


class Source(Schema):
    """Lineage: where the artifact came from."""

    run_id: str | None = Field(default=None, max_length=256)
    git_commit: str | None = Field(default=None, max_length=64)
    author: str | None = Field(default=None, max_length=256)


class ModelVersionSpec(Schema):
    model: Annotated[Name, Field(json_schema_extra=immutable("model"))]
    """The Model this version belongs to."""
    version: Annotated[
        str,
        Field(
            pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$",
            max_length=40,
            json_schema_extra=immutable("version"),
        ),
    ]
    """The version's name, unique within its model (v1, 2024-06-01, 1.4.2)."""
    artifact: Annotated[Artifact, Field(json_schema_extra=immutable("artifact"))]
    baseline: Baseline | None = None
    metrics: dict[str, float] = Field(default_factory=dict, max_length=64)
    """Offline evaluation, e.g. accuracy: 0.93; a MonitorPolicy may compare live quality with it."""
    parameters: dict[str, str] = Field(default_factory=dict, max_length=256)
    """Training parameters, as strings (as MLflow records them)."""
    dataset: str | None = Field(default=None, max_length=2048)
    source: Source | None = None
    description: str | None = Field(default=None, max_length=4096)


class RollbackRecord(Schema):
    """Why this version stopped serving: set by a MonitorPolicy or `ciclo rollback`."""

    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=4096)
    at: dt.datetime


class ModelVersionStatus(Schema):
    phase: Phase | None = None
    """A summary for people; conditions carry the detail."""
    observed_generation: int = Field(default=0, ge=0)
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    served_at: dt.datetime | None = None
    """When this version first served."""
    stopped_at: dt.datetime | None = None
    stop_reason: str | None = None
    rolled_back: RollbackRecord | None = None


class ModelVersion(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["ModelVersion"] = "ModelVersion"
    metadata: ObjectMeta
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)


SPEC_RULES = validations(
    cel(
        "!has(oldSelf.baseline) || has(self.baseline)", "baseline cannot be removed once registered"
    ),
)
