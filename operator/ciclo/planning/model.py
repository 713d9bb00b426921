"""What a Model should look like now: which version serves, which stay warm, the status.

`plan` is pure: it takes the Model, its ModelVersions and what its Deployments
report, and returns everything the controller must write. Running it again on
its own output changes nothing, which is what makes the controller level-based.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from ciclo.api.meta import Condition
from ciclo.api.model import Model, ModelStatus, RolloutStatus
from ciclo.api.modelversion import ModelVersion, Phase
from ciclo.api.monitorpolicy import RuleStatus
from ciclo.planning import conditions, evaluation, gateway, manifests, promotion
from ciclo.planning.history import advance
from ciclo.planning.manifests import Json
from ciclo.planning.outcome import Outcome
from ciclo.planning.readiness import model_conditions
from ciclo.planning.rollout import canary_events, canary_running, first_step
from ciclo.planning.rollout import decide as decide_canary
from ciclo.planning.training import trained_candidate
from ciclo.planning.versions import (
    Transition,
    VersionUpdate,
    failed,
    failure,
    version_update,
    with_conditions,
)


@dataclass(frozen=True)
class DeploymentState:
    name: str
    version: str
    ready: int


@dataclass
class ModelPlan:
    target: str | None = None
    """The version that should serve once ready; what serves meanwhile is status.servingVersion."""
    clear_retirement: bool = False
    requeue_after: float | None = None
    """Seconds until a version coming up reaches its progress deadline."""
    deployments: list[Json] = field(default_factory=list)
    delete_deployments: list[str] = field(default_factory=list)
    service: Json | None = None
    version_services: list[Json] = field(default_factory=list)
    """With spec.rollout.gateway: a Service per version the HTTPRoute weighs."""
    route: Json | None = None
    """With spec.rollout.gateway: the Model's HTTPRoute and its weights."""
    traefik_mirror: Json | None = None
    """A shadow's TraefikService, when the Gateway is Traefik's (gateway.mirror)."""
    status: ModelStatus = field(default_factory=ModelStatus)
    versions: list[VersionUpdate] = field(default_factory=list)
    events: list[Transition] = field(default_factory=list)
    evaluation_jobs: list[Json] = field(default_factory=list)
    """The evaluation Jobs that should exist (planning/evaluation.py): the controller
    applies them and deletes the Model's others."""
    verdict: promotion.Verdict | None = None
    """The way in's answer for spec.version (planning/promotion.py)."""


def required_ready(replicas: int, current: str | None, usable: bool, ready: dict[str, int]) -> int:
    """Ready pods a new version needs before the Service moves to it: as many as the
    serving version has ready now, up to spec.serving.replicas, so the switch never
    lowers what the Service can answer with; one when nothing good serves."""
    if replicas == 0:
        return 0
    if current is None or not usable:
        return 1
    return max(1, min(replicas, ready.get(current, 0)))


