"""A Model's children written by server-side apply, each skipped while unchanged.

`apply_children` writes a plan's children in the order that keeps every request served;
`apply_child` is the one write of one child (the training controller's CronJob too).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from ciclo.api.model import Model
from ciclo.controllers import promotion as way_in
from ciclo.kube.client import (
    DEPLOYMENTS,
    HTTP_ROUTES,
    SERVICES,
    TRAEFIK_SERVICES,
    Json,
    Kube,
    Ref,
)
from ciclo.planning import gateway
from ciclo.planning.model import ModelPlan

log = logging.getLogger(__name__)


# What this process last applied to each child: the manifest's hash and the object's
# generation (resourceVersion where there is none) right after. While both still match,
# applying again would change nothing, so the write is skipped; an edit by anyone else
# moves the generation and brings the apply back.
_applied: dict[tuple[str, str, str], tuple[str, str]] = {}


def _fingerprint(obj: Json) -> str:
    meta = obj["metadata"]
    return str(meta.get("generation") or meta["resourceVersion"])


def apply_child(
    kube: Kube, ref: Ref, manifest: Json, existing: Json | None, manager: str = "ciclo"
) -> None:
    meta = manifest["metadata"]
    key = (ref.plural, meta["namespace"], meta["name"])
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    if existing is not None and _applied.get(key) == (digest, _fingerprint(existing)):
        return
    _applied[key] = (digest, _fingerprint(kube.apply(ref, manifest, manager=manager)))


def apply_children(
    kube: Kube, model: Model, result: ModelPlan, existing: Mapping[str, Json]
) -> None:
    """The plan's Service, Deployments (`existing`: the Model's, by name), Gateway route
    and its Services, a shadow's mirror, and evaluation Jobs; what no longer belongs goes."""
    namespace, name = model.metadata.namespace, model.metadata.name
    # The Service first: it only ever selects a version with ready pods, so moving it
    # before any Deployment scales down keeps ready endpoints behind it throughout.
    service = kube.get(SERVICES, namespace, name)
    if result.service is not None:
        apply_child(kube, SERVICES, result.service, service)
    elif service is not None and kube.delete(SERVICES, namespace, name):
        # Only one that exists: a Model coming up has none, and a DELETE is a write.
        log.info("model %s/%s: service removed", namespace, name)
    for deployment in result.deployments:
        apply_child(kube, DEPLOYMENTS, deployment, existing.get(deployment["metadata"]["name"]))
    # A Gateway's route weighs only versions whose pods are ready by now; it moves off
    # a leaving version before that version's Deployment goes.
    # (Read first, so a converged route is not written again: a read is cheaper.)
    for backend in result.version_services:
        found = kube.get(SERVICES, namespace, backend["metadata"]["name"])
        apply_child(kube, SERVICES, backend, found)
    # A shadow's TraefikService exists before the route names it, and goes after the
    # route has stopped naming it: the champion's requests never meet a missing backend.
    mirror = model.spec.rollout.gateway and model.spec.rollout.gateway.mirror
    if result.traefik_mirror is not None:
        found = kube.get(TRAEFIK_SERVICES, namespace, result.traefik_mirror["metadata"]["name"])
        apply_child(kube, TRAEFIK_SERVICES, result.traefik_mirror, found)
    if result.route is not None:
        apply_child(kube, HTTP_ROUTES, result.route, kube.get(HTTP_ROUTES, namespace, name))
    if result.traefik_mirror is None and mirror == "TraefikService":
        stale = gateway.shadow_service_name(name)
        if kube.get(TRAEFIK_SERVICES, namespace, stale) is not None:
            kube.delete(TRAEFIK_SERVICES, namespace, stale)
    for stale in result.delete_deployments:
        kube.delete(DEPLOYMENTS, namespace, stale)
    way_in.sync_jobs(kube, model, result.evaluation_jobs)
