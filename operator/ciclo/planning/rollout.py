"""A canary, planned: from the Model's rollout spec, its last canary status, the champion,
the candidate and the clock, to the step, the candidate's weight, the replicas of each
version, and whether the candidate is promoted or the rollout aborted.

Pure. The MonitorPolicy judges the candidate alone while a canary runs (it reads
`judged`); a breach marks the candidate rolled back, the Model's plan then targets the
champion again, and `decide` turns that into an Aborted record. A step ends when its pause
has passed and every rule that would abort it has judged the candidate Ok since the step
began (Flagger's analysis, in effect): a slow verdict holds the step, so a bad candidate is
aborted at the step that exposed it, never after more of the traffic has gone to it.
Every step's start is a timestamp in status, so re-applying the Model neither restarts nor
skips a step.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ciclo.api.model import Model, ModelSpec
from ciclo.api.monitorpolicy import MonitorPolicy, RuleStatus
from ciclo.api.rollout import CanaryStatus, CanaryStep
from ciclo.monitoring.evaluation import seconds
from ciclo.planning.versions import Transition


@dataclass(frozen=True)
class Split:
    """How many pods of each version, and the candidate's resulting share in percent."""

    champion: int
    candidate: int
    weight: int


def replica_split(replicas: int, weight: int, gateway: bool) -> Split:
    """Pods for a step. Behind the Model's Service the share is the candidate's pods over
    all pods, so the total stays spec.serving.replicas and the weight is what the rounding
    gives (at least one pod each). Behind a Gateway the route's weights split the traffic:
    the champion keeps its pods and the candidate gets its share of them, at least one."""
    replicas = max(1, replicas)
    if gateway:
        return Split(replicas, max(1, math.ceil(replicas * weight / 100)), weight)
    if weight >= 100:
        return Split(0, replicas, 100)
    candidate = max(1, round(replicas * weight / 100))
    champion = max(1, replicas - candidate)
    return Split(champion, candidate, round(100 * candidate / (candidate + champion)))


@dataclass(frozen=True)
class Decision:
    canary: CanaryStatus | None
    """The status to record: the running canary, or the last one as it ended."""
    active: bool = False
    """A canary runs: both versions take traffic, in `split`."""
    promote: bool = False
    """The candidate passed every step: it serves from now on."""
    split: Split | None = None
    """The pods of each version while the candidate comes up or a canary runs."""
    requeue_after: float | None = None
    """Seconds until the current step's pause ends."""


# An A/B test is one step at its split that only its verdict ends.
UNTIL_CONCLUDED = "87600h"
# How often a step whose pause has passed looks again for its rules' verdict.
JUDGEMENT_POLL = 2.0


def unjudged(rules: Sequence[RuleStatus], candidate: str, since: dt.datetime) -> str | None:
    """Why a step may not end yet: a rule that would abort it has not judged the candidate
    Ok since `since` (not evaluated yet, too few labels, a breach below its threshold).
    None when all have, or when no rule would abort it (then the pause alone decides)."""
    for rule in rules:
        fresh = rule.last_evaluated is not None and rule.last_evaluated >= since
        if rule.version != candidate or not fresh:
            return f"waiting for rule {rule.name} to judge {candidate}"
        if rule.state != "Ok":
            return f"waiting for rule {rule.name} ({rule.state}) to judge {candidate} Ok"
    return None


def steps_of(spec: ModelSpec) -> list[CanaryStep]:
    """The steps a rollout walks: a canary's, or an A/B test's single split."""
    rollout = spec.rollout
    if rollout.strategy == "canary":
        return rollout.steps
    if rollout.strategy == "abtest" and rollout.abtest is not None:
        return [CanaryStep(weight=rollout.abtest.split, pause=UNTIL_CONCLUDED)]
    if rollout.strategy == "shadow":
        # No share of the answers at all (a step's weight is at least 1 by its schema):
        # one pod of the candidate takes the mirror until the verdict.
        return [CanaryStep.model_construct(weight=0, pause=UNTIL_CONCLUDED)]
    return []


def running(canary: CanaryStatus | None) -> bool:
    return canary is not None and canary.phase == "Progressing"


