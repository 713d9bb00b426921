"""MonitorPolicy: evaluate each policy on schedule, and alert, roll back or retire.

Each evaluation is level-based: read the policy, its Model and versions, and the
readings (policy_sources); plan (planning.monitorpolicy, pure); take the actions due
(policy_actions); write status. The scheduler (scheduler) decides when, and alerts go to
the webhook from alerts. An action is recorded in status.actions and never taken again;
a rollback or retirement carries its action id in its record, so a restart between the
two is recovered by the plan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import kopf
from prometheus_client import Counter, Gauge

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy, MonitorPolicyStatus, Rule, RuleStatus
from ciclo.config import Config
from ciclo.controllers import alerts, policy_actions, prometheus_operator
from ciclo.controllers.cache import CachedKube
from ciclo.controllers.metrics import POLICY_ACTIONS, REGISTRY, rule_thresholds
from ciclo.controllers.policy_actions import Subject
from ciclo.controllers.policy_sources import (
    SourceUnavailable,
    agreement_reading,
    arm_readings,
    make_source,
    observe,
)
from ciclo.controllers.scheduler import Scheduler
from ciclo.kube.client import (
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    ApiError,
    Json,
    Kube,
    NamespaceTerminating,
)
from ciclo.monitoring.evaluation import seconds
from ciclo.monitoring.sources import MetricSource
from ciclo.planning import abtest, conditions, shadow
from ciclo.planning import monitorpolicy as planning
from ciclo.planning.monitorpolicy import Observed
from ciclo.records import verdicts

log = logging.getLogger(__name__)

MANAGER = "ciclo-monitoring"

ACTIONS = Counter(
    "ciclo_monitor_actions", "Actions taken by MonitorPolicies", ["action"], registry=REGISTRY
)
ALERTING = Gauge(
    "ciclo_monitor_alerting",
    "1 while a rule's alert is firing",
    ["namespace", "policy", "rule"],
    registry=REGISTRY,
)
RULE_VALUE = Gauge(
    "ciclo_monitor_rule_value",
    "A rule's last value",
    ["namespace", "policy", "rule"],
    registry=REGISTRY,
)

Notify = Callable[[MonitorPolicy, Rule, RuleStatus, str, str], None]
Sources = Callable[[Kube, Config, MonitorPolicy], MetricSource]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def evaluate_policy(
    kube: Kube,
    config: Config,
    namespace: str,
    name: str,
    notify: Notify,
    sources: Sources = make_source,
) -> None:
    """One evaluation; one that raises leaves the policy Healthy=Unknown with the reason
    (not its last Healthy=True), then raises for the scheduler to retry sooner."""
    try:
        _evaluate_policy(kube, config, namespace, name, notify, sources)
    except NamespaceTerminating:
        return
    except Exception as e:
        _report_failure(kube, namespace, name, f"{type(e).__name__}: {e}")
        raise


def _report_failure(kube: Kube, namespace: str, name: str, message: str) -> None:
    try:
        raw = kube.get(MONITOR_POLICIES, namespace, name)
        if raw is not None:
            policy = MonitorPolicy.model_validate(raw)
            _write_status(kube, policy, planning.failed(policy, message, _now()))
    except Exception:
        log.exception(
            "monitorpolicy %s/%s: could not report the failed evaluation", namespace, name
        )


def _write_status(kube: Kube, policy: MonitorPolicy, status: MonitorPolicyStatus) -> None:
    """The status this loop owns, whole, under its field manager (conditions of other
    writers left out, so it never co-owns them)."""
    body: Json = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["conditions"] = [
        conditions.dump(c) for c in status.conditions if c.type in planning.POLICY_CONDITIONS
    ]
    kube.apply(
        MONITOR_POLICIES,
        {
            "apiVersion": policy.api_version,
            "kind": "MonitorPolicy",
            "metadata": {"name": policy.metadata.name, "namespace": policy.metadata.namespace},
            "status": body,
        },
        manager=MANAGER,
        status=True,
    )


def _evaluate_policy(
    kube: Kube, config: Config, namespace: str, name: str, notify: Notify, sources: Sources
) -> None:
    # Read.
    raw = kube.get(MONITOR_POLICIES, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return
    policy = MonitorPolicy.model_validate(raw)
    now = _now()
    model_name = policy.spec.model_ref.name
    model_raw = kube.get(MODELS, namespace, model_name)
    model = Model.model_validate(model_raw) if model_raw else None
    listed = kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={model_name}")
    versions = {mv.spec.version: mv for mv in map(ModelVersion.model_validate, listed)}
    observed: dict[str, Observed] = {}
    source_error = None
    if model is None:
        source_error = f"model {model_name} not found"
    else:
        try:
            source = sources(kube, config, policy)
            observed = observe(source, policy, model, versions)
            # A running A/B test is judged on the same labels, by the same source.
            if (window := abtest.window(model, now)) is not None:
                readings = arm_readings(source, model, window)
                if (result := abtest.conclude(model, readings, now)) is not None:
                    verdicts.record(kube, model, "abtest", result)
            # ... and a shadow, once its duration has passed, on labels, agreement, latency.
            if (window := shadow.window(model, now)) is not None:
                accuracy = arm_readings(source, model, window)
                latency = arm_readings(source, model, window, "latency_p99")
                agreed = agreement_reading(source, model, window)
                if (judged := shadow.conclude(model, accuracy, agreed, latency, now)) is not None:
                    verdicts.record(kube, model, "shadow", judged)
        except (SourceUnavailable, ApiError, ValueError) as e:
            source_error = str(e)

    # Plan, then act.
    planned = planning.plan(policy, model, versions, observed, source_error, now)
    taken = []
    if model is not None:
        subject = Subject(policy, model, versions)
        for due in planned.due:
            message = policy_actions.act(kube, config.image, subject, due, now)
            taken.append(planning.record(due, message, now))
            _count(policy, due)
            if due.rule.action == "alert" and policy.spec.alerting.webhook:
                notify(policy, due.rule, due.status, due.version, due.detail)
    _export(policy, planned)

    # Write.
    _write_status(kube, policy, planning.status(policy, model is not None, planned, taken, now))
    if model is not None:
        mirrored = planning.alert_condition(model, name, planned.alerting, now)
        if mirrored is not None:
            _mirror_alert(kube, model, mirrored)
    prometheus_operator.sync_prometheus_rule(kube, config, raw, policy, model, versions)


def _count(policy: MonitorPolicy, due: planning.Due) -> None:
    ACTIONS.labels(due.rule.action).inc()
    meta = policy.metadata
    model = policy.spec.model_ref.name
    POLICY_ACTIONS.labels(
        meta.namespace, meta.name, model, due.rule.name, due.rule.action, due.version
    ).inc()


def _export(policy: MonitorPolicy, planned: planning.Plan) -> None:
    """The rules' values, thresholds and alerts as the operator's metrics."""
    ns, name, model = policy.metadata.namespace, policy.metadata.name, policy.spec.model_ref.name
    for rule, st in zip(policy.spec.rules, planned.rules, strict=True):
        if st.value is not None:
            RULE_VALUE.labels(ns, name, rule.name).set(st.value)
        rule_thresholds(ns, name, model, rule, planned.baselines.get(rule.name))
        if st.version is not None:
            # At 0 before any action, so that the first one shows as an increase.
            POLICY_ACTIONS.labels(ns, name, model, rule.name, rule.action, st.version)
        alerting = rule.action == "alert" and rule.name in planned.acting
        ALERTING.labels(ns, name, rule.name).set(1 if alerting else 0)


def _mirror_alert(kube: Kube, model: Model, condition: Condition) -> None:
    """The policy's Alerting condition on the Model too, under this loop's manager."""
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {"conditions": [conditions.dump(condition)]},
        },
        manager=MANAGER,
        status=True,
    )


def register(kube: CachedKube, config: Config) -> Scheduler:
    scheduler = Scheduler(
        lambda key: evaluate_policy(kube, config, key[0], key[1], alerts.notify_in_background),
        config.monitor_workers,
    )

    @kopf.on.startup()
    async def start_scheduler(**_: Any) -> None:
        asyncio.get_running_loop().create_task(scheduler.serve())
        await asyncio.sleep(0)  # let serve() take the loop before the first watch event

    @kopf.on.event("ciclo.dev", "v1alpha1", "monitorpolicies")
    def policy_event(
        namespace: str | None, name: str, type: str, body: kopf.Body, **_: Any
    ) -> None:
        kube.observe(MONITOR_POLICIES, body, deleted=type == "DELETED")
        if namespace is None or (config.namespaces and namespace not in config.namespaces):
            return
        key = (namespace, name)
        if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            scheduler.remove(key)
            return
        try:
            interval = seconds(body.get("spec", {}).get("interval", "30s"))
        except ValueError:
            return  # admission rejects what is not a duration
        scheduler.upsert(key, interval)

    return scheduler
