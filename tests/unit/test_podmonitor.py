"""A Model's PodMonitor selects the pods its Deployments make, where they serve /metrics."""

from __future__ import annotations

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.planning import manifests
from ciclo.planning.podmonitor import pod_monitor


def test_selects_every_serving_pod_on_the_annotated_port_and_path() -> None:
    model = Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"version": "v1", "serving": {"port": 9090}},
        }
    )
    version = ModelVersion.model_validate(
        {
            "metadata": {"name": "iris-v1", "namespace": "ns"},
            "spec": {
                "model": "iris",
                "version": "v1",
                "artifact": {"uri": "file:///m", "format": "sklearn", "sha256": "a" * 64},
            },
        }
    )
    monitor = pod_monitor(model)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "ns"
    assert monitor["metadata"]["ownerReferences"] == [manifests.owner(model)]
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "Model"

    for role in ("serving", "warm"):
        pod = manifests.deployment(model, version, 1, role, "img")["spec"]["template"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        port, grpc = pod["spec"]["containers"][0]["ports"]
        assert endpoint["port"] == port["name"] and grpc["name"] == "grpc"
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port["containerPort"]) == "9090"
        assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics"


def test_extra_labels_for_a_prometheus_that_selects_by_label_never_override_ours() -> None:
    model = Model.model_validate(
        {"metadata": {"name": "iris", "namespace": "ns", "uid": "u1"}, "spec": {"version": "v1"}}
    )
    extra = {"release": "kps", "app.kubernetes.io/managed-by": "someone"}
    meta = pod_monitor(model, extra)["metadata"]
    assert meta["labels"]["release"] == "kps"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "ciclo"
