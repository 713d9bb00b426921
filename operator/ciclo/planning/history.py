"""What served when: the Model's status.history and the Event of each change of what serves.

An Event's key names its transition (what serves, what served, at which generation of the
spec): a retry of the same transition finds its Event already there, and two transitions
never share one, however close in time.
"""

from __future__ import annotations

import datetime as dt

from ciclo.api.model import HistoryEntry
from ciclo.api.modelversion import ModelVersion
from ciclo.planning.outcome import Outcome
from ciclo.planning.versions import Transition

HISTORY_LIMIT = 10


def advance(
    history: list[HistoryEntry],
    outcome: Outcome,
    by_version: dict[str, ModelVersion],
    rolled_back: set[str],
    generation: int,
    now: dt.datetime,
) -> tuple[list[HistoryEntry], list[Transition]]:
    """The history once `outcome` holds, newest first, and the Event of the change."""
    current, serving, problem = outcome.current, outcome.serving, outcome.problem
    history = [h.model_copy() for h in history]
    events: list[Transition] = []
    if serving == current:
        return history[:HISTORY_LIMIT], events
    if history and history[0].until is None:
        outcome_of = (
            "RolledBack"
            if current in rolled_back
            else ("Retired" if serving is None else "Replaced")
        )
        history[0] = history[0].model_copy(update={"until": now, "outcome": outcome_of})
    if serving is not None:
        history.insert(0, HistoryEntry(version=serving, since=now))
    if serving is None and outcome.retired:
        events.append(
            Transition(
                "Retired",
                f"retired{outcome.retired_why()}; {current} no longer serves",
                f"retired-{current}-g{generation}",
                "Warning" if outcome.retired_by else "Normal",
            )
        )
    elif serving is None:
        events.append(
            Transition(
                "NotServing",
                f"{current} no longer serves: {problem[1] if problem else 'nothing to serve'}",
                f"notserving-{current}-g{generation}",
                "Warning",
            )
        )
    elif problem and problem[0] == "RolledBack" and current is not None:
        # Traffic moved away from the bad version (from nothing, e.g. an un-retired
        # Model whose spec.version was rolled back before, it is plain Serving).
        events.append(
            Transition(
                "RolledBack",
                problem[1],
                f"rolledback-{outcome.desired}-to-{serving}-g{generation}",
                "Warning",
            )
        )
    elif current is not None and current in rolled_back:
        # spec.version cannot serve either (missing, failed): the mark moved traffic.
        mark = by_version[current].status.rolled_back
        why = f"{mark.reason}: {mark.message}" if mark else "rolled back"
        events.append(
            Transition(
                "RolledBack",
                f"{current} rolled back to {serving}: {why}",
                f"rolledback-{current}-to-{serving}-g{generation}",
                "Warning",
            )
        )
    else:
        was = f" (was {current})" if current else ""
        events.append(
            Transition(
                "Serving",
                f"{serving} serves{was}",
                f"serving-{serving}-from-{current}-g{generation}",
            )
        )
    return history[:HISTORY_LIMIT], events
