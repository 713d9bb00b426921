"""Scrape wiring on the real API server: without the Prometheus Operator's CRDs a Model
serves and nothing else happens; once they are installed (from the pinned module, `make
tools`), the Model gets a PodMonitor selecting its pods and a MonitorPolicy asking for it a
PrometheusRule mirroring its rules, both updated with the spec and gone with their owner."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from test_operator import G, V, World, model_manifest, version_manifest
from waiting import wait_for

from ciclo.api.model import Model
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.config import Config
from ciclo.controllers.prometheus_operator import sync_pod_monitor, sync_prometheus_rule
from ciclo.kube.client import Json, Kube
from conftest import Operator
from localcluster import launcher
from localcluster.paths import Paths

pytestmark = pytest.mark.integration

MON = ("monitoring.coreos.com", "v1")
CRD_NAMES = ("podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
ERRORS = (
    'sum(rate(ciclo_requests_total{namespace="{{namespace}}",model="{{model}}",'
    'version="{{version}}",outcome="server_error"}[{{window}}]))'
)


def policy_manifest(min_accuracy: float = 0.8, prometheus_rule: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "MonitorPolicy",
        "metadata": {"name": "iris-quality"},
        "spec": {
            "modelRef": {"name": "iris"},
            "interval": "2s",
            # A Prometheus that is not there: every rule is NoData, nothing acts. Loopback
            # only, so that the evaluation never reaches for a fake pod's address.
            "source": {"type": "prometheus", "prometheus": {"url": "http://127.0.0.1:9"}},
            "alerting": {"prometheusRule": prometheus_rule},
            "rules": [
                {"name": "accuracy-floor", "metric": "accuracy", "min": min_accuracy},
                {"name": "vs-offline", "metric": "accuracy", "baseline": {"maxDrop": 0.05}},
                {"name": "errors", "query": ERRORS, "max": 1, "action": "rollback"},
            ],
        },
    }


def crd_files(paths: Paths) -> list[str]:
    files = sorted((paths.cache / "crds" / "prometheus-operator").glob("*.yaml"))
    assert len(files) == 2, "the Prometheus Operator's CRDs are missing: run `make tools`"
    return [f"--filename={f}" for f in files]


@pytest.fixture
def wiring_operator(
    without_session_operator: Operator,
    kubeconfig: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Operator]:
    """An operator that resyncs and asks discovery every few seconds, so the test need not
    wait the default minute for CRDs installed while it runs; with the label a
    kube-prometheus-stack Prometheus selects by."""
    monkeypatch.setenv("CICLO_DISCOVERY_SECONDS", "2")
    monkeypatch.setenv("CICLO_PROMETHEUS_OPERATOR_LABELS", '{"release": "kps"}')
    op = Operator(kubeconfig, tmp_path / "operator.log", resync=3)
    op.start()
    yield op
    op.stop()


@pytest.fixture
def prometheus_operator_crds(paths: Paths, kubeconfig: Path) -> Iterator[list[str]]:
    """Not installed at the start; removed at the end: they are cluster-wide."""
    files = crd_files(paths)
    delete = ("delete", "--ignore-not-found", "--wait", "--timeout=60s", *files)
    launcher.kubectl(paths, kubeconfig, *delete)
    yield files
    launcher.kubectl(paths, kubeconfig, *delete)


def install(paths: Paths, kubeconfig: Path, files: list[str]) -> None:
    launcher.kubectl(paths, kubeconfig, "apply", "--server-side", *files)
    launcher.kubectl(
        paths,
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{name}" for name in CRD_NAMES),
    )


def get(custom: Any, ns: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(*MON, ns, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return obj


def policy_condition(world: World) -> dict[str, Any]:
    policy = world.custom.get_namespaced_custom_object(
        G, V, world.ns, "monitorpolicies", "iris-quality"
    )
    conditions = policy.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "PrometheusRule"), {})


def test_podmonitor_and_prometheusrule_only_while_the_crds_are_served(
    custom, core, apps, namespace, wiring_operator, prometheus_operator_crds, paths, kubeconfig
):
    world = World(custom, core, apps, namespace)
    world.create(version_manifest("v1"))
    world.create(model_manifest("v1"))
    custom.create_namespaced_custom_object(G, V, namespace, "monitorpolicies", policy_manifest())

    # Without the CRDs: the Model serves, the pods carry the annotations, the policy says
    # why it has no PrometheusRule, and nothing failed.
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")
    pods = core.list_namespaced_pod(namespace, label_selector="ciclo.dev/model=iris").items
    assert pods and all(p.metadata.annotations["prometheus.io/port"] == "8080" for p in pods)
    wait_for(
        "the policy to say the CRDs are missing",
        lambda: policy_condition(world).get("reason") == "CRDNotInstalled",
    )
    assert policy_condition(world)["status"] == "False"
    assert world.condition("Degraded")["status"] == "False"
    assert not world.events("PodMonitorFailed")
    assert "Traceback" not in wiring_operator.log.read_text()

    # The CRDs arrive: discovery notices, the resync and the next evaluation write.
    install(paths, kubeconfig, prometheus_operator_crds)
    monitor = wait_for(
        "the PodMonitor", lambda: get(custom, namespace, "podmonitors", "iris"), timeout=60
    )
    assert monitor["metadata"]["labels"]["release"] == "kps"
    model_uid = world.model()["metadata"]["uid"]
    assert [(o["kind"], o["uid"]) for o in monitor["metadata"]["ownerReferences"]] == [
        ("Model", model_uid)
    ]
    match = monitor["spec"]["selector"]["matchLabels"]
    selected = core.list_namespaced_pod(
        namespace, label_selector=",".join(f"{k}={v}" for k, v in match.items())
    ).items
    assert {p.metadata.name for p in selected} == {p.metadata.name for p in pods}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for pod in selected:
        ports = {p.name: p.container_port for p in pod.spec.containers[0].ports}
        assert ports[endpoint["port"]] == 8080
        assert endpoint["path"] == pod.metadata.annotations["prometheus.io/path"]
    wait_for("the PodMonitorCreated Event", lambda: world.events("PodMonitorCreated"))

    rule = wait_for(
        "the PrometheusRule",
        lambda: get(custom, namespace, "prometheusrules", "iris-quality"),
        timeout=60,
    )
    policy_uid = custom.get_namespaced_custom_object(
        G, V, namespace, "monitorpolicies", "iris-quality"
    )["metadata"]["uid"]
    assert [(o["kind"], o["uid"]) for o in rule["metadata"]["ownerReferences"]] == [
        ("MonitorPolicy", policy_uid)
    ]
    assert rule["metadata"]["labels"]["release"] == "kps"
    (group,) = rule["spec"]["groups"]
    alerts = {a["alert"]: a for a in group["rules"]}
    assert set(alerts) == {"ciclo_accuracy_floor", "ciclo_vs_offline", "ciclo_errors"}
    floor = alerts["ciclo_accuracy_floor"]
    assert floor["expr"].endswith(") < 0.8")
    assert f'namespace="{namespace}",model="iris",version="v1"' in floor["expr"]
    assert floor["for"] == "6s"  # failureThreshold 3 x interval 2s
    assert floor["labels"]["severity"] == "warning"
    assert alerts["ciclo_vs_offline"]["expr"].endswith(") < 0.85")  # v1's accuracy 0.9 - 0.05
    assert alerts["ciclo_errors"]["expr"].startswith("(sum(rate(ciclo_requests_total{")
    assert alerts["ciclo_errors"]["labels"]["severity"] == "critical"
    wait_for("PrometheusRule=True", lambda: policy_condition(world).get("status") == "True")
    assert policy_condition(world)["reason"] == "Applied"

    # A spec change reaches the PrometheusRule; turning it off removes it and its condition.
    custom.patch_namespaced_custom_object(
        G, V, namespace, "monitorpolicies", "iris-quality", {"spec": policy_manifest(0.9)["spec"]}
    )
    wait_for(
        "the new bound in the PrometheusRule",
        lambda: (
            (get(custom, namespace, "prometheusrules", "iris-quality") or {})
            .get("spec", {})
            .get("groups", [{}])[0]
            .get("rules", [{}])[0]
            .get("expr", "")
            .endswith(") < 0.9")
        ),
    )
    custom.patch_namespaced_custom_object(
        G,
        V,
        namespace,
        "monitorpolicies",
        "iris-quality",
        {"spec": {"alerting": {"prometheusRule": False}}},
    )
    wait_for(
        "the PrometheusRule to go",
        lambda: get(custom, namespace, "prometheusrules", "iris-quality") is None,
    )
    wait_for("the condition to go", lambda: not policy_condition(world))
    custom.patch_namespaced_custom_object(
        G,
        V,
        namespace,
        "monitorpolicies",
        "iris-quality",
        {"spec": {"alerting": {"prometheusRule": True}}},
    )
    wait_for(
        "the PrometheusRule again",
        lambda: get(custom, namespace, "prometheusrules", "iris-quality"),
    )

    # Deleting the owners takes their objects with them (garbage collection).
    custom.delete_namespaced_custom_object(G, V, namespace, "monitorpolicies", "iris-quality")
    custom.delete_namespaced_custom_object(G, V, namespace, "models", "iris")
    wait_for(
        "the PrometheusRule and PodMonitor to be garbage-collected",
        lambda: (
            get(custom, namespace, "prometheusrules", "iris-quality") is None
            and get(custom, namespace, "podmonitors", "iris") is None
        ),
        timeout=90,
    )
    assert "Traceback" not in wiring_operator.log.read_text()


def test_a_namespace_being_deleted_gets_neither_and_no_complaint(
    api: Any,
    custom: Any,
    terminating: tuple[str, Json],
    prometheus_operator_crds: list[str],
    paths: Paths,
    kubeconfig: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The API server refuses creates in a namespace being deleted; for a Model and a policy
    going with it that is no failure: no warning, no PodMonitorFailed, no ApplyFailed."""
    install(paths, kubeconfig, prometheus_operator_crds)
    ns, _ = terminating
    meta = {"namespace": ns, "uid": str(uuid.uuid4()), "generation": 1}
    model_raw = model_manifest("v1")
    model_raw["metadata"] |= meta
    model = Model.model_validate({**model_raw, "status": {"servingVersion": "v1"}})
    policy_raw = policy_manifest()
    policy_raw["metadata"] |= meta
    policy = MonitorPolicy.model_validate(policy_raw)
    kube = Kube(api)
    with caplog.at_level(logging.INFO, logger="ciclo"):
        sync_pod_monitor(kube, Config(), model_raw, model)
        sync_prometheus_rule(kube, Config(), policy_raw, policy, model, {})
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert get(custom, ns, "podmonitors", "iris") is None
    assert get(custom, ns, "prometheusrules", "iris-quality") is None
