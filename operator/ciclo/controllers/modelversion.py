"""The ModelVersion controller: the registry's side of a version.

It labels each version with its model, holds a finalizer so a version that
serves cannot be deleted from under its Model, and says whether the Model
exists. Everything that depends on serving (phase, the Serving and Validated
conditions) is the Model controller's, which it asks to reconcile.

A ModelVersion has no ownerReference to its Model on purpose: deleting a
Model must not delete the registry's entries.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import kopf

from ciclo.api.meta import Condition
from ciclo.controllers import metrics
from ciclo.controllers.cache import CachedKube
from ciclo.controllers.model import Queue
from ciclo.controllers.workqueue import Relevance
from ciclo.kube.client import MODEL_VERSIONS, MODELS, Json, Kube
from ciclo.planning import conditions, manifests

log = logging.getLogger(__name__)

MANAGER = "ciclo-registry"
FINALIZER = "ciclo.dev/in-use"


def in_use(model: Json | None, version: str) -> str | None:
    """Why this version may not be deleted now, or None."""
    if model is None or model["spec"].get("retired"):
        return None
    status = model.get("status", {})
    if status.get("servingVersion") == version:
        return f"model {model['metadata']['name']} serves it"
    if model["spec"].get("version") == version:
        return f"model {model['metadata']['name']} names it in spec.version"
    return None


def reconcile(kube: Kube, body: Json) -> str | None:
    """Registry work for one version; returns the Model to reconcile next, if it exists."""
    meta, spec = body["metadata"], body["spec"]
    namespace, name, model_name = meta["namespace"], meta["name"], spec["model"]
    model = kube.get(MODELS, namespace, model_name)
    if model is None:
        # A version applied together with its Model (one file, one List) can arrive before
        # the Model's watch event does: ask the API server before saying it does not exist.
        model = kube.get_fresh(MODELS, namespace, model_name)
    deleting = bool(meta.get("deletionTimestamp"))
    blocker = in_use(model, spec["version"]) if deleting else None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    hold = not deleting or blocker is not None
    has = FINALIZER in meta.get("finalizers", [])
    if hold != has or meta.get("labels", {}).get(manifests.MODEL_LABEL) != model_name:
        # Dropping the finalizer from our apply releases it: we are its only manager.
        kube.apply(
            MODEL_VERSIONS,
            {
                "apiVersion": body["apiVersion"],
                "kind": "ModelVersion",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "finalizers": [FINALIZER] if hold else [],
                    "labels": {manifests.MODEL_LABEL: model_name},
                },
            },
            manager=MANAGER,
        )
    if deleting and not blocker:
        log.info("modelversion %s/%s released for deletion", namespace, name)
        return model_name if model is not None else None

    generation = meta.get("generation", 0)
    previous = [Condition.model_validate(c) for c in body.get("status", {}).get("conditions", [])]
    found = conditions.condition(
        "ModelFound",
        model is not None,
        "Found" if model else "ModelNotFound",
        f"model {model_name}" + ("" if model else " does not exist in this namespace"),
        generation,
        previous,
        now,
    )
    wanted = [found]
    if blocker:
        why = f"{blocker}; change the Model first"
        blocked = conditions.condition(
            "DeletionBlocked", True, "InUse", why, generation, previous, now
        )
        wanted.append(blocked)
    existing = {c.type: c for c in previous}
    stale_conditions = any(not conditions.unchanged(existing.get(c.type), c) for c in wanted)
    status: Json = {
        "observedGeneration": generation,
        "conditions": [conditions.dump(c) for c in wanted],
    }
    if model is None:
        status["phase"] = "Registered"  # the Model controller owns phase once the Model exists
    current = body.get("status", {})
    stale = (
        current.get("observedGeneration") != status["observedGeneration"]
        or stale_conditions
        or (not blocker and "DeletionBlocked" in existing)
        or ("phase" in status and current.get("phase") != status["phase"])
    )
    if stale:
        kube.apply(
            MODEL_VERSIONS,
            {
                "apiVersion": body["apiVersion"],
                "kind": "ModelVersion",
                "metadata": {"name": name, "namespace": namespace},
                "status": status,
            },
            manager=MANAGER,
            status=True,
        )
    return model_name if model is not None else None


def release_deleted(kube: Kube, namespace: str | None = None, model: str | None = None) -> None:
    """Run the registry again for versions being deleted: one whose Model has just gone, or
    moved on, has no event of its own to wake it."""
    fields = f"spec.model={model}" if model else None
    for raw in kube.list(MODEL_VERSIONS, namespace, fields=fields):
        if raw["metadata"].get("deletionTimestamp"):
            reconcile(kube, raw)


def register(kube: CachedKube, queue: Queue) -> None:
    relevance = Relevance()

    @kopf.on.event("ciclo.dev", "v1alpha1", "models")
    def model_gone(namespace: str | None, name: str, type: str, **_: Any) -> None:
        if namespace and type == "DELETED":
            release_deleted(kube, namespace, name)

    @kopf.on.event("ciclo.dev", "v1alpha1", "modelversions")
    def version_event(body: kopf.Body, type: str, **_: Any) -> None:
        kube.observe(MODEL_VERSIONS, body, deleted=type == "DELETED")
        raw: Json = dict(body)
        meta = raw["metadata"]
        namespace, key = meta["namespace"], ("modelversion", meta["namespace"], meta["name"])
        metrics.version_phase(
            namespace,
            raw["spec"]["model"],
            raw["spec"]["version"],
            None if type == "DELETED" else raw.get("status", {}).get("phase"),
        )
        if type == "DELETED":
            relevance.forget(key)
            queue.add((namespace, raw["spec"]["model"]))
            return
        model = reconcile(kube, raw)
        # What a Model's plan reads of a version: its spec, the rollback mark, whether it
        # could be fetched, its deletion. The Model controller's own phase writes are echoes.
        status = raw.get("status", {})
        validated = [
            c.get("status") for c in status.get("conditions", []) if c["type"] == "Validated"
        ]
        fingerprint = (
            meta.get("generation"),
            json.dumps(status.get("rolledBack"), sort_keys=True),
            tuple(validated),
            meta.get("deletionTimestamp"),
            model,
        )
        if model is not None and relevance.changed(key, fingerprint):
            queue.add((namespace, model))