def judged(model: Model) -> str | None:
    """The version a MonitorPolicy judges: the candidate while a canary runs (alone: its
    pods answer only its share and the store counts quality by the version that predicted),
    else what serves."""
    canary = model.status.canary
    if canary is not None and running(canary):
        return canary.version
    return model.status.serving_version


def ended(canary: CanaryStatus, phase: str, message: str, now: dt.datetime) -> CanaryStatus:
    return canary.model_copy(
        update={
            "phase": phase,
            "weight": 100 if phase == "Promoted" else 0,
            "until": now,
            "message": message,
        }
    )


def decide(
    model: Model,
    champion: str | None,
    candidate: str | None,
    candidate_ready: int,
    now: dt.datetime,
    aborted_because: str | None = None,
    rules: Sequence[RuleStatus] = (),
) -> Decision:
    """The canary's next state.

    `champion` is what serves (None when nothing usable does: then there is nothing to
    compare against and the candidate simply switches in); `candidate` is the version
    that should serve next, None when the plan targets the champion again (a rollback
    mark on the candidate: an abort, its reason in `aborted_because`). `rules` are the
    last evaluations of the MonitorPolicy rules whose breach would abort the canary.
    """
    spec = model.spec
    previous = model.status.canary
    steps = steps_of(spec)
    gateway = spec.rollout.gateway is not None
    replicas = spec.serving.replicas
    same = (
        previous is not None
        and running(previous)
        and previous.version == candidate
        and previous.champion == champion
    )
    if previous is not None and running(previous) and not same:
        # The candidate was rolled back (or the spec moved on): traffic returns to the
        # champion and the abort is recorded; a newer candidate starts its own canary below.
        why = aborted_because or (
            f"spec.version moved to {candidate}" if candidate else "the candidate was withdrawn"
        )
        previous = ended(previous, "Aborted", why, now)
    if not steps or champion is None or candidate is None:
        return Decision(previous)
    if (
        previous is not None
        and (
            previous.phase == "Concluded"
            or (previous.phase == "Aborted" and previous.strategy == "shadow")
        )
        and (previous.version, previous.champion) == (candidate, champion)
    ):
        # An A/B test ended without promoting, or a shadow failed its comparison: the
        # champion serves until spec.version names another version.
        return Decision(previous, split=Split(replicas, 0, 0))
    if not same:
        first = replica_split(replicas, steps[0].weight, gateway)
        if candidate_ready < first.candidate:
            # Coming up at its first step's size; the champion takes all traffic meanwhile.
            return Decision(previous, split=Split(replicas, first.candidate, 0))
        started = CanaryStatus(
            version=candidate,
            champion=champion,
            strategy=spec.rollout.strategy,
            step=0,
            weight=first.weight,
            step_since=now,
            since=now,
            message=(
                f"shadow: a copy of each request to {candidate}, its answers discarded, "
                f"judged after {spec.rollout.shadow.duration if spec.rollout.shadow else '10m'}"
                if spec.rollout.strategy == "shadow"
                else f"step 1/{len(steps)}: {first.weight}% of requests to {candidate}"
            ),
        )
        return Decision(
            started, active=True, split=first, requeue_after=seconds(steps[0].pause) + 1
        )
    assert previous is not None
    step = min(previous.step, len(steps) - 1)
    split = replica_split(replicas, steps[step].weight, gateway)
    left = seconds(steps[step].pause) - (now - previous.step_since).total_seconds()
    verdict = model.status.abtest
    if (
        spec.rollout.abtest is not None
        and verdict is not None
        and (verdict.version, verdict.since) == (candidate, previous.since)
    ):
        if verdict.winner == candidate and spec.rollout.abtest.promote_winner:
            return Decision(ended(previous, "Promoted", verdict.message, now), promote=True)
        concluded = ended(previous, "Concluded", verdict.message, now)
        return Decision(concluded, split=Split(replicas, 0, 0))
    shadow = model.status.shadow
    if (
        spec.rollout.strategy == "shadow"
        and shadow is not None
        and (shadow.version, shadow.since) == (candidate, previous.since)
    ):
        if shadow.promote:
            return Decision(ended(previous, "Promoted", shadow.message, now), promote=True)
        aborted = ended(previous, "Aborted", shadow.message, now)
        return Decision(aborted, split=Split(replicas, 0, 0))
    asked = model.status.promote_request
    if asked is not None and asked.version == candidate and asked.at >= previous.since:
        message = f"promoted at step {step + 1}/{len(steps)} by hand: {asked.reason}"
        return Decision(ended(previous, "Promoted", message, now), promote=True)
    if left > 0 or candidate_ready < split.candidate:
        # The pause holds (or the step's pods are not all ready yet: its share is not real).
        current = previous.model_copy(update={"step": step, "weight": split.weight})
        return Decision(current, active=True, split=split, requeue_after=max(1.0, left + 1))
    waiting = unjudged(rules, candidate, previous.step_since)
    if waiting is not None:
        shown = f"step {step + 1}/{len(steps)}: {split.weight}% of requests to {candidate}; "
        current = previous.model_copy(
            update={"step": step, "weight": split.weight, "message": shown + waiting}
        )
        return Decision(current, active=True, split=split, requeue_after=JUDGEMENT_POLL)
    if step + 1 >= len(steps):
        message = f"passed all {len(steps)} steps: {candidate} promoted"
        return Decision(ended(previous, "Promoted", message, now), promote=True)
    step += 1
    split = replica_split(replicas, steps[step].weight, gateway)
    moved = previous.model_copy(
        update={
            "step": step,
            "weight": split.weight,
            "step_since": now,
            "message": f"step {step + 1}/{len(steps)}: {split.weight}% of requests to {candidate}",
        }
    )
    return Decision(moved, active=True, split=split, requeue_after=seconds(steps[step].pause) + 1)


