"""The Model controller's status writes: the Model's, each ModelVersion's, and the
clearing of a mark another manager set. Each is a server-side apply of the status
subresource, so it owns only its own fields."""

from __future__ import annotations

from typing import Any

from ciclo.api.model import Model, ModelStatus
from ciclo.kube.client import MODEL_VERSIONS, MODELS, Json, Kube, Ref
from ciclo.planning.readiness import MODEL_CONDITIONS
from ciclo.planning.versions import VersionUpdate


def dump(model: Any) -> Json:
    dumped: Json = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


def write_status(kube: Kube, model: Model, status: ModelStatus) -> None:
    """The Model's status, as far as this manager owns it: the retirement record and
    Alerting have managers of their own."""
    body = dump(status)
    body.pop("retirement", None)
    body.pop("promoteRequest", None)  # ciclo promote's
    body.pop("abtest", None)  # the monitoring loop's
    body.pop("shadow", None)  # the monitoring loop's
    body.pop("retrainRequest", None)  # ciclo-retrain's
    body.pop("training", None)  # the training controller's
    body["conditions"] = [c for c in body["conditions"] if c["type"] in MODEL_CONDITIONS]
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": body,
        },
        status=True,
    )


def write_version_status(kube: Kube, model: Model, update: VersionUpdate) -> None:
    """One ModelVersion's phase, conditions and serving times, as the plan has them."""
    status: Json = {"phase": update.phase, "conditions": [dump(c) for c in update.conditions]}
    for key, value in (("servedAt", update.served_at), ("stoppedAt", update.stopped_at)):
        if value is not None:
            status[key] = value.isoformat().replace("+00:00", "Z")
    if update.stop_reason:
        status["stopReason"] = update.stop_reason
    kube.apply(
        MODEL_VERSIONS,
        {
            "apiVersion": model.api_version,
            "kind": "ModelVersion",
            "metadata": {"name": update.name, "namespace": model.metadata.namespace},
            "status": status,
        },
        status=True,
    )


def clear_mark(kube: Kube, ref: Ref, kind: str, namespace: str, name: str, manager: str) -> None:
    """An empty apply by the manager that set a mark removes it (and nothing else)."""
    kube.apply(
        ref,
        {
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        },
        manager=manager,
        status=True,
    )
