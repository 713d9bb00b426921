"""The operator's own metrics (prometheus-client, its own registry and port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ciclo.kube import client

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "ciclo_reconciles", "Reconciles by kind and result", ["kind", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "ciclo_reconcile_duration_seconds", "Reconcile duration", ["kind"], registry=REGISTRY
)
ROLLBACKS = Counter("ciclo_rollbacks", "Rollbacks carried out", registry=REGISTRY)
RETIREMENTS = Counter("ciclo_retirements", "Models retired", registry=REGISTRY)
REGISTRY.register(client.REQUESTS)

MODELS = Gauge(
    "ciclo_models",
    "Models by condition type and status",
    ["condition", "status"],
    registry=REGISTRY,
)
