"""The local control plane: KWOK nodes, pinned versions, idempotent up/down, Prometheus
scraping the real node's pods (the node itself: test_real_node.py)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from realnode import ON_REAL_NODE
from waiting import wait_for

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
        config = launcher.up(other, fake_nodes=1, real_node=False)
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
