"""The Prometheus Operator's objects, written while the cluster serves their CRDs: a
PodMonitor per Model, and a PrometheusRule per MonitorPolicy that asks for one.

Both are extras: without the CRDs nothing is written and nothing fails (the pods'
prometheus.io/* annotations stay either way). Whether the CRDs are served comes from API
discovery, kept for CICLO_DISCOVERY_SECONDS (Kube.serves), so CRDs installed after the
operator started are picked up. A failed write never fails the reconcile or the
evaluation: it is a Warning Event on the Model, or the MonitorPolicy's PrometheusRule
condition, and the next resync or evaluation tries again. Garbage collection removes
both with their owner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.config import Config
from ciclo.kube import events
from ciclo.kube.client import (
    MONITOR_POLICIES,
    POD_MONITORS,
    PROMETHEUS_RULES,
    ApiError,
    Json,
    Kube,
    NamespaceTerminating,
    NotFound,
    Ref,
)
from ciclo.planning import conditions, manifests
from ciclo.planning.podmonitor import pod_monitor
from ciclo.planning.prometheusrule import prometheus_rule

log = logging.getLogger(__name__)

MANAGER = "ciclo-prometheusrule"
"""Owns the MonitorPolicy's PrometheusRule condition, apart from the evaluation's own."""
CONDITION = "PrometheusRule"
NOT_INSTALLED = (
    "the cluster serves no monitoring.coreos.com/v1 PrometheusRule: "
    "install the Prometheus Operator's CRDs"
)

# As the Model controller does for its children: what this process last applied (the
# manifest's hash, the object's generation after), so a converged object costs one read.
_applied: dict[tuple[str, str, str], tuple[str, str]] = {}
_served: dict[str, bool] = {}


def _serves(kube: Kube, config: Config, ref: Ref) -> bool:
    try:
        served = kube.serves(ref, config.discovery_seconds)
    except ApiError as e:
        log.warning("discovery of %s/%s: %s", ref.group, ref.version, e)
        return False
    if _served.get(ref.plural) != served:
        _served[ref.plural] = served
        log.info("%s.%s %s", ref.plural, ref.group, "served" if served else "not served")
    return served


def _apply(kube: Kube, ref: Ref, manifest: Json) -> Json | None:
    """Server-side apply unless nothing changed; the object when this created it."""
    meta = manifest["metadata"]
    key = (ref.plural, meta["namespace"], meta["name"])
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    existing = kube.get(ref, meta["namespace"], meta["name"])
    if existing is not None and _applied.get(key) == (
        digest,
        str(existing["metadata"].get("generation")),
    ):
        return None
    applied = kube.apply(ref, manifest)
    _applied[key] = (digest, str(applied["metadata"].get("generation")))
    return applied if existing is None else None


def sync_pod_monitor(kube: Kube, config: Config, raw: Json, model: Model) -> None:
    """The Model's PodMonitor, when the cluster serves PodMonitors."""
    if not _serves(kube, config, POD_MONITORS):
        return
    manifest = pod_monitor(model, dict(config.prometheus_operator_labels))
    name = manifest["metadata"]["name"]
    try:
        created = _apply(kube, POD_MONITORS, manifest)
    except NotFound:
        kube.forget_discovery(POD_MONITORS)  # the CRD went away since discovery said it was there
        return
    except NamespaceTerminating:
        return  # nothing to scrape there any more, and nowhere to say so
    except ApiError as e:
        log.warning("model %s/%s: PodMonitor: %s", model.metadata.namespace, name, e)
        key = f"podmonitor-failed/{model.metadata.generation}/{e.status}"
        events.emit(kube, raw, "PodMonitorFailed", f"PodMonitor {name}: {e}", key, "Warning")
        return
    if created is not None:
        port = model.spec.serving.port
        note = (
            f"PodMonitor {name} created: the Prometheus Operator scrapes the serving pods "
            f"on :{port}{manifests.METRICS_PATH}"
        )
        events.emit(
            kube, raw, "PodMonitorCreated", note, f"podmonitor/{created['metadata']['uid']}"
        )


def sync_prometheus_rule(
    kube: Kube,
    config: Config,
    raw: Json,
    policy: MonitorPolicy,
    model: Model | None,
    versions: dict[str, ModelVersion],
) -> None:
    """The policy's PrometheusRule while spec.alerting.prometheusRule is true, for the
    version the Model serves; removed (with its condition) when that turns false."""
    ns, name = policy.metadata.namespace, policy.metadata.name
    if not policy.spec.alerting.prometheus_rule:
        if conditions.find(policy.status.conditions, CONDITION) is not None:
            # It was asked for before: remove what that made.
            if _serves(kube, config, PROMETHEUS_RULES):
                kube.delete(PROMETHEUS_RULES, ns, name)
            _applied.pop((PROMETHEUS_RULES.plural, ns, name), None)
            _status(kube, policy, None)
        return
    if not _serves(kube, config, PROMETHEUS_RULES):
        _status(kube, policy, _condition(policy, False, "CRDNotInstalled", NOT_INSTALLED))
        return
    version = model.status.serving_version if model else None
    if model is None or version is None:
        message = f"model {policy.spec.model_ref.name} serves no version yet"
        _status(kube, policy, _condition(policy, False, "NotServing", message))
        return
    mv = versions.get(version)
    previous = next((h.version for h in model.status.history if h.version != version), None)
    offline = mv.spec.metrics if mv else {}
    extra = dict(config.prometheus_operator_labels)
    planned = prometheus_rule(policy, version, offline, previous, extra)
    try:
        created = _apply(kube, PROMETHEUS_RULES, planned.manifest)
    except NotFound:
        kube.forget_discovery(PROMETHEUS_RULES)
        _status(kube, policy, _condition(policy, False, "CRDNotInstalled", NOT_INSTALLED))
        return
    except NamespaceTerminating:
        return  # the policy goes with its namespace: no rule to write, no failure to report
    except ApiError as e:
        log.warning("monitorpolicy %s/%s: PrometheusRule: %s", ns, name, e)
        _status(kube, policy, _condition(policy, False, "ApplyFailed", str(e)))
        return
    message = f"PrometheusRule {name}: {planned.alerts} alerts on version {version}"
    if planned.skipped:
        message += "; left out: " + "; ".join(planned.skipped)
    _status(kube, policy, _condition(policy, True, "Applied", message))
    if created is not None:
        events.emit(
            kube,
            raw,
            "PrometheusRuleCreated",
            message,
            f"prometheusrule/{created['metadata']['uid']}",
        )


def _condition(policy: MonitorPolicy, ok: bool, reason: str, message: str) -> Condition:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    generation = policy.metadata.generation
    return conditions.condition(
        CONDITION, ok, reason, message, generation, policy.status.conditions, now
    )


def _status(kube: Kube, policy: MonitorPolicy, condition: Condition | None) -> None:
    """Write the condition under this module's manager, only when it changed; None removes it
    (an apply that leaves out what the manager owned)."""
    old = conditions.find(policy.status.conditions, CONDITION)
    if condition is None and old is None:
        return
    if condition is not None and conditions.unchanged(old, condition):
        return
    body: Json = {
        "apiVersion": policy.api_version,
        "kind": "MonitorPolicy",
        "metadata": {"name": policy.metadata.name, "namespace": policy.metadata.namespace},
    }
    if condition is not None:
        body["status"] = {"conditions": [conditions.dump(condition)]}
    kube.apply(MONITOR_POLICIES, body, manager=MANAGER, status=True)
