"""Conditions as the Kubernetes API conventions define them."""

from __future__ import annotations

import datetime as dt

from ciclo.api.meta import Condition, ConditionStatus

# One limit for every condition's message, whoever writes it.
MESSAGE_LIMIT = 1024


def status_of(ok: bool | None) -> ConditionStatus:
    return "Unknown" if ok is None else ("True" if ok else "False")


def merge(previous: list[Condition], current: list[Condition], now: dt.datetime) -> list[Condition]:
    """`current` with lastTransitionTime kept from `previous` where the status did not change.

    Conditions in `previous` whose type is not in `current` are kept as they were.
    """
    old = {c.type: c for c in previous}
    out = []
    for c in current:
        before = old.pop(c.type, None)
        since = before.last_transition_time if before and before.status == c.status else None
        out.append(
            c.model_copy(
                update={"last_transition_time": since or now, "message": c.message[:MESSAGE_LIMIT]}
            )
        )
    return [*out, *old.values()]


def find(conditions: list[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


def is_true(conditions: list[Condition], kind: str) -> bool:
    c = find(conditions, kind)
    return c is not None and c.status == "True"
