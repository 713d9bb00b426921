"""The Model controller: read, plan, apply. Level-based; see docs/architecture.md.

Every trigger (a Model's watch event, a ModelVersion's, a Deployment's, the
resync timer) runs the same `reconcile`, which reads the current state, asks
`planning.model.plan` what it should be and writes the difference: children by
server-side apply (`children`), then marks cleared, Events, and status (`model_status`),
in an order that a restart between any two steps cannot bend (see `_reconcile`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import kopf

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.config import Config
from ciclo.controllers import metrics, prometheus_operator
from ciclo.controllers import promotion as way_in
from ciclo.controllers.cache import CachedKube
from ciclo.controllers.children import apply_children
from ciclo.controllers.model_status import clear_mark, dump, write_status, write_version_status
from ciclo.controllers.workqueue import Relevance, WorkQueue
from ciclo.kube import events
from ciclo.kube.client import (
    DEPLOYMENTS,
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    PODS,
    ApiError,
    Kube,
    NamespaceTerminating,
    NotFound,
)
from ciclo.planning import conditions, evaluation, manifests
from ciclo.planning.model import DeploymentState, plan
from ciclo.planning.pods import crash_loops, fetch_outcomes
from ciclo.planning.readiness import with_failure
from ciclo.planning.rollout import aborting_rules
from ciclo.records import retirement, rollback

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def reconcile(kube: Kube, config: Config, namespace: str, name: str) -> float | None:
    """Bring one Model's children and status to what its spec and versions call for;
    the seconds after which to look again (a rollout's deadline), if any.

    Called by the work queue only, so never twice at once for the same Model."""
    start = time.monotonic()
    try:
        again = _reconcile(kube, config, namespace, name)
    except NotFound as e:
        # Something the memory still held was deleted meanwhile (the Model, a version, the
        # namespace): its deletion's watch event queues the Model again if it still exists.
        log.info("model %s/%s: %s; gone while reconciling", namespace, name, e)
        metrics.RECONCILES.labels("Model", "gone").inc()
        return None
    except Exception as e:
        metrics.RECONCILES.labels("Model", "error").inc()
        _report_failure(kube, namespace, name, f"{type(e).__name__}: {e}")
        raise  # the work queue tries again, backing off
    finally:
        metrics.RECONCILE_SECONDS.labels("Model").observe(time.monotonic() - start)
    metrics.RECONCILES.labels("Model", "ok").inc()
    return again


def _report_failure(kube: Kube, namespace: str, name: str, message: str) -> None:
    """A reconcile that raised shows on the Model: Progressing=Unknown, ReconcileFailed."""
    try:
        raw = kube.get(MODELS, namespace, name)
        if raw is None:
            return
        model = Model.model_validate(raw)
        failure = Condition(
            type="Progressing",
            status="Unknown",
            reason="ReconcileFailed",
            message=message,
            observed_generation=model.metadata.generation,
        )
        merged = conditions.merge(model.status.conditions, [failure], _now())
        write_status(kube, model, model.status.model_copy(update={"conditions": merged}))
    except Exception:
        log.exception("model %s/%s: could not report the failed reconcile", namespace, name)


def _reconcile(kube: Kube, config: Config, namespace: str, name: str) -> float | None:
    raw = kube.get(MODELS, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None  # garbage collection removes what it owned
    model = Model.model_validate(raw)
    raw_versions = kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={name}")
    versions = [ModelVersion.model_validate(v) for v in raw_versions]
    # Reviews and a finished evaluation are recorded before the plan that reads them.
    versions = way_in.record(kube, model, versions, _now())
    selector = f"{manifests.MODEL_LABEL}={name},app.kubernetes.io/managed-by=ciclo"
    existing = {
        d["metadata"]["name"]: d for d in kube.list(DEPLOYMENTS, namespace, labels=selector)
    }
    deployments = [
        DeploymentState(
            d["metadata"]["name"],
            d["metadata"]["labels"][manifests.VERSION_LABEL],
            d.get("status", {}).get("readyReplicas", 0),
        )
        for d in existing.values()
    ]
    # Pods tell whether a version's artifact could be fetched and whether it crash-loops;
    # only a rollout in progress, or a deployed version not yet judged, has anything to
    # tell, so a converged Model spares the API server this list.
    rolling = any(
        d.get("status", {}).get("readyReplicas", 0) < d["spec"].get("replicas", 0)
        for d in existing.values()
    )
    deployed = {d.version for d in deployments}
    unjudged = any(
        v.spec.version in deployed
        and not any(c.type == "Validated" and c.status != "Unknown" for c in v.status.conditions)
        for v in versions
    )
    listing = rolling or unjudged or not existing
    pods = kube.list(PODS, namespace, labels=selector) if listing else []
    # A canary's step waits for the policy's verdict on its candidate (from memory).
    policies = (
        [MonitorPolicy.model_validate(p) for p in kube.list(MONITOR_POLICIES, namespace)]
        if model.spec.rollout.strategy == "canary"
        else []
    )
    now = _now()
    result = plan(
        model,
        versions,
        deployments,
        config.image,
        now,
        fetch_outcomes(pods),
        crash_loops(pods),
        aborting_rules(policies, name),
    )

    model_status = result.status
    try:
        apply_children(kube, model, result, existing)
    except NamespaceTerminating:
        log.info("model %s/%s: its namespace is being deleted", namespace, name)
        return None
    except ApiError as e:
        # Not only a log line: the Model says what failed, and the resync tries again.
        log.warning("model %s/%s: %s", namespace, name, e)
        model_status = with_failure(
            model_status, f"{e.status} {e.reason}: {e.message}", model.metadata.generation, now
        )
    # Scraping through the Prometheus Operator is an extra: it never fails the reconcile.
    prometheus_operator.sync_pod_monitor(kube, config, raw, model)

    # The order survives a crash between any two steps: marks are cleared before the
    # status that records their clearing (so a replan still sees the user's retry), and
    # Events, named after their transition, go before the status that ends it (so a
    # replan meets the same transition, and the same Event name, again).
    by_name = {v["metadata"]["name"]: v for v in raw_versions}
    for update in result.versions:
        if update.clear_rollback:
            clear_mark(
                kube, MODEL_VERSIONS, "ModelVersion", namespace, update.name, rollback.MANAGER
            )
    if result.clear_retirement:
        clear_mark(kube, MODELS, "Model", namespace, name, retirement.MANAGER)
    for update in result.versions:
        if update.event:
            events.emit(
                kube,
                by_name[update.name],
                update.event.reason,
                update.event.message,
                update.event.key,
                update.event.type,
            )
    for transition in result.events:
        if events.emit(
            kube, raw, transition.reason, transition.message, transition.key, transition.type
        ):
            if transition.reason == "RolledBack":
                metrics.ROLLBACKS.inc()
            elif transition.reason == "Retired":
                metrics.RETIREMENTS.inc()
    for update in result.versions:
        write_version_status(kube, model, update)
    if dump(model_status) != dump(model.status):
        write_status(kube, model, model_status)
    return result.requeue_after


Queue = WorkQueue[tuple[str, str]]


def resync_all(kube: Kube, queue: Queue, namespaces: tuple[str, ...] = ()) -> None:
    """Queue every Model, the safety net under the watch events; count models by condition.

    Only in the watched namespaces: with `--namespace`, RBAC may allow nothing else."""
    counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    models = [m for ns in namespaces or (None,) for m in kube.list(MODELS, ns)]
    for raw in models:
        queue.add((raw["metadata"]["namespace"], raw["metadata"]["name"]))
        for c in raw.get("status", {}).get("conditions", []):
            counts[(c["type"], c["status"])] += 1
    metrics.MODELS.clear()
    for (kind, status), n in counts.items():
        metrics.MODELS.labels(kind, status).set(n)


def register(kube: CachedKube, config: Config) -> Queue:
    """The kopf handlers: each queues its Model; the queue's workers reconcile."""
    queue: Queue = WorkQueue(lambda key: reconcile(kube, config, *key), config.workers)

    relevance = Relevance()

    @kopf.on.event("ciclo.dev", "v1alpha1", "models")
    def model_event(namespace: str | None, name: str, type: str, body: kopf.Body, **_: Any) -> None:
        kube.observe(MODELS, body, deleted=type == "DELETED")  # before the reconcile it queues
        if not namespace:
            return
        if type == "DELETED":
            relevance.forget(("model", namespace, name))
            return
        # The spec (generation) and deletion change plans; our own status writes do not.
        # So do records of other writers: a MonitorPolicy's retirement, `ciclo promote`,
        # an A/B test's or a shadow's verdict.
        meta = body["metadata"]
        retirement = (body.get("status") or {}).get("retirement") or {}
        promote = (body.get("status") or {}).get("promoteRequest") or {}
        verdict = (body.get("status") or {}).get("abtest") or {}
        mirrored = (body.get("status") or {}).get("shadow") or {}
        # ... and a version a training run registered, which may be the candidate.
        trained = ((body.get("status") or {}).get("training") or {}).get("trainedVersion")
        if relevance.changed(
            ("model", namespace, name),
            (
                meta.get("generation"),
                meta.get("deletionTimestamp"),
                retirement.get("at"),
                promote.get("at"),
                verdict.get("at"),
                mirrored.get("at"),
                trained,
            ),
        ):
            queue.add((namespace, name))

    @kopf.on.event("ciclo.dev", "v1alpha1", "reviews")
    def review_event(namespace: str | None, type: str, body: kopf.Body, **_: Any) -> None:
        # A Review is immutable: its creation is the news (a deleted one stays recorded).
        model = (body.get("spec") or {}).get("model")
        if namespace and model and type in ("ADDED", None):
            queue.add((namespace, model))

    @kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": "ciclo"})
    def deployment_event(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        type: str,
        body: kopf.Body,
        **_: Any,
    ) -> None:
        kube.observe(DEPLOYMENTS, body, deleted=type == "DELETED")
        if not namespace or manifests.MODEL_LABEL not in labels:
            return
        key = ("deployment", namespace, name)
        # Of a Deployment, plans read the ready count; its spec matters when someone edits it.
        meta, status = body["metadata"], body.get("status", {})
        fingerprint = (
            meta.get("generation"),
            status.get("readyReplicas", 0),
            meta.get("deletionTimestamp"),
        )
        if type == "DELETED":
            relevance.forget(key)
        elif not relevance.changed(key, fingerprint):
            return
        queue.add((namespace, labels[manifests.MODEL_LABEL]))

    @kopf.on.event("", "v1", "pods", labels={"app.kubernetes.io/managed-by": "ciclo"})
    def pod_event(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        type: str,
        body: kopf.Body,
        **_: Any,
    ) -> None:
        kube.observe(PODS, body, deleted=type == "DELETED")
        if not namespace or manifests.MODEL_LABEL not in labels:
            return
        key = ("pod", namespace, name)
        if type == "DELETED":
            relevance.forget(key)
            # An evaluation pod killed at its Job's deadline: the Job's failure is news.
            if evaluation.EVALUATES_LABEL in labels:
                queue.add((namespace, labels[manifests.MODEL_LABEL]))
            return
        # Pods matter for two things: whether a version's fetch step failed or got through,
        # and whether its server crash-loops. A step that failed and waits to run again
        # shows it in lastState only.
        status = body.get("status", {})
        fingerprint = tuple(
            (
                c["name"],
                (c.get("state", {}).get("terminated") or {}).get("exitCode"),
                (c.get("lastState", {}).get("terminated") or {}).get("exitCode"),
                (c.get("state", {}).get("waiting") or {}).get("reason"),
            )
            for c in [
                *status.get("initContainerStatuses", []),
                *status.get("containerStatuses", []),
            ]
        )
        if fingerprint and relevance.changed(key, fingerprint):
            queue.add((namespace, labels[manifests.MODEL_LABEL]))

    return queue
