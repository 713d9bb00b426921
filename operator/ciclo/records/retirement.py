"""Asking for a retirement: record it in the Model's status; the Model controller does the rest.

The record is `status.retirement`, written under its own field manager, so the
spec stays the user's (Argo CD self-heal has nothing to revert) and the Model
controller can clear it with an empty apply when the spec changes the decision:
another spec.version, or spec.retired set by the user.
"""

from __future__ import annotations

import datetime as dt

from ciclo.api.model import Model, RetirementRecord
from ciclo.kube.client import MODELS, Kube

MANAGER = "ciclo-retire"


def request(
    kube: Kube, model: Model, reason: str, message: str, action: str, now: dt.datetime
) -> bool:
    """Record the retirement of the Model as it is now; False when one is recorded already
    (a retry after a restart writes nothing new)."""
    if model.status.retirement is not None:
        return False
    record = RetirementRecord(
        version=model.spec.version, reason=reason, message=message, action=action, at=now
    )
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {"retirement": record.model_dump(by_alias=True, mode="json")},
        },
        manager=MANAGER,
        status=True,
    )
    return True
