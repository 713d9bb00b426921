"""The local control plane: KWOK nodes, the process node, pinned versions, idempotent up/down."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from realnode import ON_REAL_NODE
from waiting import wait_for

import kubernetes
from ciclo.config import DEFAULT_IMAGE
from localcluster import launcher, prometheus
from localcluster.paths import Paths

pytestmark = pytest.mark.integration


def deployment(name: str, replicas: int, pod_spec: dict[str, object]) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def test_deployment_on_kwok_nodes_becomes_available(apps, core, namespace):
    spec = {"containers": [{"name": "app", "image": "registry.example/app:1"}]}
    apps.create_namespaced_deployment(namespace, deployment("web", 3, spec))

    def available() -> bool:
        status = apps.read_namespaced_deployment("web", namespace).status
        return status.available_replicas == 3

    wait_for("3 available replicas", available, timeout=60)
    nodes = {p.spec.node_name for p in core.list_namespaced_pod(namespace).items}
    assert nodes and all(n.startswith("kwok-node-") for n in nodes)


def test_deleting_a_namespace_completes(core):
    core.create_namespace({"metadata": {"name": "t-ns-delete"}})
    core.create_namespaced_config_map(
        "t-ns-delete", {"metadata": {"name": "c"}, "data": {"k": "v"}}
    )
    core.delete_namespace("t-ns-delete")

    def gone() -> bool:
        try:
            core.read_namespace("t-ns-delete")
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("namespace deletion", gone, timeout=90)


def process_pod_spec(marker: str) -> dict[str, object]:
    """A small HTTP server for the process node, bound to its pod IP."""
    return {
        "nodeSelector": {"ciclo.dev/process-node": "true"},
        "tolerations": [
            {"key": "ciclo.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "terminationGracePeriodSeconds": 2,
        "containers": [
            {
                "name": "http",
                "image": "python:3.11",
                "command": [
                    "python3",
                    "-m",
                    "http.server",
                    "8000",
                    "--bind",
                    "$(POD_IP)",
                    "--directory",
                    "/srv",
                ],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MARKER", "value": marker},
                ],
                "ports": [{"name": "http", "containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "www", "mountPath": "/srv"}],
            }
        ],
        "initContainers": [
            {
                "name": "content",
                "image": "busybox",
                "command": ["sh", "-c", "echo hello from $(POD_NAME) > /srv/index.html"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "volumeMounts": [{"name": "www", "mountPath": "/srv"}],
            }
        ],
        "volumes": [{"name": "www", "emptyDir": {}}],
    }


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries the marker: survives argv rewriting by unshare/sh."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"MARKER={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_process_node_runs_a_deployment_as_real_processes(apps, core, namespace):
    marker = f"procnode-{namespace}"
    apps.create_namespaced_deployment(namespace, deployment("http", 1, process_pod_spec(marker)))

    def ready_pod() -> kubernetes.client.V1Pod | None:
        for pod in core.list_namespaced_pod(namespace).items:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if conditions.get("Ready") == "True":
                return pod
        return None

    pod = wait_for("a Ready pod on the process node", ready_pod, timeout=60)
    assert pod.spec.node_name == launcher.PROCESS_NODE
    assert pod.status.pod_ip.startswith("10.244.0.")
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8000/", timeout=5) as response:
        assert response.read().decode().strip() == f"hello from {pod.metadata.name}"
    assert processes_with(marker), "the pod's server should be a live process"

    # The Service's EndpointSlice carries the pod IP once the pod is Ready.
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "http"},
            "spec": {"selector": {"app": "http"}, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    )
    discovery = kubernetes.client.DiscoveryV1Api(core.api_client)

    def endpoint_ips() -> set[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=http"
        ).items
        return {
            a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses
        }

    assert wait_for("the pod IP in the Service's EndpointSlice", endpoint_ips, timeout=60) == {
        pod.status.pod_ip
    }

    apps.delete_namespaced_deployment("http", namespace)
    core.delete_namespaced_pod(pod.metadata.name, namespace)
    wait_for("the pod's processes to end", lambda: not processes_with(marker), timeout=30)

    def pod_gone() -> bool:
        try:
            core.read_namespaced_pod(pod.metadata.name, namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("the pod object to be removed, as a kubelet does", pod_gone, timeout=30)


def test_failing_readiness_keeps_a_pod_unready(core, namespace):
    spec = process_pod_spec(f"unready-{namespace}")
    spec["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/missing"
    core.create_namespaced_pod(namespace, {"metadata": {"name": "unready"}, "spec": spec})

    def running() -> bool:
        pod = core.read_namespaced_pod("unready", namespace)
        return bool(
            pod.status.container_statuses and pod.status.container_statuses[0].state.running
        )

    wait_for("the container to run", running, timeout=60)
    time.sleep(2)  # two probe periods
    pod = core.read_namespaced_pod("unready", namespace)
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"


def test_pinned_versions(paths: Paths, kubeconfig: Path):
    out = subprocess.run(
        [str(paths.binary("kubectl")), "--kubeconfig", str(kubeconfig), "version", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = json.loads(out)
    assert versions["clientVersion"]["gitVersion"] == "v1.36.4"
    assert versions["serverVersion"]["gitVersion"] == "v1.36.4"
    helm = subprocess.run(
        [str(paths.binary("helm")), "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert helm.startswith("v3.22.0")


def test_up_twice_and_down_twice_are_harmless(paths: Paths, kubeconfig: Path):
    assert launcher.up(paths) == kubeconfig  # a healthy cluster is reused
    assert launcher.healthy(paths, kubeconfig)

    other = Paths(cache=paths.cache, name="ciclo-idempotence")
    launcher.down(other)  # never started: nothing to do
    try:
        config = launcher.up(other, fake_nodes=1, process_node=False, real_node=False)
        assert launcher.healthy(other, config)
    finally:
        launcher.down(other)
        launcher.down(other)
    assert not other.kubeconfig.exists()
    assert launcher.healthy(paths, kubeconfig), "the session's cluster is untouched"


def test_missing_binary_names_the_make_target(tmp_path: Path):
    empty = Paths(cache=tmp_path, name="none")
    with pytest.raises(Exception, match=r"kwokctl is missing: run `make tools`"):
        os.environ.pop("CICLO_USE_EXISTING_CLUSTER", None)
        launcher.up(empty)


def test_prometheus_discovers_and_scrapes_only_real_node_pods(
    paths: Paths, kubeconfig: Path, apps, namespace
):
    """Real Prometheus, pods found through the API server by their prometheus.io annotations,
    scraped over the pod network: a container from the ciclo image on the real node."""
    exporter = (
        "import time, prometheus_client as p; p.Counter('localcluster_probe', 'x').inc(); "
        "p.start_http_server(8000, addr='0.0.0.0'); time.sleep(3600)"
    )
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"}
    container = {"name": "probe", "image": DEFAULT_IMAGE, "command": ["python", "-c", exporter]}
    on_real_node = deployment("probe", 1, {"containers": [container], **ON_REAL_NODE})
    on_real_node["spec"]["template"]["metadata"]["annotations"] = annotations  # type: ignore[index]
    fake = deployment("fake", 1, {"containers": [{"name": "app", "image": "example/app:1"}]})
    fake["spec"]["template"]["metadata"]["annotations"] = annotations  # type: ignore[index]
    apps.create_namespaced_deployment(namespace, on_real_node)
    apps.create_namespaced_deployment(namespace, fake)
    url = prometheus.start(paths, kubeconfig, port=19090)
    try:

        def query(promql: str) -> list[dict[str, object]]:
            q = urllib.parse.urlencode({"query": promql})
            with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as response:
                return json.load(response)["data"]["result"]  # type: ignore[no-any-return]

        found = wait_for(
            "the probe's counter in Prometheus",
            lambda: query(f'localcluster_probe_total{{namespace="{namespace}"}}'),
            timeout=60,
        )
        assert found[0]["value"][1] == "1"  # type: ignore[index]
        targets = query(f'up{{namespace="{namespace}"}}')
        assert [t["metric"]["pod"].startswith("probe-") for t in targets] == [True]  # type: ignore[index]
    finally:
        prometheus.stop(paths, port=19090)
