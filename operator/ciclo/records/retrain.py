"""Asking for a training run: record the request in the Model's status; the training
controller starts the Job.

The record is `status.retrainRequest`, written under its own field manager (the spec
stays the user's, as for a retirement). Only the latest request is kept: a request
made while a run is active, or before the previous request was seen, folds into the
same run, which is what makes two triggers in quick succession start one Job.
"""

from __future__ import annotations

import datetime as dt

from ciclo.api.model import Model
from ciclo.api.training import RetrainRequest
from ciclo.kube.client import MODELS, Kube

MANAGER = "ciclo-retrain"


class RetrainRefused(Exception):
    """The Model has no spec.training."""


def manual_id(now: dt.datetime) -> str:
    return "manual-" + now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond:06d}Z"


def request(
    kube: Kube, model: Model, ident: str, reason: str, message: str, now: dt.datetime
) -> bool:
    """Record a request for a training run; False when this request (by id) is the one
    recorded already (a retried action writes nothing new)."""
    if model.spec.training is None:
        raise RetrainRefused(f"model {model.metadata.name} has no spec.training")
    current = model.status.retrain_request
    if current is not None and current.id == ident:
        return False
    record = RetrainRequest(id=ident, reason=reason, message=message, at=now)
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {"retrainRequest": record.model_dump(by_alias=True, mode="json")},
        },
        manager=MANAGER,
        status=True,
    )
    return True
