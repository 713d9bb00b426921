"""The way in: how a candidate version is evaluated against the champion, the gates it must
pass, and whether a person must approve it (a Model's spec.promotion), and what the
evaluation and the review recorded (a ModelVersion's status)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from ciclo.api.meta import Schema, cel, validations

URI_PATTERN = r"^(s3|gs|https|http|file|pvc)://.+"
SHA256_PATTERN = r"^[a-f0-9]{64}$"

Metric = Literal[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "mae",
    "rmse",
    "r2",
    "latency_p50_ms",
    "latency_p99_ms",
]
"""What `ciclo evaluate` measures: quality on the dataset's rows (precision, recall and f1
macro-averaged over the classes; mae, rmse, r2 for regression) and the latency of one row."""

LOWER_IS_BETTER: frozenset[str] = frozenset({"mae", "rmse", "latency_p50_ms", "latency_p99_ms"})


class EvaluationDataset(Schema):
    """Labelled rows that candidate and champion are both scored on."""

    uri: str = Field(pattern=URI_PATTERN, max_length=2048)
    """s3://, gs://, https://, http://, file:// or pvc://CLAIM/path."""
    sha256: str = Field(pattern=SHA256_PATTERN)
    """Hex sha256 of the file; the evaluation refuses a file that does not match."""
    format: Literal["csv", "parquet"] = "csv"
    """csv (a header row, then the rows) or parquet."""
    target: str = Field(default="target", min_length=1, max_length=256)
    """The column holding the true label; every other column is a feature, in file order."""


class Evaluation(Schema):
    """The evaluation Job's inputs."""

    dataset: EvaluationDataset
    """The labelled rows."""
    timeout_seconds: int = Field(default=600, ge=10, le=86400)
    """How long the Job may run before it fails (its activeDeadlineSeconds)."""


class Gate(Schema):
    """A bound one metric of the candidate must meet: absolute (min, max) and/or relative to
    the champion (maxDrop)."""

    metric: Metric
    """The metric judged."""
    min: float | None = None
    """The candidate fails below this value."""
    max: float | None = None
    """The candidate fails above this value."""
    max_drop: float | None = Field(default=None, ge=0, le=1e9)
    """How much worse than the champion the candidate may be, in the metric's own units
    (accuracy 0.01 is one point; latency_p99_ms 0.5 is half a millisecond slower). With no
    champion (a first version) it passes, and says so."""


GATE_RULES = validations(
    cel(
        "has(self.min) || has(self.max) || has(self.maxDrop)",
        "a gate needs a bound: min, max or maxDrop",
    ),
    cel(
        "!has(self.min) || !has(self.max) || self.min <= self.max",
        "min must not exceed max",
        field_path=".min",
    ),
)


class Promotion(Schema):
    """What a new spec.version must pass before it takes any traffic; until then the serving
    version (the champion) keeps serving."""

    evaluation: Evaluation | None = None
    """The evaluation Job's dataset; required by gates."""
    gates: list[Annotated[Gate, Field(json_schema_extra=GATE_RULES)]] = Field(
        default_factory=list, max_length=16
    )
    """Bounds the candidate must meet; all must pass."""
    require_approval: bool = False
    """True: a candidate that passed its gates waits for `ciclo approve` (a Review)."""


PROMOTION_RULES = validations(
    cel(
        "!has(self.gates) || size(self.gates) == 0 || has(self.evaluation)",
        "gates need an evaluation dataset",
        field_path=".evaluation",
    ),
)


class MetricResult(Schema):
    """One metric of both versions on the same rows."""

    metric: str = Field(max_length=63)
    """The metric's name."""
    candidate: float
    """The candidate's value."""
    champion: float | None = None
    """The champion's value; unset with no champion."""
    delta: float | None = None
    """candidate - champion."""


class ClassResult(Schema):
    """One class's figures for one version."""

    label: str = Field(max_length=256)
    """The class."""
    support: int = Field(ge=0)
    """Rows whose true label it is."""
    precision: float
    """Of the rows predicted as the class, the share that are."""
    recall: float
    """Of the rows that are the class, the share predicted so."""
    f1: float
    """Their harmonic mean."""


class EvaluationRecord(Schema):
    """What the evaluation Job measured, recorded by the operator from the Job's result."""

    champion: str | None = Field(default=None, max_length=40)
    """The version compared with; unset when nothing served."""
    dataset_sha256: str = Field(pattern=SHA256_PATTERN)
    """The dataset evaluated on: a new dataset in spec.promotion evaluates again."""
    rows: int = Field(ge=0)
    """Rows scored."""
    metrics: list[MetricResult] = Field(default_factory=list, max_length=32)
    """Each metric for both versions, and the delta."""
    classes: list[ClassResult] = Field(default_factory=list, max_length=32)
    """The candidate's per-class figures (classification), largest classes first."""
    champion_classes: list[ClassResult] = Field(default_factory=list, max_length=32)
    """The champion's per-class figures."""
    seconds: float = Field(default=0.0, ge=0)
    """How long the scoring took, fetching included."""
    finished_at: dt.datetime
    """When the Job finished."""
    error: str | None = Field(default=None, max_length=1024)
    """Why the evaluation failed (no metrics then): a wrong digest, a missing column, ..."""


Decision = Literal["Approve", "Reject", "Comment"]


class ReviewRecord(Schema):
    """A person's decision on a candidate, from a Review the API server checked."""

    decision: Decision
    """Approve, Reject or Comment."""
    user: str = Field(max_length=256)
    """The authenticated user who made it (the Review's creator, checked at admission)."""
    comment: str = Field(default="", max_length=4096)
    """Why, in their words."""
    at: dt.datetime
    """When the Review was created."""
    review: str = Field(max_length=253)
    """The Review's name."""
