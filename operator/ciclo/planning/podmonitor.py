"""A Model's PodMonitor: the Prometheus Operator's way to scrape its serving pods."""

from __future__ import annotations

from collections.abc import Mapping

from ciclo.api.model import Model
from ciclo.planning.manifests import METRICS_PATH, MODEL_LABEL, PORT_NAME, Json, labels, owner

API_VERSION = "monitoring.coreos.com/v1"


def pod_monitor(model: Model, extra_labels: Mapping[str, str] | None = None) -> Json:
    """Every serving pod of the Model, warm versions too (their metrics carry `version`),
    on the port and path the pods' prometheus.io/* annotations name. `extra_labels` are
    for a Prometheus that selects PodMonitors by label; ciclo's own win over them."""
    name = model.metadata.name
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {
            "name": name,
            "namespace": model.metadata.namespace,
            "labels": {**(extra_labels or {}), **labels(name)},
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "selector": {
                "matchLabels": {MODEL_LABEL: name, "app.kubernetes.io/managed-by": "ciclo"}
            },
            "podMetricsEndpoints": [{"port": PORT_NAME, "path": METRICS_PATH}],
        },
    }
