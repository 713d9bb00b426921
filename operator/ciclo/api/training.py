"""A Model's training: the Job template, its schedule and triggers (spec), and the runs
the operator started with the request that caused them (status). See docs/training.md."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from ciclo.api.meta import Duration, Schema

# Five cron fields (minute hour day-of-month month day-of-week) or a macro; the CronJob
# controller judges the numbers, this stops the obviously wrong at admission.
_CRON_FIELD = r"[0-9A-Za-z*?/,-]+"
CRON_PATTERN = (
    r"^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|"
    rf"{_CRON_FIELD}( {_CRON_FIELD}){{4}})$"
)
URI_PREFIX_PATTERN = r"^(s3|gs|file|memory|gcs|az|abfs|pvc)://.+"

PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
# A core/v1 object passed to the pod as it is: the API server validates it there.
Raw = Annotated[dict[str, Any], Field(json_schema_extra=PRESERVE_UNKNOWN)]


class EnvVar(Schema):
    """An environment variable of a training container."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    """The variable's name."""
    value: str = Field(default="", max_length=32768)
    """Its value."""


class TrainingContainer(Schema):
    """One container of the training pod: the user's own image and command."""

    name: str = Field(default="train", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """The container's name."""
    image: str | None = Field(default=None, max_length=512)
    """The training image; the operator's own image (which has the `ciclo` helpers) when unset."""
    command: list[str] = Field(min_length=1, max_length=64)
    """What runs, e.g. [python, /src/train.py]."""
    args: list[str] = Field(default_factory=list, max_length=256)
    """Its arguments."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """Extra environment variables (the operator adds CICLO_* ones: docs/training.md)."""
    working_dir: str | None = Field(default=None, max_length=4096)
    """The directory the command starts in."""
    resources: Raw = Field(default_factory=dict)
    """A core/v1 ResourceRequirements, passed as it is."""
    volume_mounts: list[Raw] = Field(default_factory=list, max_length=16)
    """core/v1 VolumeMounts of the template's volumes, passed as they are."""


class TrainingTemplate(Schema):
    """What the training Job's pod runs and where."""

    containers: list[TrainingContainer] = Field(min_length=1, max_length=8)
    """The pod's containers; at least one."""
    service_account_name: str | None = Field(default=None, max_length=253)
    """The pod's ServiceAccount: one that may create this Model's ModelVersions only
    (docs/training.md shows its RBAC)."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Node labels the training pod must run on."""
    tolerations: list[Raw] = Field(default_factory=list, max_length=32)
    """core/v1 Tolerations of the training pod."""
    volumes: list[Raw] = Field(default_factory=list, max_length=16)
    """core/v1 Volumes of the training pod (a ConfigMap holding the script, a dataset's
    claim), passed as they are; the containers mount them with `volumeMounts`."""
    run_as_user: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """The UID the containers run as; unset, the image's own user, which must not be root:
    the training pod meets the Pod Security Standards' restricted profile."""
    active_deadline_seconds: int = Field(default=3600, ge=10, le=7 * 86400)
    """How long a run may take before it is stopped and counted as failed (DeadlineExceeded)."""


class Training(Schema):
    """How new versions of the Model are trained: a Job from `template`, on a schedule and
    when triggered (`ciclo retrain`, a MonitorPolicy's `retrain` action)."""

    template: TrainingTemplate
    """The training Job's pod: the user's image and command, any framework."""
    schedule: str | None = Field(default=None, pattern=CRON_PATTERN, max_length=128)
    """A cron schedule ("0 3 * * 1", "@daily"): a CronJob owned by the Model starts runs."""
    cooldown: Duration = "10m"
    """The least time between the end of a run and the start of a triggered one."""
    auto_promote: bool = False
    """True: a version this training registers becomes the Model's candidate without a
    person (it still passes the Model's gates and rollout); false: it stays Registered
    until spec.version names it."""
    artifact_store: str = Field(pattern=URI_PREFIX_PATTERN, max_length=1024)
    """An fsspec URI prefix (s3://bucket/models/iris, file:///data/models), or
    pvc://CLAIM/PATH (the claim is mounted in the training pod); each run writes under
    PREFIX/RUN/."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Failed runs of one trigger started again, with backoff, before it is given up."""
    retry_backoff: Duration = "1m"
    """The wait before the first retry; doubled for each further one (at most 1h)."""
    history: int = Field(default=3, ge=1, le=20)
    """Finished training Jobs kept, newest first, for their logs."""


class RetrainRequest(Schema):
    """A request for a training run, written by `ciclo retrain` or a MonitorPolicy's `retrain`
    action under field manager `ciclo-retrain`; the latest one replaces the one before."""

    id: str = Field(max_length=512)
    """Unique per request: the policy action's id, or manual/TIMESTAMP."""
    reason: str = Field(max_length=1024)
    """A CamelCase word (ManualRetrain, or the policy's reason)."""
    message: str = Field(default="", max_length=4096)
    """Why, for people."""
    at: dt.datetime
    """When it was asked for."""


RunOutcome = Literal["Running", "Succeeded", "Failed"]


class TrainingRun(Schema):
    """One training Job, as the Model controller last saw it."""

    job: str
    """The Job's name (also the run id the version's lineage names)."""
    trigger: str
    """What caused it: the request's id, or `schedule`."""
    version: str | None = None
    """The version the run was to register."""
    outcome: RunOutcome = "Running"
    """Running, Succeeded or Failed."""
    started_at: dt.datetime | None = None
    """When the Job started."""
    finished_at: dt.datetime | None = None
    """When it ended."""


class TrainingStatus(Schema):
    """The training's state, written by the training controller (field manager
    `ciclo-training`)."""

    handled_request: str | None = None
    """The id of the latest retrain request a run was started for (or folded into one)."""
    runs: list[TrainingRun] = Field(default_factory=list, max_length=20)
    """Recent runs, newest first."""
    trained_version: str | None = None
    """The newest version a run registered: the candidate when spec.training.autoPromote."""
    trained_for: str | None = None
    """spec.version when that run started: the trained version is the candidate only while
    spec.version still names it, so a version the user names later wins."""
