"""A MonitorPolicy's evaluation, planned: from the policy, its Model, the Model's versions and
what the source read for each rule, to the rules' new status and the actions now due.

Pure: the controller reads, calls `plan`, takes the actions, and writes `status(...)`.
An action is named by its rule, version and the start of its run of breaches
(`action_id`); one that is recorded is never taken again. A rollback or retirement
carries that name in a typed field of its record (`status.rolledBack.action` on the
ModelVersion, `status.retirement.action` on the Model), so an evaluation after a
restart between the mark and the policy's own record recovers it here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import (
    ActionRecord,
    MonitorPolicy,
    MonitorPolicyStatus,
    Rule,
    RuleStatus,
)
from ciclo.monitoring.evaluation import Reading, action_id, evaluate
from ciclo.planning import conditions
from ciclo.planning.rollout import judged

MAX_ACTIONS = 50
# The condition types the monitoring loop writes on a MonitorPolicy (PrometheusRule is
# the PrometheusRule writer's) and on its Model (Alerting, mirrored).
POLICY_CONDITIONS = ("ModelFound", "Healthy", "NoData", "Alerting")


@dataclass(frozen=True)
class Observed:
    """What the source answered for one rule, and the baseline it is judged against."""

    reading: Reading
    baseline: float | None = None


@dataclass(frozen=True)
class Due:
    """An action to take now: its rule breached failureThreshold times on `version`."""

    id: str
    rule: Rule
    status: RuleStatus
    version: str
    detail: str
    """The breach for people: rule, value, bound, count and version."""


@dataclass(frozen=True)
class Plan:
    rules: list[RuleStatus]
    due: list[Due]
    """Actions not yet recorded, in rule order."""
    records: list[ActionRecord]
    """The policy's action records, with those recovered from marks and records."""
    alerting: list[str]
    """The detail of each alert rule acting now (recorded before or not)."""
    acting: frozenset[str]
    """The rules whose breaches have reached failureThreshold."""
    baselines: dict[str, float | None]


def serving(model: Model | None) -> str | None:
    """The version the rules judge: what serves, or a running canary's candidate alone."""
    return judged(model) if model else None


def previous_version(model: Model | None) -> str | None:
    """The version that served before the current one: the `live` baseline's."""
    current = serving(model)
    history = model.status.history if model else []
    return next((h.version for h in history if h.version != current), None)


def offline_baseline(rule: Rule, versions: dict[str, ModelVersion], version: str) -> float | None:
    """A rule's offline baseline: the metric the version was registered with."""
    mv = versions.get(version)
    name = (rule.baseline.metric if rule.baseline else None) or rule.metric or rule.name
    return mv.spec.metrics.get(name) if mv else None


def recovered(
    policy: MonitorPolicy, model: Model | None, versions: dict[str, ModelVersion]
) -> list[ActionRecord]:
    """The policy's records, plus the rollbacks and retirement it asked for but did not
    record (a restart in between): their action ids are in the marks."""
    records = list(policy.status.actions)
    recorded = {a.id for a in records}
    mine = f"MonitorPolicy {policy.metadata.name}"
    for mv in versions.values():
        mark = mv.status.rolled_back
        if mark and mark.reason == mine and mark.action and mark.action not in recorded:
            records.append(
                ActionRecord(
                    id=mark.action,
                    rule=mark.action.split("/")[0],
                    action="rollback",
                    version=mv.spec.version,
                    at=mark.at,
                    message=mark.message,
                )
            )
            recorded.add(mark.action)
    retired = model.status.retirement if model else None
    if retired and retired.reason == mine and retired.action and retired.action not in recorded:
        records.append(
            ActionRecord(
                id=retired.action,
                rule=retired.action.split("/")[0],
                action="retire",
                version=retired.version,
                at=retired.at,
                message=f"retired: {retired.message}",
            )
        )
        recorded.add(retired.action)
    # A retrain request carries the action's id as its own id.
    asked = model.status.retrain_request if model else None
    if asked and asked.reason == mine and asked.id not in recorded and "/" in asked.id:
        records.append(
            ActionRecord(
                id=asked.id,
                rule=asked.id.split("/")[0],
                action="retrain",
                version=asked.id.split("/")[1],
                at=asked.at,
                message=f"retrain requested: {asked.message}",
            )
        )
    return records


