"""The training controller: a Model's training Jobs and schedule. Read, plan, write.

Its own work queue and field manager (`ciclo-training`): it owns the Model's
`status.training` and the conditions `Training` and `TrainingFailed`, so it never
races the Model controller's status. Woken by a Model's spec or retrain request
changing, by its training Jobs' progress, and by the resync. The decision is
`planning.training.plan` (pure); see docs/training.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.config import Config
from ciclo.controllers import metrics
from ciclo.controllers.cache import CachedKube
from ciclo.controllers.children import apply_child
from ciclo.controllers.workqueue import Relevance, WorkQueue
from ciclo.kube import events
from ciclo.kube.client import (
    CRON_JOBS,
    JOBS,
    MODEL_VERSIONS,
    MODELS,
    PODS,
    Conflict,
    Kube,
    NamespaceTerminating,
)
from ciclo.planning import conditions
from ciclo.planning.manifests import MODEL_LABEL
from ciclo.planning.training import (
    LOG_LINES,
    TRAINING_CONDITIONS,
    failed_log_wanted,
    job_state,
    plan,
)
from ciclo.planning.training_jobs import TRAINING_LABEL, TRIGGER_ANNOTATION

log = logging.getLogger(__name__)

MANAGER = "ciclo-training"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _log_tail(kube: Kube, namespace: str, job: str) -> str:
    pods = kube.list(PODS, namespace, labels=f"job-name={job}")
    if not pods:
        return ""
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
    tail = kube.log_tail(namespace, pod["metadata"]["name"], LOG_LINES).strip()
    if tail:
        return tail
    # No log from the node (it is gone, or serves none): the containers' termination
    # messages, which FallbackToLogsOnError fills with the log's end.
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return "\n".join(
        m
        for c in statuses
        if (m := ((c.get("state") or {}).get("terminated") or {}).get("message"))
    ).strip()


def reconcile(kube: Kube, config: Config, namespace: str, name: str) -> float | None:
    """Start, retry, schedule or remove the Model's training runs; the seconds after
    which to look again (a cooldown or a backoff ending), if any."""
    raw = kube.get(MODELS, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None  # its Jobs and CronJob are owned by it: garbage collection removes them
    model = Model.model_validate(raw)
    mine = [c for c in model.status.conditions if c.type in TRAINING_CONDITIONS]
    if model.spec.training is None and model.status.training is None and not mine:
        return None  # never trained: nothing to read
    selector = f"{MODEL_LABEL}={name},{TRAINING_LABEL}=true"
    jobs = [job_state(j) for j in kube.list(JOBS, namespace, labels=selector)]
    versions = [
        ModelVersion.model_validate(v)
        for v in kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={name}")
    ]
    cronjob = kube.list(CRON_JOBS, namespace, labels=f"{MODEL_LABEL}={name}")
    wanted = failed_log_wanted(model, jobs)
    logs = {wanted: _log_tail(kube, namespace, wanted)} if wanted else {}
    now = _now()
    result = plan(model, jobs, versions, config.image, now, bool(cronjob), logs)

    try:
        if result.create is not None:
            job = result.create["metadata"]["name"]
            # Event first, named after the Job: a restart between the two meets the same name.
            trigger = result.create["metadata"]["annotations"][TRIGGER_ANNOTATION]
            events.emit(kube, raw, "TrainingStarted", f"job {job} (trigger {trigger})", job)
            try:
                kube.create(JOBS, namespace, result.create)
                metrics.TRAINING_RUNS.inc()
            except Conflict:
                pass  # created before a restart: the same trigger names the same Job
        for stale in result.delete:
            kube.delete(JOBS, namespace, stale)
        if result.cronjob is not None:
            apply_child(kube, CRON_JOBS, result.cronjob, cronjob[0] if cronjob else None, MANAGER)
        elif result.delete_cronjob:
            for c in cronjob:
                kube.delete(CRON_JOBS, namespace, c["metadata"]["name"])
    except NamespaceTerminating:
        return None

    previous = model.status.training
    before = [conditions.dump(c) for c in mine]
    after = [conditions.dump(c) for c in result.conditions]
    status = result.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    old = previous.model_dump(by_alias=True, mode="json", exclude_none=True) if previous else None
    if status != old or sorted(map(str, before)) != sorted(map(str, after)):
        kube.apply(
            MODELS,
            {
                "apiVersion": model.api_version,
                "kind": "Model",
                "metadata": {"name": name, "namespace": namespace},
                "status": {"training": status, "conditions": after},
            },
            manager=MANAGER,
            status=True,
        )
    return result.requeue_after


Queue = WorkQueue[tuple[str, str]]


def register(kube: CachedKube, config: Config) -> Queue:
    """The handlers: a Model's spec, retrain request or retirement changing, and its
    training Jobs' progress, queue it for this controller."""
    # Reads go to the API server, not the operator's memory: the version a run registered
    # must be seen when its Job's completion is (the memory may lag the watch), and
    # training reconciles are few.
    direct = kube.inner
    queue: Queue = WorkQueue(
        lambda key: reconcile(direct, config, *key), max(1, config.workers // 4)
    )
    relevance = Relevance()

    @kopf.on.event("ciclo.dev", "v1alpha1", "models")
    def training_model_event(
        namespace: str | None, name: str, type: str, body: kopf.Body, **_: Any
    ) -> None:
        # The Model controller's handler records the object in memory; this one only queues.
        if not namespace:
            return
        key = ("model", namespace, name)
        if type == "DELETED":
            relevance.forget(key)
            return
        status = body.get("status") or {}
        if not (body.get("spec") or {}).get("training") and not status.get("training"):
            return
        meta = body["metadata"]
        fingerprint = (
            meta.get("generation"),
            (status.get("retrainRequest") or {}).get("id"),
            (status.get("retirement") or {}).get("at"),
            meta.get("deletionTimestamp"),
        )
        if relevance.changed(key, fingerprint):
            queue.add((namespace, name))

    @kopf.on.event("batch", "v1", "jobs", labels={TRAINING_LABEL: "true"})
    def training_job_event(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        type: str,
        body: kopf.Body,
        **_: Any,
    ) -> None:
        if not namespace or MODEL_LABEL not in labels:
            return
        key = ("job", namespace, name)
        status = body.get("status") or {}
        fingerprint = (
            status.get("active"),
            tuple((c.get("type"), c.get("status")) for c in status.get("conditions") or []),
        )
        if type == "DELETED":
            relevance.forget(key)
        elif not relevance.changed(key, fingerprint):
            return
        queue.add((namespace, labels[MODEL_LABEL]))

    return queue


def resync_all(kube: Kube, queue: Queue, namespaces: tuple[str, ...] = ()) -> None:
    """Queue every Model with training: the net under the events, and what ends a
    cooldown or backoff if the operator restarted while it ran."""
    for ns in namespaces or (None,):
        for raw in kube.list(MODELS, ns):
            if (raw.get("spec") or {}).get("training") or (raw.get("status") or {}).get("training"):
                queue.add((raw["metadata"]["namespace"], raw["metadata"]["name"]))
