"""What a Model should look like now: which version serves, which stay warm, the status.

`plan` is pure: it takes the Model, its ModelVersions and what its Deployments
report, and returns everything the controller must write. Running it again on
its own output changes nothing, which is what makes the controller level-based.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from ciclo.api.meta import Condition
from ciclo.api.model import HistoryEntry, Model, ModelStatus
from ciclo.api.modelversion import ModelVersion, Phase
from ciclo.planning import conditions, manifests
from ciclo.planning.manifests import Json

HISTORY_LIMIT = 10


@dataclass(frozen=True)
class DeploymentState:
    name: str
    version: str
    ready: int


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
    serving: Condition
    validated: Condition | None
    served_at: dt.datetime | None
    stopped_at: dt.datetime | None
    stop_reason: str | None
    clear_rollback: bool
    event: Transition | None


@dataclass
class ModelPlan:
    deployments: list[Json] = field(default_factory=list)
    delete_deployments: list[str] = field(default_factory=list)
    service: Json | None = None
    status: ModelStatus = field(default_factory=ModelStatus)
    versions: list[VersionUpdate] = field(default_factory=list)
    events: list[Transition] = field(default_factory=list)


def failed(version: ModelVersion) -> bool:
    c = conditions.find(version.status.conditions, "Validated")
    return c is not None and c.status == "False"


def fetch_outcomes(pods: list[Json]) -> dict[str, tuple[bool, str]]:
    """Per version, what its pods say of the artifact: every fetch step of a pod exited 0
    (True: `ciclo fetch` exits 0 only on a digest match, and that wins over an earlier
    failure, which may have been transient), or one failed (False, its last line).
    Versions whose pods say nothing yet are absent."""
    out: dict[str, tuple[bool, str]] = {}
    for pod in pods:
        version = pod["metadata"].get("labels", {}).get(manifests.VERSION_LABEL)
        fetches = [
            i
            for i in pod.get("status", {}).get("initContainerStatuses", [])
            if i["name"].startswith("fetch")
        ]
        if version is None or not fetches:
            continue
        done = [i.get("state", {}).get("terminated") for i in fetches]
        if all(t and t.get("exitCode") == 0 for t in done):
            out[version] = (True, "the artifact was fetched and its sha256 matched")
            continue
        for init in fetches:
            terminated = init.get("state", {}).get("terminated") or init.get("lastState", {}).get(
                "terminated"
            )
            if (
                terminated
                and terminated.get("exitCode", 0) != 0
                and out.get(version, (False,))[0] is False
            ):
                why = (
                    terminated.get("message") or terminated.get("reason") or "the fetch failed"
                ).strip()
                out[version] = (False, why.splitlines()[-1])
                break
    return out


def _validated(version: ModelVersion, outcome: tuple[bool, str] | None) -> Condition | None:
    if outcome is None:
        return None
    ok, message = outcome
    return Condition(
        type="Validated",
        status=conditions.status_of(ok),
        reason="ArtifactVerified" if ok else "FetchFailed",
        message=message,
        observed_generation=version.metadata.generation,
    )


def plan(
    model: Model,
    versions: list[ModelVersion],
    deployments: list[DeploymentState],
    image: str,
    now: dt.datetime,
    fetch: dict[str, tuple[bool, str]] | None = None,
) -> ModelPlan:
    spec, status = model.spec, model.status
    validated = {
        v.metadata.name: _validated(v, (fetch or {}).get(v.spec.version)) for v in versions
    }
    versions = [
        v.model_copy(
            update={
                "status": v.status.model_copy(
                    update={"conditions": conditions.merge(v.status.conditions, [c], now)}
                )
            }
        )
        if (c := validated[v.metadata.name])
        else v
        for v in versions
    ]
    name = model.metadata.name
    by_version = {v.spec.version: v for v in versions}
    desired = spec.version
    desired_changed = status.desired_version is not None and status.desired_version != desired
    # A user who names a rolled-back version again asks to try it again.
    clear = (
        {desired}
        if desired_changed and desired in by_version and by_version[desired].status.rolled_back
        else set()
    )
    rolled_back = {v for v, mv in by_version.items() if mv.status.rolled_back and v not in clear}
    unusable = rolled_back | {v for v, mv in by_version.items() if failed(mv)}
    current = status.serving_version

    history = [h.model_copy() for h in status.history]
    target: str | None = desired
    problem: tuple[str, str] | None = None
    # What serves now may go on serving while spec.version cannot, unless it is itself unusable.
    keep = current if current in by_version and current not in unusable else None
    if desired not in by_version:
        target, problem = keep, ("VersionNotFound", f"no ModelVersion {desired} of model {name}")
    elif failed(by_version[desired]):
        reason = conditions.find(by_version[desired].status.conditions, "Validated")
        target, problem = (
            keep,
            ("VersionInvalid", f"{desired}: {reason.message if reason else 'invalid'}"),
        )
    elif desired in rolled_back:
        record = by_version[desired].status.rolled_back
        good = next(
            (
                h.version
                for h in history
                if h.version != desired and h.version in by_version and h.version not in unusable
            ),
            None,
        )
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

    events: list[Transition] = []
    serving = None if spec.retired else target
    # An Event's key names its transition (what serves, what served, at which generation
    # of the spec): a retry of the same transition finds its Event already there, and two
    # transitions never share one, however close in time.
    generation = model.metadata.generation
    if serving != current:
        if history and history[0].until is None:
            outcome = (
                "RolledBack"
                if current in rolled_back
                else ("Retired" if serving is None else "Replaced")
            )
            history[0] = history[0].model_copy(update={"until": now, "outcome": outcome})
        if serving is not None:
            history.insert(0, HistoryEntry(version=serving, since=now))
        if serving is None:
            events.append(
                Transition(
                    "Retired",
                    f"retired; {current} no longer serves",
                    f"retired-{current}-g{generation}",
                )
            )
        elif problem and problem[0] == "RolledBack":
            events.append(
                Transition(
                    "RolledBack",
                    problem[1],
                    f"rolledback-{desired}-to-{serving}-g{generation}",
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
    history = history[:HISTORY_LIMIT]

    warm: list[str] = []
    if serving is not None:
        for h in history[1:]:
            if len(warm) >= spec.serving.keep_previous:
                break
            if (
                h.version != serving
                and h.version in by_version
                and h.version not in unusable | set(warm)
            ):
                warm.append(h.version)

    # Deployments: the serving version, the warm ones; retired keeps them all at zero; with
    # nothing usable to serve, none.
    replicas: dict[str, tuple[int, str]] = {}
    if serving is not None:
        replicas[serving] = (spec.serving.replicas, "serving")
        replicas.update({v: (spec.serving.warm_replicas, "warm") for v in warm})
    elif spec.retired:
        replicas.update({d.version: (0, "retired") for d in deployments if d.version in by_version})
    result = ModelPlan()
    result.deployments = [
        manifests.deployment(model, by_version[v], n, role, image)
        for v, (n, role) in replicas.items()
        if v in by_version
    ]
    wanted = {d["metadata"]["name"] for d in result.deployments}
    result.delete_deployments = sorted(d.name for d in deployments if d.name not in wanted)
    if serving is not None:
        result.service = manifests.service(model, serving)

    ready = next((d.ready for d in deployments if d.version == serving), 0)
    want = spec.serving.replicas
    is_ready = serving is not None and ready >= want and (want > 0 or ready == 0)

    def cond(kind: str, ok: bool, reason: str, message: str) -> Condition:
        return Condition(
            type=kind,
            status=conditions.status_of(ok),
            reason=reason,
            message=message,
            observed_generation=generation,
        )

    if spec.retired:
        ready_c = cond("Ready", False, "Retired", "the model is retired: nothing serves")
        progressing = cond("Progressing", False, "Retired", "retired")
    elif serving is None:
        ready_c = cond(
            "Ready", False, problem[0] if problem else "NoVersion", problem[1] if problem else ""
        )
        progressing = cond(
            "Progressing", False, problem[0] if problem else "NoVersion", "nothing to serve"
        )
    elif is_ready:
        ready_c = cond(
            "Ready", True, "Serving", f"{serving} serves with {ready}/{want} ready replicas"
        )
        progressing = cond("Progressing", False, "Complete", f"{serving} is rolled out")
    else:
        ready_c = cond("Ready", False, "Progressing", f"{serving}: {ready}/{want} replicas ready")
        progressing = cond(
            "Progressing", True, "Rollout", f"rolling out {serving}: {ready}/{want} ready"
        )
    degraded = (
        cond("Degraded", True, *problem)
        if problem
        else cond("Degraded", False, "AsExpected", "spec.version serves")
    )

    last_action = status.last_action
    if events:
        last_action = f"{events[-1].reason}: {events[-1].message}"
    result.status = ModelStatus(
        observed_generation=generation,
        serving_version=serving,
        desired_version=desired,
        ready_replicas=ready if serving else 0,
        endpoint=manifests.endpoint(model) if serving else None,
        history=history,
        last_action=last_action,
        conditions=conditions.merge(status.conditions, [ready_c, progressing, degraded], now),
    )
    result.events = events
    last_served = history[0].version if history else None
    result.versions = [
        u
        for mv in versions
        if (
            u := _version_update(
                mv,
                serving,
                warm,
                rolled_back,
                clear,
                spec.retired,
                last_served,
                now,
                validated[mv.metadata.name],
                f"g{generation}-{serving}-from-{current}",
            )
        )
        is not None
    ]
    return result


def version_phase(
    version: ModelVersion,
    serving: str | None,
    warm: list[str],
    rolled_back: set[str],
    retired: bool,
    last_served: str | None,
) -> tuple[Phase, str]:
    v = version.spec.version
    if failed(version):
        c = conditions.find(version.status.conditions, "Validated")
        return "Failed", c.message if c else "validation failed"
    if v in rolled_back:
        record = version.status.rolled_back
        return "RolledBack", f"{record.reason}: {record.message}" if record else "rolled back"
    if retired and v == last_served:
        return "Retired", "the model is retired"
    if v == serving:
        return "Serving", "serves the model's traffic"
    if v in warm:
        return "Standby", "kept warm for an instant rollback"
    return "Registered", "registered; not serving"


def _version_update(
    mv: ModelVersion,
    serving: str | None,
    warm: list[str],
    rolled_back: set[str],
    clear: set[str],
    retired: bool,
    last_served: str | None,
    now: dt.datetime,
    validated: Condition | None,
    transition: str,
) -> VersionUpdate | None:
    phase, message = version_phase(mv, serving, warm, rolled_back, retired, last_served)
    previous = conditions.find(mv.status.conditions, "Serving")
    serving_c = Condition(
        type="Serving",
        status=conditions.status_of(phase == "Serving"),
        reason=phase,
        message=message,
        observed_generation=mv.metadata.generation,
        last_transition_time=previous.last_transition_time
        if previous and previous.status == conditions.status_of(phase == "Serving")
        else now,
    )
    # mv's conditions already hold `validated`; whether it is news is judged by its transition time.
    validated_news = validated is not None and any(
        c.type == "Validated" and c.last_transition_time == now for c in mv.status.conditions
    )
    unchanged = (
        mv.status.phase == phase
        and previous is not None
        and previous.reason == phase
        and previous.message == message
        and mv.spec.version not in clear
        and not validated_news
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
            "Warning" if phase in ("RolledBack", "Failed") else "Normal"
        )
        event = Transition(phase, message, f"{phase.lower()}-{transition}", kind)
    current_validated = conditions.find(mv.status.conditions, "Validated") if validated else None
    return VersionUpdate(
        name=mv.metadata.name,
        phase=phase,
        serving=serving_c,
        validated=current_validated,
        served_at=served_at,
        stopped_at=stopped_at,
        stop_reason=stop_reason,
        clear_rollback=mv.spec.version in clear,
        event=event,
    )


def with_failure(
    status: ModelStatus, message: str, generation: int, now: dt.datetime
) -> ModelStatus:
    """The planned status, once writing the children failed: not Ready, Degraded, and why."""
    failed_conditions = [
        Condition(
            type=kind,
            status=value,
            reason="ApplyFailed",
            message=message[:1024],
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
