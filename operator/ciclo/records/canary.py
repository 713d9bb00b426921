"""Asking for a canary's promotion (`ciclo promote`) or abort (`ciclo abort`).

A promotion is `status.promoteRequest` on the Model, written under its own field manager, so
the spec stays the user's (Argo CD has nothing to revert); the Model controller promotes
the running canary's candidate it names at its next plan. An abort is a rollback mark on
the candidate (records.rollback): the champion takes all traffic back, as on a breach.
"""

from __future__ import annotations

import datetime as dt

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion, RollbackRecord
from ciclo.api.rollout import PromoteRequest
from ciclo.kube.client import MODEL_VERSIONS, MODELS, Kube
from ciclo.planning.rollout import running
from ciclo.records import rollback

MANAGER = "ciclo-promote"


class NoCanary(Exception):
    """No canary runs: there is nothing to promote or abort."""


def _running(kube: Kube, namespace: str, name: str) -> Model:
    raw = kube.get(MODELS, namespace, name)
    if raw is None:
        raise NoCanary(f"model {namespace}/{name} not found")
    model = Model.model_validate(raw)
    if not running(model.status.canary):
        raise NoCanary(f"model {namespace}/{name} runs no canary")
    return model


def promote(kube: Kube, namespace: str, name: str, reason: str) -> str:
    """Record the promotion of the running canary's candidate; the candidate's version."""
    model = _running(kube, namespace, name)
    assert model.status.canary is not None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = PromoteRequest(version=model.status.canary.version, reason=reason, at=now)
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": name, "namespace": namespace},
            "status": {"promoteRequest": record.model_dump(by_alias=True, mode="json")},
        },
        manager=MANAGER,
        status=True,
    )
    return record.version


def abort(kube: Kube, image: str, namespace: str, name: str, message: str) -> rollback.Rollback:
    """Mark the running canary's candidate rolled back: traffic returns to the champion."""
    model = _running(kube, namespace, name)
    raws = kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={name}")
    versions = [ModelVersion.model_validate(v) for v in raws]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = RollbackRecord(reason="ManualAbort", message=message, at=now)
    return rollback.mark(kube, image, model, versions, record)
