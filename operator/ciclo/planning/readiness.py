"""The Model's own conditions: Ready, Progressing and Degraded, from what the plan decided.

Alerting is the monitoring loop's (docs/architecture.md, who writes which condition).
"""

from __future__ import annotations

import datetime as dt

from ciclo.api.meta import Condition
from ciclo.api.model import ModelStatus
from ciclo.planning import conditions
from ciclo.planning.outcome import Outcome

MODEL_CONDITIONS = ("Ready", "Progressing", "Degraded")


def model_conditions(
    outcome: Outcome, ready_of: dict[str, int], need: int, want: int, generation: int
) -> list[Condition]:
    """Ready: the Service has ready endpoints of the serving version; Progressing: a version
    is on its way in (or the way in holds it); Degraded: spec.version cannot serve."""
    serving, pending, problem, waiting = (
        outcome.serving,
        outcome.pending,
        outcome.problem,
        outcome.waiting,
    )
    canary = outcome.canary
    ready = ready_of.get(serving, 0) if serving is not None else 0

    def cond(kind: str, ok: bool, reason: str, message: str) -> Condition:
        return Condition(
            type=kind,
            status=conditions.status_of(ok),
            reason=reason,
            message=message,
            observed_generation=generation,
        )

    coming = (
        f"; {pending} is coming up: {ready_of.get(pending, 0)}/{need} ready pods needed "
        "before it takes traffic"
        if pending
        else ""
    )
    if outcome.retired:
        ready_c = cond(
            "Ready",
            False,
            "Retired",
            f"the model is retired{outcome.retired_why()}: nothing serves",
        )
        progressing = cond("Progressing", False, "Retired", "retired")
    elif serving is None and waiting is not None:
        ready_c = cond("Ready", False, waiting[0], f"nothing serves yet: {waiting[1]}")
        progressing = cond("Progressing", True, *waiting)
    elif serving is None and pending is not None:
        ready_c = cond("Ready", False, "Progressing", f"nothing serves yet{coming}")
        progressing = cond("Progressing", True, "Rollout", f"rolling out {pending}{coming}")
    elif serving is None:
        ready_c = cond(
            "Ready", False, problem[0] if problem else "NoVersion", problem[1] if problem else ""
        )
        progressing = cond(
            "Progressing", False, problem[0] if problem else "NoVersion", "nothing to serve"
        )
    else:
        is_ready = ready >= 1 or want == 0
        done = pending is None and ready >= want
        ready_c = (
            cond(
                "Ready",
                True,
                "Serving",
                f"{serving} serves with {ready}/{want} ready replicas{coming}",
            )
            if is_ready
            else cond(
                "Ready", False, "Progressing", f"{serving}: {ready}/{want} replicas ready{coming}"
            )
        )
        progressing = (
            cond("Progressing", True, waiting[0], f"{serving} serves; {waiting[1]}")
            if waiting is not None
            else cond("Progressing", True, "Canary", canary.canary.message)
            if canary.active and canary.canary is not None
            else cond("Progressing", False, "ABTestConcluded", canary.canary.message)
            if canary.canary is not None
            and canary.canary.phase == "Concluded"
            and pending == canary.canary.version
            else cond("Progressing", False, "ShadowAborted", problem[1])
            if outcome.shadow_failed and problem is not None
            else cond("Progressing", False, "Complete", f"{serving} is rolled out")
            if done
            else cond("Progressing", True, "Rollout", f"{serving}: {ready}/{want} ready{coming}")
        )
    degraded = (
        cond("Degraded", True, *problem)
        if problem
        else cond(
            "Degraded",
            False,
            "AsExpected",
            waiting[1]
            if waiting
            else "spec.version serves"
            if not pending
            else f"spec.version {pending} is coming up",
        )
    )
    return [ready_c, progressing, degraded]


def with_failure(
    status: ModelStatus, message: str, generation: int, now: dt.datetime
) -> ModelStatus:
    """The planned status, once writing the children failed: not Ready, Degraded, and why."""
    failed_conditions = [
        Condition(
            type=kind,
            status=value,
            reason="ApplyFailed",
            message=message,
            observed_generation=generation,
        )
        for kind, value in (("Ready", "False"), ("Degraded", "True"))
    ]
    return status.model_copy(
        update={
            "conditions": conditions.merge(status.conditions, failed_conditions, now),
            "last_action": f"ApplyFailed: {message[:200]}",
        }
    )