def canary_running(canary: CanaryStatus | None, version: str) -> bool:
    """A canary or A/B test of `version` runs, or holds it after concluding."""
    return (
        canary is not None
        and (running(canary) or canary.phase == "Concluded")
        and canary.version == version
    )


def first_step(spec: ModelSpec) -> int | None:
    """The pods a canary's candidate comes up with, or None without a canary."""
    steps = steps_of(spec)
    if not steps:
        return None
    gateway = spec.rollout.gateway is not None
    return replica_split(spec.serving.replicas, steps[0].weight, gateway).candidate


def canary_events(
    before: CanaryStatus | None, after: CanaryStatus | None, generation: int
) -> list[Transition]:
    """An Event for each canary transition: a start, a step, a promotion, an abort."""
    if after is None or after == before:
        return []
    key = f"canary-{after.version}-from-{after.champion}-{after.since:%Y%m%dT%H%M%S}"
    if after.strategy == "shadow" and after.phase in ("Aborted", "Promoted"):
        if before is not None and before.phase == after.phase:
            return []
        if after.phase == "Aborted":
            return [Transition("ShadowAborted", after.message, f"{key}-aborted", "Warning")]
        return [Transition("ShadowPromoted", after.message, f"{key}-promoted")]
    if after.phase == "Aborted" and (before is None or before.phase != "Aborted"):
        return [Transition("CanaryAborted", after.message, f"{key}-aborted", "Warning")]
    if after.phase == "Concluded" and (before is None or before.phase != "Concluded"):
        return [Transition("ABTestConcluded", after.message, f"{key}-concluded")]
    if after.phase == "Promoted" and (before is None or before.phase != "Promoted"):
        return [Transition("CanaryPromoted", after.message, f"{key}-promoted")]
    if after.phase == "Progressing" and (
        before is None
        or before.version != after.version
        or before.step != after.step
        or before.phase != "Progressing"
        or before.since != after.since
    ):
        return [Transition("CanaryStep", after.message, f"{key}-step{after.step}-g{generation}")]
    return []


def aborting_rules(policies: Sequence[MonitorPolicy], model: str) -> list[RuleStatus]:
    """The last evaluations of the rules whose breach rolls the Model's version back: a
    canary step ends only once they have judged its candidate (planning.rollout)."""
    return [
        judged
        for policy in policies
        if policy.spec.model_ref.name == model
        for rule in policy.spec.rules
        if rule.action == "rollback"
        for judged in policy.status.rules
        if judged.name == rule.name
    ]
