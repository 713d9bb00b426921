"""A Model's training, planned: whether to start a run now, which Jobs to remove, the
CronJob of its schedule, and the training status and conditions.

Pure: the training controller reads the Model, its Jobs, its versions and the clock,
calls `plan`, and writes what it returns. Every decision follows from what is in the
cluster, never from memory: a run's Job is named after its trigger and attempt (a
second create is a 409), a request is served once any Job was not yet over when it
was made, and the request last handled is in status. So an operator restarted at any
point starts no second run. See docs/training.md.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.training import RunOutcome, TrainingRun, TrainingStatus
from ciclo.monitoring.evaluation import seconds
from ciclo.planning import conditions
from ciclo.planning.training_jobs import (
    ATTEMPT_ANNOTATION,
    FOR_ANNOTATION,
    SCHEDULE,
    TRIGGER_ANNOTATION,
    VERSION_ANNOTATION,
    cronjob_manifest,
    job_manifest,
)

Json = dict[str, Any]

TRAINING_CONDITIONS = ("Training", "TrainingFailed")
MAX_BACKOFF = 3600.0
LOG_LINES = 20


@dataclass(frozen=True)
class JobState:
    """What the plan needs of one training Job."""

    name: str
    trigger: str
    attempt: int
    created: dt.datetime
    outcome: RunOutcome
    version: str | None = None
    desired: str | None = None
    finished: dt.datetime | None = None
    reason: str = ""
    message: str = ""


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def job_state(job: Json) -> JobState:
    """A Job as the plan sees it: its trigger and attempt from the annotations the
    operator (or its CronJob's template) put there, its outcome from its conditions."""
    meta, status = job["metadata"], job.get("status") or {}
    notes = meta.get("annotations") or {}
    outcome: RunOutcome = "Running"
    finished, reason, message = None, "", ""
    for c in status.get("conditions") or []:
        if c.get("status") != "True" or c.get("type") not in ("Complete", "Failed"):
            continue
        outcome = "Succeeded" if c["type"] == "Complete" else "Failed"
        finished = _time(c.get("lastTransitionTime"))
        reason, message = c.get("reason", ""), c.get("message", "")
    if outcome != "Running":
        finished = _time(status.get("completionTime")) or finished
    created = _time(meta.get("creationTimestamp")) or dt.datetime.min.replace(tzinfo=dt.UTC)
    return JobState(
        name=meta["name"],
        trigger=notes.get(TRIGGER_ANNOTATION, SCHEDULE),
        attempt=int(notes.get(ATTEMPT_ANNOTATION, "1")),
        created=created,
        outcome=outcome,
        version=notes.get(VERSION_ANNOTATION),
        desired=notes.get(FOR_ANNOTATION),
        finished=finished or (created if outcome != "Running" else None),
        reason=reason,
        message=message,
    )


_NUMBERED = re.compile(r"^v([0-9]+)$")


def next_version(versions: list[ModelVersion], jobs: list[JobState]) -> str:
    """v(N+1) after the highest vN registered or allocated to a run; a collision with a
    version registered meanwhile by hand fails the run's create (409) and its retry takes
    the next number."""
    taken = [v.spec.version for v in versions] + [j.version for j in jobs if j.version]
    numbers = [int(m.group(1)) for t in taken if (m := _NUMBERED.match(t))]
    return f"v{max(numbers, default=0) + 1}"


@dataclass
class TrainingPlan:
    create: Json | None = None
    """A Job to create now."""
    delete: list[str] = field(default_factory=list)
    """Jobs to remove: a second one running at once, old finished ones, all when retired."""
    cronjob: Json | None = None
    """The schedule's CronJob to apply; None with delete_cronjob removes it."""
    delete_cronjob: bool = False
    status: TrainingStatus = field(default_factory=TrainingStatus)
    conditions: list[Condition] = field(default_factory=list)
    requeue_after: float | None = None
    """Seconds until a cooldown or backoff ends."""


def failed_log_wanted(model: Model, jobs: list[JobState]) -> str | None:
    """The newest finished Job, if it failed and TrainingFailed does not name it yet: the
    controller reads the tail of its log for the condition's message."""
    done = sorted((j for j in jobs if j.finished), key=lambda j: j.finished or j.created)
    if not done or done[-1].outcome != "Failed":
        return None
    before = conditions.find(model.status.conditions, "TrainingFailed")
    return None if before and done[-1].name in before.message else done[-1].name


def plan(
    model: Model,
    jobs: list[JobState],
    versions: list[ModelVersion],
    image: str,
    now: dt.datetime,
    cronjob_exists: bool = False,
    logs: dict[str, str] | None = None,
) -> TrainingPlan:
    spec, status = model.spec, model.status
    training = spec.training
    previous = status.training or TrainingStatus()
    generation = model.metadata.generation
    out = TrainingPlan(status=previous.model_copy(deep=True))
    retired = spec.retired or status.retirement is not None
    registered = {v.spec.version for v in versions}

    def cond(kind: str, ok: bool, reason: str, message: str) -> Condition:
        return conditions.condition(kind, ok, reason, message, generation, status.conditions, now)

    if training is None or retired:
        why = "Retired" if retired else "NotConfigured"
        out.delete = [j.name for j in jobs]
        out.delete_cronjob = cronjob_exists
        msg = "the Model is retired" if retired else "no spec.training"
        out.conditions = [cond("Training", False, why, msg)]
        if conditions.find(status.conditions, "TrainingFailed") is not None:
            out.conditions.append(cond("TrainingFailed", False, why, msg))
        return out

    # One run at a time: the oldest running Job stays, a second (a schedule firing
    # just as a trigger's run started) is removed.
    running = sorted((j for j in jobs if j.outcome == "Running"), key=lambda j: j.created)
    out.delete = [j.name for j in running[1:]]
    active = running[0] if running else None
    version = next_version(versions, jobs)

    request = status.retrain_request
    waiting: str | None = None
    if request is not None and request.id != previous.handled_request:
        served = any(
            j.trigger == request.id or j.finished is None or j.finished >= request.at for j in jobs
        )
        last_end = max((j.finished for j in jobs if j.finished), default=None)
        ready_at = last_end + dt.timedelta(seconds=seconds(training.cooldown)) if last_end else now
        if served:
            out.status.handled_request = request.id
        elif now >= ready_at:
            out.create = job_manifest(model, training, image, request.id, 1, version)
            out.status.handled_request = request.id
        else:
            out.requeue_after = (ready_at - now).total_seconds()
            waiting = f"{request.id} waits for the cooldown until {ready_at.isoformat()}"

    # A triggered run that failed is tried again after a backoff, while its trigger is
    # the latest and it has retries left; a scheduled one waits for the next schedule.
    done = sorted((j for j in jobs if j.finished), key=lambda j: j.finished or j.created)
    last = done[-1] if done else None
    retry_note = ""
    if (
        last is not None
        and last.outcome == "Failed"
        and last.trigger != SCHEDULE
        and (request is None or request.id == last.trigger)
        and out.create is None
    ):
        if last.attempt <= training.max_retries:
            delay = min(seconds(training.retry_backoff) * 2 ** (last.attempt - 1), MAX_BACKOFF)
            at = (last.finished or now) + dt.timedelta(seconds=delay)
            if active is None and now >= at:
                out.create = job_manifest(
                    model, training, image, last.trigger, last.attempt + 1, version
                )
                retry_note = f"; attempt {last.attempt + 1} started"
            elif active is None:
                out.requeue_after = min(out.requeue_after or delay, (at - now).total_seconds())
                retry_note = f"; attempt {last.attempt + 1} at {at.isoformat()}"
        else:
            retry_note = f"; given up after {last.attempt} attempts"
    if out.create is not None and active is not None:
        out.create = None  # never while one runs; its end queues the Model again

    if training.schedule:
        suspend = active is not None and active.trigger != SCHEDULE
        out.cronjob = cronjob_manifest(model, training, image, version, suspend)
    else:
        out.delete_cronjob = cronjob_exists

    # Old finished Jobs go, newest kept for their logs.
    keep = {j.name for j in done[-training.history :]}
    out.delete += [j.name for j in done if j.name not in keep]

    newest = sorted(jobs, key=lambda j: j.created, reverse=True)
    out.status.runs = [
        TrainingRun(
            job=j.name,
            trigger=j.trigger,
            version=j.version,
            outcome=j.outcome,
            started_at=j.created,
            finished_at=j.finished,
        )
        for j in newest[: training.history + 1]
    ]
    for j in reversed(done):
        if j.outcome == "Succeeded" and j.version in registered:
            if previous.trained_version != j.version:
                out.status.trained_version = j.version
                out.status.trained_for = j.desired
            break

    if active is not None:
        out.conditions.append(
            cond("Training", True, "Running", f"job {active.name} (trigger {active.trigger})")
        )
    elif out.create is not None:
        started = out.create["metadata"]["name"]
        out.conditions.append(cond("Training", True, "Starting", f"job {started}"))
    else:
        out.conditions.append(cond("Training", False, "Idle", waiting or "no run in progress"))

    if last is None:
        out.conditions.append(cond("TrainingFailed", False, "NoRuns", "no run has finished yet"))
    elif last.outcome == "Failed":
        tail = (logs or {}).get(last.name, "")
        before = conditions.find(status.conditions, "TrainingFailed")
        if not tail and before is not None and last.name in before.message:
            message = before.message  # keep the log tail read when it failed
        else:
            message = (
                f"job {last.name} (trigger {last.trigger}, attempt {last.attempt}) failed: "
                f"{last.reason}: {last.message}{retry_note}"
                + (f"\nlog tail:\n{tail}" if tail else "")
            )
        out.conditions.append(cond("TrainingFailed", True, last.reason or "JobFailed", message))
    elif last.version and last.version not in registered:
        out.conditions.append(
            cond(
                "TrainingFailed",
                True,
                "VersionNotRegistered",
                f"job {last.name} succeeded but registered no ModelVersion {last.version}",
            )
        )
    else:
        out.conditions.append(
            cond("TrainingFailed", False, "Succeeded", f"job {last.name} registered {last.version}")
        )
    return out


def trained_name(model: Model) -> str | None:
    """The version a training run registered that stands for the Model's candidate, as far
    as the Model's status says: while spec.version names what it named when the run started,
    and while the Model lets it in (spec.training.autoPromote, or spec.promotion, whose gates
    it then passes and, without autoPromote, a person's approval: docs/training.md)."""
    training, trained = model.spec.training, model.status.training
    if training is None or trained is None:
        return None
    if not training.auto_promote and model.spec.promotion is None:
        return None
    version = trained.trained_version
    if trained.trained_for != model.spec.version or version == model.spec.version:
        return None
    return version


def trained_candidate(model: Model, registered: set[str], rolled_back: set[str]) -> str | None:
    """The trained version that comes in in spec.version's place (`trained_name`) while it is
    registered and not rolled back; a rollback of it, or a new spec.version, ends it. The
    spec is never written. One that fails its gates, digest or pods stays the candidate, so
    the Model says why, as it would for spec.version."""
    version = trained_name(model)
    return version if version in registered and version not in rolled_back else None
