"""Asking for a rollback: mark the serving version bad; the Model controller does the rest.

The mark is `status.rolledBack` on the ModelVersion, written under its own field
manager, so the spec is never touched and the Model controller can clear it with
an empty apply when the user names that version again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion, RollbackRecord
from ciclo.kube.client import MODEL_VERSIONS, MODELS, Kube
from ciclo.planning.model import plan
from ciclo.planning.rollout import judged

MANAGER = "ciclo-rollback"


class RollbackRefused(Exception):
    """Nothing was marked: there is nothing to roll back, or nothing good to roll back to."""


@dataclass(frozen=True)
class Rollback:
    model: str
    bad: str
    target: str


def request(
    kube: Kube, image: str, namespace: str, name: str, reason: str, message: str
) -> Rollback:
    """Roll back what the Model serves now (`ciclo rollback`): read it, then mark it."""
    raw = kube.get(MODELS, namespace, name)
    if raw is None:
        raise RollbackRefused(f"model {namespace}/{name} not found")
    raws = kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={name}")
    versions = [ModelVersion.model_validate(v) for v in raws]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = RollbackRecord(reason=reason, message=message, at=now)
    return mark(kube, image, Model.model_validate(raw), versions, record)


def mark(
    kube: Kube,
    image: str,
    model: Model,
    versions: list[ModelVersion],
    record: RollbackRecord,
    only: str | None = None,
) -> Rollback:
    """Mark the version `model` serves (or a running canary's candidate) with `record`;
    with `only`, just if that version is still the one judged (a MonitorPolicy judged
    that one, not whatever serves by the time it acts)."""
    name = model.metadata.name
    # A running canary's candidate is what a policy judges, and what a rollback aborts.
    bad = judged(model)
    if bad is None:
        raise RollbackRefused(f"model {name} serves nothing, so there is nothing to roll back")
    if only is not None and bad != only:
        raise RollbackRefused(f"model {name} serves {bad} now, not {only}")
    marked = [
        v.model_copy(update={"status": v.status.model_copy(update={"rolled_back": record})})
        if v.spec.version == bad
        else v
        for v in versions
    ]
    # What the Model controller would do with the mark: if it keeps serving `bad`, refuse.
    outcome = plan(model, marked, [], image, record.at).target
    if outcome in (None, bad):
        raise RollbackRefused(f"model {name}: no good version to roll back to from {bad}")
    target = next(v for v in versions if v.spec.version == bad)
    kube.apply(
        MODEL_VERSIONS,
        {
            "apiVersion": target.api_version,
            "kind": "ModelVersion",
            "metadata": {"name": target.metadata.name, "namespace": model.metadata.namespace},
            "status": {
                "rolledBack": record.model_dump(by_alias=True, mode="json", exclude_none=True)
            },
        },
        manager=MANAGER,
        status=True,
    )
    return Rollback(model=name, bad=bad, target=outcome)
