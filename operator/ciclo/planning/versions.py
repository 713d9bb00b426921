"""One ModelVersion as its Model's planner sees it: whether it failed, its phase, and
what the Model controller writes into its status (the conditions it owns, the Event of
a transition)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from ciclo.api.meta import Condition
from ciclo.api.modelversion import ModelVersion, Phase
from ciclo.planning import conditions

# The conditions of a ModelVersion that the Model controller writes (its field manager's).
VERSION_CONDITIONS = ("Serving", "Validated", "Available")


@dataclass(frozen=True)
class Transition:
    """An Event. `key` names the transition, so re-emitting it is recognised as the same."""

    reason: str
    message: str
    key: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True)
class VersionUpdate:
    """What the Model controller writes into one ModelVersion's status."""

    name: str
    phase: Phase
    conditions: list[Condition]
    """Every condition the Model controller owns on the version (VERSION_CONDITIONS)."""
    served_at: dt.datetime | None
    stopped_at: dt.datetime | None
    stop_reason: str | None
    clear_rollback: bool
    event: Transition | None


def failure(version: ModelVersion) -> Condition | None:
    """Why a version must not serve: its artifact failed validation, or its pods never
    became ready (Available=False). None when nothing is known against it."""
    for kind in ("Validated", "Available"):
        c = conditions.find(version.status.conditions, kind)
        if c is not None and c.status == "False":
            return c
    return None


def failed(version: ModelVersion) -> bool:
    return failure(version) is not None


def validated(
    version: ModelVersion, outcome: tuple[bool, str] | None, generation: int
) -> Condition | None:
    if outcome is None:
        if conditions.find(version.status.conditions, "Validated") is not None:
            return None
        # First visit: not known yet, and said so (Argo CD waits on it).
        return Condition(
            type="Validated",
            status="Unknown",
            reason="NotFetchedYet",
            message="no serving pod has fetched the artifact yet",
            observed_generation=generation,
        )
    ok, message = outcome
    return Condition(
        type="Validated",
        status=conditions.status_of(ok),
        reason="ArtifactVerified" if ok else "FetchFailed",
        message=message,
        observed_generation=generation,
    )


def with_conditions(version: ModelVersion, new: list[Condition], now: dt.datetime) -> ModelVersion:
    if not new:
        return version
    merged = conditions.merge(version.status.conditions, new, now)
    return version.model_copy(
        update={"status": version.status.model_copy(update={"conditions": merged})}
    )


def version_phase(
    version: ModelVersion,
    serving: str | None,
    pending: str | None,
    warm: list[str],
    rolled_back: set[str],
    retired: bool,
    last_served: str | None,
    held: dict[str, tuple[Phase, str]] | None = None,
) -> tuple[Phase, str]:
    v = version.spec.version
    if (why := failure(version)) is not None:
        return "Failed", why.message
    if held and v in held:  # at the door: evaluating, awaiting approval, rejected
        return held[v]
    if v in rolled_back:
        record = version.status.rolled_back
        return "RolledBack", f"{record.reason}: {record.message}" if record else "rolled back"
    if retired and v == last_served:
        return "Retired", "the model is retired"
    if v == serving:
        return "Serving", "serves the model's traffic"
    if v == pending:
        return "Deploying", "coming up; takes traffic once its pods are ready"
    if v in warm:
        return "Standby", "kept warm for an instant rollback"
    return "Registered", "registered; not serving"


def _owned(conds: list[Condition]) -> list[Condition]:
    return [c for c in conds if c.type in VERSION_CONDITIONS]


def version_update(
    mv: ModelVersion,
    serving: str | None,
    pending: str | None,
    warm: list[str],
    rolled_back: set[str],
    clear: set[str],
    retired: bool,
    last_served: str | None,
    now: dt.datetime,
    transition: str,
    held: dict[str, tuple[Phase, str]] | None = None,
) -> VersionUpdate | None:
    phase, message = version_phase(
        mv, serving, pending, warm, rolled_back, retired, last_served, held
    )
    serving_c = Condition(
        type="Serving",
        status=conditions.status_of(phase == "Serving"),
        reason=phase,
        message=message,
        observed_generation=mv.metadata.generation,
    )
    # `mv` already carries the new Validated and Available; Serving joins them here.
    owned = _owned(conditions.merge(mv.status.conditions, [serving_c], now))
    # Compared by type, so that a new order of the list is no change.
    before = {c.type: c for c in _owned(mv.status.conditions)}
    unchanged = (
        mv.status.phase == phase
        and {c.type: c for c in owned} == before
        and mv.spec.version not in clear
    )
    if unchanged:
        return None
    was_serving = mv.status.phase == "Serving"
    served_at = mv.status.served_at or (now if phase == "Serving" else None)
    stopped_at, stop_reason = mv.status.stopped_at, mv.status.stop_reason
    if was_serving and phase != "Serving":
        stopped_at, stop_reason = now, f"{phase}: {message}"
    event = None
    if mv.status.phase != phase:
        kind: Literal["Normal", "Warning"] = (
            "Warning" if phase in ("RolledBack", "Failed", "Rejected") else "Normal"
        )
        event = Transition(phase, message, f"{phase.lower()}-{transition}", kind)
    return VersionUpdate(
        name=mv.metadata.name,
        phase=phase,
        conditions=owned,
        served_at=served_at,
        stopped_at=stopped_at,
        stop_reason=stop_reason,
        clear_rollback=mv.spec.version in clear,
        event=event,
    )
