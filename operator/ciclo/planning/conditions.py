"""Conditions as the Kubernetes API conventions define them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ciclo.api.meta import Condition, ConditionStatus

# One limit for every condition's message, whoever writes it.
MESSAGE_LIMIT = 1024


def status_of(ok: bool | None) -> ConditionStatus:
    return "Unknown" if ok is None else ("True" if ok else "False")


def condition(
    kind: str,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int,
    previous: list[Condition],
    now: dt.datetime,
) -> Condition:
    """One condition, its message cut to the limit, lastTransitionTime kept from `previous`
    while the status stays the same. Every writer builds its conditions here."""
    status = status_of(ok)
    before = find(previous, kind)
    since = before.last_transition_time if before and before.status == status else None
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message[:MESSAGE_LIMIT],
        observed_generation=generation,
        last_transition_time=since or now,
    )


def unchanged(before: Condition | None, after: Condition) -> bool:
    """Whether writing `after` would change nothing but its timestamp."""
    return before is not None and before.model_dump(
        exclude={"last_transition_time"}
    ) == after.model_dump(exclude={"last_transition_time"})


def dump(c: Condition) -> dict[str, Any]:
    """The condition as the API server stores it."""
    out: dict[str, Any] = c.model_dump(by_alias=True, mode="json", exclude_none=True)
    return out


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
