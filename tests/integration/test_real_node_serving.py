"""The operator serves a Model on the real node: its pods run the ciclo image (from the
Dockerfile) under kubelet, containerd and runc, in a namespace that enforces the Pod
Security "restricted" profile, and fetch their artifact over HTTP from the host.
Only on request: pytest -m realnode (docs/real-node.md)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from realnode import ON_REAL_NODE, ArtifactServer
from waiting import wait_for

import kubernetes
from ciclo.config import DEFAULT_IMAGE
from conftest import Operator
from localcluster import launcher, node
from localcluster.paths import Paths

pytestmark = pytest.mark.realnode

G, V = "ciclo.dev", "v1alpha1"
# No proxy from the environment for the bridge's addresses.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Cluster:
    paths: Paths
    kubeconfig: Path
    custom: Any
    core: Any

    def kubectl(self, *args: str, check: bool = True) -> str:
        return launcher.kubectl(self.paths, self.kubeconfig, *args, check=check).stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The real node with the operator's CRDs; taken under the cluster lock, left down."""
    paths = Paths.from_env()
    paths.cache.mkdir(parents=True, exist_ok=True)
    with (paths.cache / "cluster.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        launcher.down(paths)
        start = time.monotonic()
        kubeconfig = launcher.up(paths, fake_nodes=1)
        print(f"up with the real node Ready: {time.monotonic() - start:.1f} s")
        try:
            crds = str(Path(__file__).resolve().parents[2] / "crds")
            launcher.kubectl(paths, kubeconfig, "apply", "--server-side", "-f", crds)
            launcher.kubectl(
                paths, kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                "crd", "-l", "app.kubernetes.io/part-of=ciclo",
            )  # fmt: skip
            api = kubernetes.config.new_client_from_config(str(kubeconfig))
            yield Cluster(
                paths,
                kubeconfig,
                kubernetes.client.CustomObjectsApi(api),
                kubernetes.client.CoreV1Api(api),
            )
        finally:
            launcher.down(paths)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, operator: Operator) -> Iterator[str]:
    """Under the restricted profile; deleted while the operator runs to release its Models."""
    name = f"t-real-serving-{uuid.uuid4().hex[:5]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    cluster.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    yield name
    cluster.core.delete_namespace(name)
    names = lambda: {n.metadata.name for n in cluster.core.list_namespace().items}  # noqa: E731
    wait_for(f"namespace {name} gone", lambda: name not in names(), timeout=90)


@dataclass
class Artifact:
    uri: str
    sha256: str
    expected: list[int]
    """What the model predicts for ROWS."""


ROWS = [0, 60, 120]  # one iris of each kind


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artifact]:
    """A scikit-learn iris model, served over HTTP on the bridge's host address."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    buffer = io.BytesIO()
    model = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(model, buffer)
    root = tmp_path_factory.mktemp("artifacts")
    (root / "iris.joblib").write_bytes(buffer.getvalue())
    server = ArtifactServer(root)
    try:
        expected = [int(p) for p in model.predict(x[ROWS])]
        sha256 = hashlib.sha256(buffer.getvalue()).hexdigest()
        yield Artifact(server.uri("iris.joblib"), sha256, expected)
    finally:
        server.close()


class Models:
    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.cluster, self.ns = cluster, ns

    def create(self, kind: str, manifest: dict[str, Any]) -> None:
        body = {"apiVersion": f"{G}/{V}", "kind": kind, **manifest}
        plural = {"Model": "models", "ModelVersion": "modelversions"}[kind]
        self.cluster.custom.create_namespaced_custom_object(G, V, self.ns, plural, body)

    def serve(self, model: str, uri: str, sha256: str, **serving: Any) -> None:
        """A ModelVersion `<model>-v1` and a Model serving it, one pod on the real node."""
        artifact = {"uri": uri, "format": "sklearn", "sha256": sha256}
        self.create(
            "ModelVersion",
            {
                "metadata": {"name": f"{model}-v1"},
                "spec": {"model": model, "version": "v1", "artifact": artifact},
            },
        )
        spec = {"version": "v1", "serving": {"replicas": 1, **ON_REAL_NODE, **serving}}
        self.create("Model", {"metadata": {"name": model}, "spec": spec})

    def get(self, plural: str, name: str) -> Any:
        return self.cluster.custom.get_namespaced_custom_object(G, V, self.ns, plural, name)

    def condition(self, plural: str, name: str, kind: str) -> dict[str, Any]:
        found = self.get(plural, name).get("status", {}).get("conditions", [])
        return next((c for c in found if c["type"] == kind), {})

    def failed(self, model: str, kind: str) -> dict[str, Any]:
        """`<model>-v1`'s condition `kind` once it is False."""
        name = f"{model}-v1"
        return wait_for(
            f"{name} {kind}=False",
            lambda: (
                (c := self.condition("modelversions", name, kind)).get("status") == "False" and c
            ),
            timeout=120,
            explain=lambda: self.explain(model),
        )

    def pods(self, model: str) -> list[Any]:
        selector = f"ciclo.dev/model={model}"
        listed = self.cluster.core.list_namespaced_pod(self.ns, label_selector=selector).items
        return [p for p in listed if p.metadata.deletion_timestamp is None]

    def explain(self, model: str) -> str:
        model_status = self.get("models", model).get("status", {})
        pods = [(p.metadata.name, p.status.to_dict()) for p in self.pods(model)]
        return f"model status {json.dumps(model_status, default=str)}; pods {pods}"


