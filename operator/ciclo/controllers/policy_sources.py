"""Where a MonitorPolicy's readings come from: its source, with what the source needs from
the cluster read here (ciclo.monitoring itself never talks to the API server), and the
readings of one evaluation."""

from __future__ import annotations

import base64
import dataclasses

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy, Rule
from ciclo.config import Config
from ciclo.kube.client import PODS, SECRETS, Kube
from ciclo.monitoring.evaluation import Reading
from ciclo.monitoring.sources import (
    Credentials,
    MetricSource,
    PodsSource,
    PrometheusSource,
    Query,
)
from ciclo.planning.monitorpolicy import Observed, offline_baseline, previous_version, serving


class SourceUnavailable(Exception):
    pass


def make_source(kube: Kube, config: Config, policy: MonitorPolicy) -> MetricSource:
    """The policy's source: its serving pods, or a Prometheus with its credentials."""
    ns = policy.metadata.namespace
    spec = policy.spec.source
    if spec.type == "pods":
        return PodsSource(pod_targets(kube, ns, policy.spec.model_ref.name))
    url = (spec.prometheus.url if spec.prometheus else None) or config.prometheus_url
    if not url:
        raise SourceUnavailable(
            "no Prometheus URL: set spec.source.prometheus.url or the operator's --prometheus-url"
        )
    credentials = Credentials()
    ref = spec.prometheus.secret_ref if spec.prometheus else None
    if ref is not None:
        secret = kube.get(SECRETS, ns, ref.name)
        if secret is None:
            raise SourceUnavailable(f"secret {ref.name} not found")
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

        def key(k: str | None) -> str | None:
            if k is None:
                return None
            if k not in data:
                raise SourceUnavailable(f"secret {ref.name} has no key {k}")
            return data[k]

        credentials = Credentials(
            key(ref.bearer_token_key), key(ref.username_key), key(ref.password_key)
        )
    return PrometheusSource(url, credentials)


def pod_targets(kube: Kube, namespace: str, model: str) -> dict[str, list[str]]:
    """The Ready serving pods' /metrics URLs, by version."""
    selector = f"ciclo.dev/model={model},app.kubernetes.io/managed-by=ciclo"
    out: dict[str, list[str]] = {}
    for pod in kube.list(PODS, namespace, labels=selector):
        status = pod.get("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        ip = status.get("podIP")
        meta = pod["metadata"]
        annotations = meta.get("annotations", {})
        port = annotations.get("prometheus.io/port")
        if not (ready and ip and port) or meta.get("deletionTimestamp"):
            continue
        path = annotations.get("prometheus.io/path", "/metrics")
        version = meta.get("labels", {}).get("ciclo.dev/version", "")
        out.setdefault(version, []).append(f"http://{ip}:{port}{path}")
    return out


def observe(
    source: MetricSource,
    policy: MonitorPolicy,
    model: Model,
    versions: dict[str, ModelVersion],
) -> dict[str, Observed]:
    """Each rule's reading of the serving version, and its baseline; nothing while the
    Model serves no version."""
    version = serving(model)
    if version is None:
        return {}
    before = previous_version(model)
    out: dict[str, Observed] = {}
    for rule in policy.spec.rules:
        query = Query(
            policy.metadata.namespace,
            model.metadata.name,
            version,
            rule.window,
            rule.metric,
            rule.query,
            rule.feature,
        )
        out[rule.name] = Observed(
            source.read(query), _baseline(rule, source, query, versions, before)
        )
    return out


def _baseline(
    rule: Rule,
    source: MetricSource,
    query: Query,
    versions: dict[str, ModelVersion],
    before: str | None,
) -> float | None:
    if rule.baseline is None:
        return None
    if rule.baseline.source == "offline":
        return offline_baseline(rule, versions, query.version)
    if before is None:
        return None
    reading = source.read(dataclasses.replace(query, version=before))
    return reading.value if reading.error is None else None


def arm_readings(
    source: MetricSource, model: Model, window: str, metric: str = "accuracy"
) -> dict[str, Reading]:
    """The champion's and the running candidate's `metric` over the rollout so far
    (`window`), with its sample count: an A/B test's arms, a shadow's two sides."""
    canary = model.status.canary
    if canary is None:
        return {}
    return {
        version: source.read(
            Query(model.metadata.namespace, model.metadata.name, version, window, metric)
        )
        for version in (canary.champion, canary.version)
    }


def agreement_reading(source: MetricSource, model: Model, window: str) -> Reading:
    """The share of labelled rows on which the running candidate answered as the
    champion did, over `window` (a shadow's: both answered every request)."""
    canary = model.status.canary
    if canary is None:
        return Reading()
    query = Query(model.metadata.namespace, model.metadata.name, canary.version, window)
    return source.read(dataclasses.replace(query, metric="agreement", other=canary.champion))
