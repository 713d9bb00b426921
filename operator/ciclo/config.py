"""The operator's own settings, from its command line or environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

DEFAULT_IMAGE = "ghcr.io/ciclo-dev/ciclo:0.1.0"


@dataclass(frozen=True)
class Config:
    image: str = DEFAULT_IMAGE
    """The runtime image serving pods run, unless a Model names its own."""
    resync_seconds: float = 60.0
    """How often every Model is reconciled even without an event."""
    metrics_port: int = 8000
    workers: int = 8
    """Threads reconciling Models (and kopf's handler threads)."""
    namespaces: tuple[str, ...] = ()
    """Watch only these namespaces (`ciclo run --namespace`); empty means cluster-wide."""
    prometheus_url: str | None = None
    """Where MonitorPolicies query Prometheus unless they name their own."""
    monitor_workers: int = 32
    """Threads evaluating MonitorPolicies, apart from the reconciles. An evaluation mostly
    waits (API server, Prometheus), and a policy due while every thread is busy starts late:
    500 policies at 10 s had a p99 lag of 1.7 s with 8 (docs/benchmarks.md)."""
    discovery_seconds: float = 60.0
    """How long API discovery's answer (are the Prometheus Operator's CRDs served?) is kept."""
    prometheus_operator_labels: tuple[tuple[str, str], ...] = ()
    """Extra labels on the PodMonitors and PrometheusRules, for a Prometheus that selects
    them by label (kube-prometheus-stack's `release`)."""

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            image=os.environ.get("CICLO_RUNTIME_IMAGE", DEFAULT_IMAGE),
            resync_seconds=float(os.environ.get("CICLO_RESYNC_SECONDS", "60")),
            metrics_port=int(os.environ.get("CICLO_METRICS_PORT", "8000")),
            workers=int(os.environ.get("CICLO_WORKERS", "8")),
            prometheus_url=os.environ.get("CICLO_PROMETHEUS_URL") or None,
            monitor_workers=int(os.environ.get("CICLO_MONITOR_WORKERS", "32")),
            discovery_seconds=float(os.environ.get("CICLO_DISCOVERY_SECONDS", "60")),
            prometheus_operator_labels=labels_from_json(
                os.environ.get("CICLO_PROMETHEUS_OPERATOR_LABELS", "")
            ),
        )


def labels_from_json(text: str) -> tuple[tuple[str, str], ...]:
    """A JSON object of string labels (the chart writes one); empty text is none."""
    if not text.strip():
        return ()
    labels = json.loads(text)
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError(
            f"CICLO_PROMETHEUS_OPERATOR_LABELS is not a JSON object of strings: {text}"
        )
    return tuple(sorted(labels.items()))