@pytest.fixture(scope="module")
def models(cluster: Cluster, namespace: str) -> Models:
    return Models(cluster, namespace)


@dataclass
class Served:
    pod: Any
    seconds: float


@pytest.fixture(scope="module")
def iris(models: Models, artifact: Artifact) -> Served:
    """The Model `iris`, Ready on the real node; how long from create to Ready."""
    start = time.monotonic()
    models.serve("iris", artifact.uri, artifact.sha256)
    wait_for(
        "iris Ready",
        lambda: models.condition("models", "iris", "Ready").get("status") == "True",
        timeout=180,
        explain=lambda: models.explain("iris"),
    )
    took = time.monotonic() - start
    print(f"iris: created to Ready on the real node in {took:.1f} s")
    (pod,) = models.pods("iris")
    return Served(pod, took)


def infer(url: str) -> list[int]:
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    rows = x[ROWS]
    body = {
        "inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
             "data": rows.tolist()}
        ]
    }  # fmt: skip
    request = urllib.request.Request(
        f"{url}/v2/models/iris/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with DIRECT.open(request, timeout=10) as response:
        assert response.status == 200
        predicted: list[int] = json.load(response)["outputs"][0]["data"]
        return predicted


def test_the_namespace_enforces_the_restricted_profile(cluster: Cluster, namespace: str):
    labels = cluster.core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_model_goes_ready_with_its_pod_on_the_real_node_from_the_ciclo_image(iris: Served):
    pod = iris.pod
    assert pod.spec.node_name == node.NODE
    assert {c.image for c in [*pod.spec.init_containers, *pod.spec.containers]} == {DEFAULT_IMAGE}
    (status,) = pod.status.container_statuses
    assert status.ready and status.image.endswith(DEFAULT_IMAGE.split("/", 1)[1])


def test_inference_through_the_pod_ip_and_the_services_cluster_ip(
    iris: Served, models: Models, cluster: Cluster, artifact: Artifact
):
    assert infer(f"http://{iris.pod.status.pod_ip}:8080") == artifact.expected
    service = cluster.core.read_namespaced_service("iris", models.ns)
    url = f"http://{service.spec.cluster_ip}:80"

    def answers() -> list[int] | None:
        with contextlib.suppress(OSError):
            return infer(url)
        return None

    assert wait_for(f"the ClusterIP {url} to answer", answers, timeout=30) == artifact.expected


def test_the_server_runs_as_65532_on_a_read_only_root(iris: Served, models: Models):
    script = (
        "import os\n"
        "print(os.getuid())\n"
        "try:\n    open('/probe', 'w')\n"
        "except OSError as e:\n    print(type(e).__name__, e.errno)\n"
        "else:\n    print('written')\n"
    )
    out = models.cluster.kubectl(
        "exec", "-n", models.ns, iris.pod.metadata.name, "-c", "serve", "--",
        "python", "-c", script,
    )  # fmt: skip
    uid, written = out.strip().splitlines()
    assert uid == "65532"
    assert written == "OSError 30", written  # EROFS


def test_a_wrong_sha256_fails_the_fetch_and_the_version_says_so(models: Models, artifact: Artifact):
    models.serve("wrong", artifact.uri, "0" * 64)
    validated = models.failed("wrong", "Validated")
    print(f"wrong-v1 Validated: {validated['message']}")
    assert validated["reason"] == "FetchFailed"
    # `ciclo fetch`'s own line, through the kubelet (its Deployment is at zero since)
    assert "sha256 mismatch" in validated["message"], validated


def test_a_memory_limit_too_small_is_oomkilled_and_the_version_says_so(
    models: Models, artifact: Artifact
):
    models.serve("tiny", artifact.uri, artifact.sha256, resources={"limits": {"memory": "40Mi"}})
    available = models.failed("tiny", "Available")
    print(f"tiny-v1 Available: {available['message']}")
    assert available["reason"] == "CrashLoopBackOff"
    # "container serve crash-looping (exit code 137): OOMKilled", from the pod's last state
    # (the failed version's Deployment is scaled to zero since: nothing else serves)
    assert "OOMKilled" in available["message"], available


def container_pids(container_id: str) -> set[int]:
    """The container's processes, from its cgroup (kubelet's cgroupfs layout)."""
    cid = container_id.split("://", 1)[1]
    for procs in Path("/sys/fs/cgroup").glob(f"*/kubepods/**/{cid}/cgroup.procs"):
        return {int(p) for p in procs.read_text().split()}
    return set()


def test_a_frozen_server_fails_its_liveness_probe_and_is_restarted(iris: Served, models: Models):
    (pod,) = models.pods("iris")
    (status,) = pod.status.container_statuses
    restarts = status.restart_count
    pids = container_pids(status.container_id)
    assert pids, f"no cgroup for {status.container_id}"
    start = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)

    def restarted() -> bool:
        (now,) = models.cluster.core.read_namespaced_pod(
            pod.metadata.name, models.ns
        ).status.container_statuses
        return bool(now.restart_count > restarts)

    try:
        wait_for("the serve container restarted", restarted, timeout=150)
    finally:
        for pid in pids:  # gone when killed; a no-op then
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    print(f"frozen to restarted: {time.monotonic() - start:.1f} s")
    events = models.cluster.core.list_namespaced_event(
        models.ns, field_selector=f"involvedObject.name={pod.metadata.name}"
    ).items
    assert any("Liveness probe failed" in (e.message or "") for e in events)
    wait_for(
        "iris Ready again",
        lambda: models.condition("models", "iris", "Ready").get("status") == "True",
        timeout=60,
    )
