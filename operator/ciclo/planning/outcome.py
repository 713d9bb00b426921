"""What the Model's plan decided, before it is written down as history, Events and status."""

from __future__ import annotations

from dataclasses import dataclass

from ciclo.api.model import RetirementRecord
from ciclo.planning.rollout import Decision


@dataclass(frozen=True)
class Outcome:
    current: str | None
    """What served before this plan."""
    serving: str | None
    """What serves from now on (None: nothing)."""
    pending: str | None
    """The version coming up to take over, if any."""
    desired: str
    """spec.version, or the trained version standing in for it."""
    problem: tuple[str, str] | None
    """Why the desired version does not serve, (reason, message): Degraded."""
    waiting: tuple[str, str] | None
    """The way in holds the desired version back, (reason, message): not a problem."""
    retired: bool
    retired_by: RetirementRecord | None
    """The monitoring loop's retirement, when it retired the Model (not spec.retired)."""
    canary: Decision
    shadow_failed: bool
    """A shadow failed its comparison and holds its candidate out."""

    def retired_why(self) -> str:
        by = self.retired_by
        return f" by {by.reason}: {by.message}" if by else ""