def plan(
    policy: MonitorPolicy,
    model: Model | None,
    versions: dict[str, ModelVersion],
    observed: dict[str, Observed],
    source_error: str | None,
    now: dt.datetime,
) -> Plan:
    """Each rule judged on what was observed for it (a rule not observed has no data, or
    the source's error), and the actions whose breaches reached failureThreshold."""
    version = serving(model)
    previous = {r.name: r for r in policy.status.rules}
    records = recovered(policy, model, versions)
    recorded = {a.id for a in records}
    unread = Observed(Reading(error=source_error) if source_error else Reading())
    rules: list[RuleStatus] = []
    due: list[Due] = []
    alerting: list[str] = []
    acting: set[str] = set()
    baselines: dict[str, float | None] = {}
    for rule in policy.spec.rules:
        seen = observed.get(rule.name, unread)
        baselines[rule.name] = seen.baseline
        verdict = evaluate(rule, seen.reading, previous.get(rule.name), version, now, seen.baseline)
        st = verdict.status
        rules.append(st)
        if not verdict.act or version is None or model is None:
            continue
        acting.add(rule.name)
        detail = (
            f"rule {rule.name}: {rule.metric or 'query'} {st.value:g} outside {st.threshold} "
            f"({st.consecutive_breaches} evaluations in a row) on version {version}"
        )
        if rule.action == "alert":
            alerting.append(detail)
        ident = action_id(rule.name, version, st.breaching_since)
        if ident not in recorded:
            due.append(Due(ident, rule, st, version, detail))
            recorded.add(ident)
    return Plan(rules, due, records, alerting, frozenset(acting), baselines)


def record(due: Due, message: str, now: dt.datetime) -> ActionRecord:
    """The record of an action taken, with what happened."""
    return ActionRecord(
        id=due.id,
        rule=due.rule.name,
        action=due.rule.action,
        version=due.version,
        value=due.status.value,
        threshold=due.status.threshold,
        at=now,
        message=message,
    )


def policy_conditions(
    policy: MonitorPolicy,
    model_found: bool,
    rules: list[RuleStatus],
    alerting: list[str],
    now: dt.datetime,
) -> list[Condition]:
    """ModelFound, Healthy, NoData and Alerting from the rules' states."""
    generation = policy.metadata.generation
    old = policy.status.conditions
    model = policy.spec.model_ref.name
    no_data = [r for r in rules if r.state in ("NoData", "Error")]
    breaching = [r for r in rules if r.state == "Breaching"]
    errors = any(r.state == "Error" for r in no_data)
    return [
        conditions.condition(
            "ModelFound",
            model_found,
            "Found" if model_found else "ModelNotFound",
            f"model {model}" + ("" if model_found else " not found"),
            generation,
            old,
            now,
        ),
        conditions.condition(
            "Healthy",
            not breaching and not no_data,
            "Breaching" if breaching else ("NoData" if no_data else "AllRulesOk"),
            "; ".join(f"{r.name}: {r.message}" for r in breaching + no_data) or "every rule ok",
            generation,
            old,
            now,
        ),
        conditions.condition(
            "NoData",
            bool(no_data),
            "QueryError" if errors else ("NoData" if no_data else "DataAvailable"),
            "; ".join(f"{r.name}: {r.message}" for r in no_data) or "every rule has data",
            generation,
            old,
            now,
        ),
        conditions.condition(
            "Alerting",
            bool(alerting),
            "RuleBreached" if alerting else "NoAlert",
            "; ".join(alerting) or "no alert firing",
            generation,
            old,
            now,
        ),
    ]


def status(
    policy: MonitorPolicy,
    model_found: bool,
    planned: Plan,
    taken: list[ActionRecord],
    now: dt.datetime,
) -> MonitorPolicyStatus:
    """The policy's new status: the rules, the records (the newest MAX_ACTIONS) and the
    conditions this loop owns."""
    return MonitorPolicyStatus(
        observed_generation=policy.metadata.generation,
        conditions=policy_conditions(policy, model_found, planned.rules, planned.alerting, now),
        rules=planned.rules,
        actions=[*planned.records, *taken][-MAX_ACTIONS:],
        last_evaluation_time=now,
    )


def failed(policy: MonitorPolicy, message: str, now: dt.datetime) -> MonitorPolicyStatus:
    """The status after an evaluation that raised: Healthy is Unknown with the reason (not
    its last True); the rest stays as the last evaluation left it."""
    healthy = conditions.condition(
        "Healthy",
        None,
        "EvaluationFailed",
        message,
        policy.metadata.generation,
        policy.status.conditions,
        now,
    )
    mine = [c for c in policy.status.conditions if c.type in POLICY_CONDITIONS]
    kept = [c for c in mine if c.type != "Healthy"]
    return policy.status.model_copy(update={"conditions": [*kept, healthy]})


def alert_condition(
    model: Model, policy: str, alerting: list[str], now: dt.datetime
) -> Condition | None:
    """The policy's Alerting on the Model, or None when there is nothing new to write
    (nothing ever fired, or the same is said already)."""
    old = conditions.find(model.status.conditions, "Alerting")
    if old is None and not alerting:
        return None
    message = f"MonitorPolicy {policy}: " + ("; ".join(alerting) or "no alert firing")
    reason = "RuleBreached" if alerting else "NoAlert"
    generation = model.metadata.generation
    new = conditions.condition(
        "Alerting", bool(alerting), reason, message, generation, model.status.conditions, now
    )
    # The generation is not compared: a Model edit alone is no reason to write.
    if old is not None and (old.status, old.message) == (new.status, new.message):
        return None
    return new
