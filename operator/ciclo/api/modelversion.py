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
from ciclo.api.promotion import SHA256_PATTERN, URI_PATTERN, EvaluationRecord, ReviewRecord

Format = Literal["sklearn", "xgboost", "lightgbm", "onnx"]

Phase = Literal[
    "Registered",
    "Evaluating",
    "AwaitingApproval",
    "Rejected",
    "Deploying",
    "Serving",
    "Standby",
    "RolledBack",
    "Failed",
    "Retired",
]


class Artifact(Schema):
    """Where the model file is, what it is, and the digest it must have."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """s3://, gs://, https://, http://, file:// or pvc://CLAIM/path."""
    format: Format
    """The file's format, which picks the loader: sklearn, xgboost, lightgbm or onnx."""
    sha256: str = Field(pattern=SHA256_PATTERN)
    """Hex sha256 of the artifact; the serving pod refuses a file that does not match."""


class Baseline(Schema):
    """The training-data profile that drift is measured against (built by `ciclo profile`)."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """Where profile.json is: s3://, gs://, https://, http://, file:// or pvc://CLAIM/path."""
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Hex sha256 of the profile; checked when set."""


class Source(Schema):
    """Lineage: where the artifact came from."""

    run_id: str | None = Field(default=None, max_length=256)
    """The training run that produced the artifact (an MLflow or Kubeflow run id, a Job)."""
    git_commit: str | None = Field(default=None, max_length=64)
    """The commit of the training code."""
    author: str | None = Field(default=None, max_length=256)
    """Who trained or registered it."""
    trigger: str | None = Field(default=None, max_length=512)
    """What started the training run: `schedule`, or a retrain request's id."""
    parent_version: str | None = Field(default=None, max_length=40)
    """The version serving when the run started, which this one is meant to replace."""
    dataset_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Hex sha256 of the training data spec.dataset names."""


class ModelVersionSpec(Schema):
    """The registered artifact and what is known of it; what identifies it is immutable."""

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
    """The model file: where, what format, what digest. Immutable."""
    baseline: Baseline | None = None
    """The training-data profile drift is measured against; once set it cannot be removed."""
    metrics: dict[str, float] = Field(default_factory=dict, max_length=64)
    """Offline evaluation, e.g. accuracy: 0.93; a MonitorPolicy may compare live quality with it."""
    parameters: dict[str, str] = Field(default_factory=dict, max_length=256)
    """Training parameters, as strings (as MLflow records them)."""
    dataset: str | None = Field(default=None, max_length=2048)
    """The training data: a URI or a name with its version."""
    source: Source | None = None
    """Lineage: the run, commit and author the artifact came from."""
    description: str | None = Field(default=None, max_length=4096)
    """What changed in this version, for people; it may be edited."""
    tags: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=16)
    """Free words for people (baseline, candidate, gdpr-reviewed); they may be edited and show
    in `kubectl get modelversions` and `ciclo status`."""


class RollbackRecord(Schema):
    """Why this version stopped serving: set by a MonitorPolicy or `ciclo rollback`."""

    reason: str = Field(max_length=1024)
    """A CamelCase word for why (ManualRollback, or the policy's reason)."""
    message: str = Field(default="", max_length=4096)
    """The rule, its value and threshold, or the person's reason."""
    at: dt.datetime
    """When it was rolled back."""
    action: str | None = Field(default=None, max_length=512)
    """The MonitorPolicy action that asked for it (rule/version/episode), if one did."""


class ModelVersionStatus(Schema):
    """Where the version stands: its phase, conditions and when it served."""

    phase: Phase | None = None
    """A summary for people; conditions carry the detail."""
    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this status was written for."""
    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    """Serving, Validated, Available (the Model controller); ModelFound, DeletionBlocked
    (the registry controller)."""
    served_at: dt.datetime | None = None
    """When this version first served."""
    stopped_at: dt.datetime | None = None
    """When it last stopped serving."""
    stop_reason: str | None = None
    """Why it last stopped serving."""
    rolled_back: RollbackRecord | None = None
    """Set when the version was marked bad (by a MonitorPolicy or `ciclo rollback`); it does not
    serve again until its Model's spec.version names it anew."""
    evaluation: EvaluationRecord | None = None
    """What the evaluation against the champion measured (spec.promotion of its Model)."""
    reviews: list[ReviewRecord] = Field(default_factory=list, max_length=32)
    """People's approvals, rejections and comments, newest first."""


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
