"""A MonitorPolicy's actions: alert, roll back, retire, retrain. Each is idempotent: Events are
named after the action, and a version or Model already marked is not marked again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion, RollbackRecord
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.kube import events
from ciclo.kube.client import Json, Kube
from ciclo.planning.monitorpolicy import Due
from ciclo.records import retirement, retrain, rollback


@dataclass(frozen=True)
class Subject:
    """What one evaluation read: the policy, its Model and the Model's versions."""

    policy: MonitorPolicy
    model: Model
    versions: dict[str, ModelVersion]

    @property
    def reason(self) -> str:
        return f"MonitorPolicy {self.policy.metadata.name}"


def ref(obj: MonitorPolicy | Model) -> Json:
    """What an Event needs of the object it is about."""
    meta = obj.metadata
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
    }


def act(kube: Kube, image: str, subject: Subject, due: Due, now: dt.datetime) -> str:
    """Take one action; what happened, for the record."""
    policy = ref(subject.policy)
    note = f"{subject.reason}: {due.detail}"
    if due.rule.action == "alert":
        events.emit(kube, policy, "RuleBreached", note, f"alert/{due.id}", "Warning")
        name = subject.policy.metadata.name
        key = f"alert/{name}/{due.id}"
        events.emit(kube, ref(subject.model), "RuleBreached", note, key, "Warning")
        return f"alert: {due.detail}"
    if due.rule.action == "rollback":
        record = RollbackRecord(reason=subject.reason, message=due.detail, at=now, action=due.id)
        versions = list(subject.versions.values())
        try:
            done = rollback.mark(kube, image, subject.model, versions, record, only=due.version)
        except rollback.RollbackRefused as e:
            refused = f"{note}; not rolled back: {e}"
            events.emit(kube, policy, "RollbackRefused", refused, f"refused/{due.id}", "Warning")
            return f"not rolled back: {e}"
        moved = f"rolled back from {done.bad} to {done.target}"
        events.emit(kube, policy, "RolledBack", f"{note}; {moved}", f"rollback/{due.id}", "Warning")
        return f"{moved}: {due.detail}"
    if due.rule.action == "retrain":
        # A request in the Model's status, named after the action: the training controller
        # starts one run for it (or folds it into the one running).
        try:
            retrain.request(kube, subject.model, due.id, subject.reason, due.detail, now)
        except retrain.RetrainRefused as e:
            events.emit(kube, policy, "RetrainRefused", f"{note}; {e}", f"retrain/{due.id}")
            return f"not retrained: {e}"
        asked = f"{note}; retraining requested"
        events.emit(kube, policy, "RetrainRequested", asked, f"retrain/{due.id}", "Warning")
        return f"retrain requested: {due.detail}"
    # retire: recorded in the Model's status, as a rollback is; the spec stays the user's
    retirement.request(kube, subject.model, subject.reason, due.detail, due.id, now)
    events.emit(kube, policy, "Retired", f"{note}; model retired", f"retire/{due.id}", "Warning")
    return f"retired: {due.detail}"