def plan(
    model: Model,
    versions: list[ModelVersion],
    deployments: list[DeploymentState],
    image: str,
    now: dt.datetime,
    fetch: dict[str, tuple[bool, str]] | None = None,
    crashing: dict[str, str] | None = None,
    rules: Sequence[RuleStatus] = (),
) -> ModelPlan:
    spec, status = model.spec, model.status
    name = model.metadata.name
    generation = model.metadata.generation
    fetch, crashing = fetch or {}, crashing or {}
    ready_of = {d.version: d.ready for d in deployments}
    versions = [
        with_conditions(
            v,
            [c] if (c := promotion.validated_of(model, v, fetch.get(v.spec.version))) else [],
            now,
        )
        for v in versions
    ]
    by_version = {v.spec.version: v for v in versions}
    desired = spec.version
    desired_changed = status.desired_version is not None and status.desired_version != desired
    # A user who names a rolled-back (or failed to start) version again asks to try it again.
    retry = desired_changed and desired in by_version
    clear_rollback = {desired} if retry and by_version[desired].status.rolled_back else set[str]()
    available = (
        conditions.find(by_version[desired].status.conditions, "Available") if retry else None
    )
    clear_available = (
        {desired} if available is not None and available.status == "False" else set[str]()
    )
    if clear_available:
        by_version[desired] = with_conditions(
            by_version[desired],
            [
                Condition(
                    type="Available",
                    status="Unknown",
                    reason="Retrying",
                    message="named again by spec.version: tried again",
                    observed_generation=by_version[desired].metadata.generation,
                )
            ],
            now,
        )
    rolled_back = {
        v for v, mv in by_version.items() if mv.status.rolled_back and v not in clear_rollback
    }
    current = status.serving_version if status.serving_version in by_version else None

    def usable(v: str) -> bool:
        return v not in rolled_back and not failed(by_version[v])

    # A candidate that has had its chance and is still not ready, or crash-loops, fails:
    # it never takes traffic, and what serves keeps serving.
    need = required_ready(
        spec.serving.replicas, current, current is not None and usable(current), ready_of
    )
    rollout = status.rollout
    if rollout is not None and canary_running(status.canary, rollout.version):
        # A canary's candidate runs at its step's size, never `need`: it is judged by the
        # MonitorPolicy, not by the progress deadline.
        rollout = None
    elif rollout is not None and first_step(spec) is not None and current is not None:
        need = min(need, first_step(spec) or need)
    if (
        rollout is not None
        and rollout.version != current
        and rollout.version in by_version
        and rollout.version not in clear_available
        and usable(rollout.version)
        and ready_of.get(rollout.version, 0) < need
    ):
        candidate = rollout.version
        waited = (now - rollout.since).total_seconds()
        stuck = None
        if candidate in crashing:
            stuck = ("CrashLoopBackOff", crashing[candidate])
        elif waited >= spec.serving.progress_deadline_seconds:
            stuck = (
                "ProgressDeadlineExceeded",
                f"{ready_of.get(candidate, 0)}/{need} pods ready after {waited:.0f} s "
                f"(spec.serving.progressDeadlineSeconds {spec.serving.progress_deadline_seconds})",
            )
        if stuck is not None:
            by_version[candidate] = with_conditions(
                by_version[candidate],
                [
                    Condition(
                        type="Available",
                        status="False",
                        reason=stuck[0],
                        message=stuck[1],
                        observed_generation=by_version[candidate].metadata.generation,
                    )
                ],
                now,
            )
    versions = [by_version[v.spec.version] for v in versions]
    unusable = {v for v in by_version if not usable(v)}

    # A version a training run registered stands in for spec.version while the Model lets it
    # (spec.training.autoPromote, or spec.promotion's gates) and spec.version is still what
    # it was when the run started; the spec stays the user's (docs/training.md).
    if (trained := trained_candidate(model, set(by_version), rolled_back)) is not None:
        desired = trained
    history = status.history
    target: str | None = desired
    problem: tuple[str, str] | None = None
    # When spec.version cannot serve: what serves now, unless it is unusable itself;
    # else the newest good version that served before.
    good = next(
        (
            h.version
            for h in history
            if h.version != desired and h.version in by_version and h.version not in unusable
        ),
        None,
    )
    keep = current if current is not None and current not in unusable else good
    # The way in: a new version takes no traffic until its evaluation and review allow it.
    verdict = (
        promotion.verdict(model, by_version[desired], current) if desired in by_version else None
    )
    waiting: tuple[str, str] | None = None
    held: dict[str, tuple[Phase, str]] = {}
    if desired not in by_version:
        target, problem = keep, ("VersionNotFound", f"no ModelVersion {desired} of model {name}")
    elif (why_failed := failure(by_version[desired])) is not None:
        reason = "VersionInvalid" if why_failed.type == "Validated" else "VersionFailed"
        if why_failed.reason in ("GateFailed", "EvaluationFailed"):
            reason = why_failed.reason
        target, problem = keep, (reason, f"{desired}: {why_failed.message}")
    elif verdict is not None and verdict.reason == "Rejected":
        target, problem = keep, ("Rejected", verdict.message)
        held[desired] = ("Rejected", verdict.message)
    elif verdict is not None and not verdict.may_serve:
        target, waiting = keep, (verdict.reason, verdict.message)
        phase: Phase = "Evaluating" if verdict.reason == "Evaluating" else "AwaitingApproval"
        held[desired] = (phase, verdict.message)
    elif desired in rolled_back:
        record = by_version[desired].status.rolled_back
        why = f"{record.reason}: {record.message}" if record else "rolled back"
        if good is None:
            keep = current or desired  # what serves now, bad or not, beats nothing
            target, problem = (
                keep,
                (
                    "NoGoodVersion",
                    f"{desired} is marked bad ({why}) but no good "
                    f"version is left to roll back to; {keep} keeps serving",
                ),
            )
        else:
            target, problem = good, ("RolledBack", f"{desired} rolled back to {good}: {why}")

    retirement = status.retirement
    clear_retirement = retirement is not None and (
        spec.retired or retirement.version != spec.version
    )
    retired_by = None if clear_retirement else retirement
    retired = spec.retired or retired_by is not None

    # Traffic moves only to a ready version: until the target has `need` ready pods,
    # what serves now keeps serving (even a version marked bad beats nothing at all).
    holding = current if current is not None and not failed(by_version[current]) else None
    if retired:
        serving = None
    elif target is not None and (target == current or ready_of.get(target, 0) >= need):
        serving = target
    else:
        serving = holding
    # A canary (spec.rollout) holds the switch: the champion keeps serving while the
    # candidate answers its step's share, until it passes every step or is rolled back.
    champion = current if current is not None and usable(current) and not retired else None
    newcomer = target if target is not None and target != champion and not retired else None
    canary = decide_canary(
        model,
        champion,
        newcomer,
        ready_of.get(newcomer, 0) if newcomer else 0,
        now,
        problem[1] if problem and problem[0] == "RolledBack" else None,
        rules,
    )
    if canary.promote:
        serving = newcomer
    elif canary.split is not None:
        serving = champion
    pending = target if not retired and target is not None and target != serving else None
    # A shadow that failed its comparison holds its candidate out, as a gate does.
    shadow_failed = (
        canary.canary is not None
        and canary.canary.strategy == "shadow"
        and canary.canary.phase == "Aborted"
        and pending == canary.canary.version
    )
    if shadow_failed and problem is None and canary.canary is not None:
        problem = ("ShadowAborted", canary.canary.message)
    new_rollout = (
        None
        if pending is None
        else (
            rollout
            if rollout is not None and rollout.version == pending
            else RolloutStatus(version=pending, since=now)
        )
    )

    outcome = Outcome(
        current=current,
        serving=serving,
        pending=pending,
        desired=desired,
        problem=problem,
        waiting=waiting,
        retired=retired,
        retired_by=retired_by,
        canary=canary,
        shadow_failed=shadow_failed,
    )
    history, changed = advance(history, outcome, by_version, rolled_back, generation, now)
    events = canary_events(status.canary, canary.canary, generation) + changed

    warm: list[str] = []
    # Behind the Model's Service a canary's share is a replica ratio over every pod of the
    # Model, so the warm versions stand at zero meanwhile.
    warm_replicas = (
        0 if canary.active and spec.rollout.gateway is None else spec.serving.warm_replicas
    )
    if serving is not None:
        for h in history[1:]:
            if len(warm) >= spec.serving.keep_previous:
                break
            if (
                h.version != serving
                and h.version != pending
                and h.version in by_version
                and h.version not in unusable | set(warm)
            ):
                warm.append(h.version)

    # Deployments: the serving version, the one coming up, the warm ones; retired keeps
    # them all at zero; with nothing usable to serve or come up, none.
    replicas: dict[str, tuple[int, str]] = {}
    if serving is not None:
        replicas[serving] = (spec.serving.replicas, "serving")
        replicas.update({v: (warm_replicas, "warm") for v in warm})
        if canary.active and canary.split is not None:
            replicas[serving] = (canary.split.champion, "serving")
    if pending is not None:
        size = canary.split.candidate if canary.split is not None else spec.serving.replicas
        replicas[pending] = (size, "candidate")
    elif retired:
        replicas.update({d.version: (0, "retired") for d in deployments if d.version in by_version})
    result = ModelPlan(target=None if retired else target)
    result.deployments = [
        manifests.deployment(model, by_version[v], n, role, image)
        for v, (n, role) in replicas.items()
        if v in by_version
    ]
    wanted = {d["metadata"]["name"] for d in result.deployments}
    result.delete_deployments = sorted(d.name for d in deployments if d.name not in wanted)
    if serving is not None:
        both = canary.active and spec.rollout.gateway is None
        result.service = manifests.service(model, None if both else serving)
        if spec.rollout.gateway is not None:
            running = canary.canary if canary.active else None
            routes = gateway.routing(model, serving, pending, running)
            result.version_services = routes.version_services
            result.route = routes.route
            result.traefik_mirror = routes.traefik_mirror

    own = model_conditions(outcome, ready_of, need, spec.serving.replicas, generation)
    last_action = status.last_action
    if events:
        last_action = f"{events[-1].reason}: {events[-1].message}"
    result.status = ModelStatus(
        observed_generation=generation,
        serving_version=serving,
        desired_version=spec.version,
        ready_replicas=ready_of.get(serving, 0) if serving is not None else 0,
        rollout=new_rollout,
        retirement=retired_by,
        canary=canary.canary,
        endpoint=manifests.endpoint(model) if serving else None,
        history=history,
        last_action=last_action,
        conditions=conditions.merge(status.conditions, own, now),
    )
    result.events = events
    result.clear_retirement = clear_retirement
    result.verdict = verdict
    if verdict is not None and verdict.evaluate and not retired:
        against = by_version[current] if current is not None and usable(current) else None
        result.evaluation_jobs = [evaluation.job(model, by_version[desired], against, image)]
    if new_rollout is not None:
        deadline = new_rollout.since + dt.timedelta(seconds=spec.serving.progress_deadline_seconds)
        result.requeue_after = max(1.0, (deadline - now).total_seconds() + 1)
    if canary.requeue_after is not None:
        result.requeue_after = min(
            result.requeue_after or canary.requeue_after, canary.requeue_after
        )
    last_served = history[0].version if history else None
    result.versions = [
        u
        for mv in versions
        if (
            u := version_update(
                mv,
                serving,
                pending,
                warm,
                rolled_back,
                clear_rollback,
                retired,
                last_served,
                now,
                f"g{generation}-{serving}-from-{current}",
                held,
            )
        )
        is not None
    ]
    return result
