"""The operator against the real API server: register, serve, switch, roll back, retire, delete."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from realnode import ON_REAL_NODE
from waiting import wait_for, wait_turns

pytestmark = pytest.mark.integration

G, V = "ciclo.dev", "v1alpha1"


def version_manifest(version: str, model: str = "iris") -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-{version}"},
        "spec": {
            "model": model,
            "version": version,
            "metrics": {"accuracy": 0.9},
            "artifact": {
                "uri": f"file:///models/{version}.joblib",
                "format": "sklearn",
                "sha256": version[-1] * 64 if version[-1] in "abcdef" else "0" * 64,
            },
        },
    }


def model_manifest(version: str, **serving: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"version": version, "serving": {"replicas": 2, **serving}},
    }


class World:
    """What the cluster holds, read fresh each time."""

    def __init__(self, custom: Any, core: Any, apps: Any, namespace: str) -> None:
        self.custom, self.core, self.apps, self.ns = custom, core, apps, namespace

    def model(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(G, V, self.ns, "models", "iris")

    def version(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(G, V, self.ns, "modelversions", name)

    def phase(self, name: str) -> str | None:
        return self.version(name).get("status", {}).get("phase")

    def condition(self, kind: str) -> dict[str, Any]:
        return next(
            (c for c in self.model().get("status", {}).get("conditions", []) if c["type"] == kind),
            {},
        )

    def selector_version(self) -> str | None:
        try:
            return self.core.read_namespaced_service("iris", self.ns).spec.selector.get(
                "ciclo.dev/version"
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def deployments(self) -> dict[str, int]:
        return {
            d.metadata.name: d.spec.replicas
            for d in self.apps.list_namespaced_deployment(self.ns).items
        }

    def events(self, reason: str, kind: str = "Model") -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(self.ns).items
            if e.reason == reason and e.involved_object.kind == kind
        ]

    def snapshot(self) -> tuple[Any, ...]:
        """What a no-op must leave alone: the Model's spec and status, its children's versions."""
        model = self.model()
        deployments = {
            d.metadata.name: d.metadata.resource_version
            for d in self.apps.list_namespaced_deployment(self.ns).items
        }
        service = self.core.read_namespaced_service("iris", self.ns).metadata.resource_version
        return model["metadata"]["generation"], model["status"], deployments, service

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        plural = {"Model": "models", "ModelVersion": "modelversions"}[manifest["kind"]]
        return self.custom.create_namespaced_custom_object(G, V, self.ns, plural, manifest)

    def set_spec(self, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(G, V, self.ns, "models", "iris", {"spec": spec})


@pytest.fixture
def world(custom, core, apps, namespace, operator) -> World:
    return World(custom, core, apps, namespace)


def ciclo(*args: str, kubeconfig: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ciclo.cli.main", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def serve_v1_then_v2(world: World) -> None:
    world.create(version_manifest("v1"))
    world.create(version_manifest("v2"))
    world.create(model_manifest("v1"))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")
    assert world.selector_version() == "v1"
    world.set_spec(version="v2")
    wait_for(
        "v2 serving and Ready",
        lambda: (
            world.model()["status"].get("servingVersion") == "v2"
            and world.condition("Ready").get("status") == "True"
        ),
    )


def test_lifecycle_register_serve_switch_rollback_reapply_retire_delete(
    world, kubeconfig, paths, operator
):
    serve_v1_then_v2(world)
    assert world.selector_version() == "v2"
    assert world.deployments() == {"iris-v1": 1, "iris-v2": 2}, "v1 stays warm at reduced size"
    assert world.phase("iris-v1") == "Standby" and world.phase("iris-v2") == "Serving"
    model = world.model()
    assert model["status"]["observedGeneration"] == model["metadata"]["generation"]
    assert world.condition("Ready")["observedGeneration"] == model["metadata"]["generation"]

    # Roll back by hand: the Service selects v1 again within a second; the spec is untouched.
    start = time.monotonic()
    result = ciclo("rollback", "iris", "-n", world.ns, kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stderr
    wait_for("the Service to select v1", lambda: world.selector_version() == "v1", timeout=5)
    # Timed, not asserted: speed belongs to docs/benchmarks.md (two loaded cores vary).
    print(f"selector switch: {time.monotonic() - start:.2f} s (CLI start-up included)")
    # The Model's status is written after its versions' (the reconcile's last write).
    wait_for(
        "v2 RolledBack and the Model serving v1",
        lambda: (
            world.phase("iris-v2") == "RolledBack"
            and world.model()["status"].get("servingVersion") == "v1"
        ),
    )
    model = world.model()
    assert model["spec"]["version"] == "v2", "the operator never rewrites spec"
    assert (
        world.condition("Degraded")["status"] == "True"
        and world.condition("Degraded")["reason"] == "RolledBack"
    )
    assert world.version("iris-v2")["status"]["rolledBack"]["reason"] == "ManualRollback"
    assert len(world.events("RolledBack")) == 1

    # A second rollback has nowhere good to go, and says so.
    refused = ciclo("rollback", "iris", "-n", world.ns, kubeconfig=kubeconfig)
    assert refused.returncode == 1 and "no good version" in refused.stderr

    # Re-applying the same spec changes nothing (kubectl's own last-applied annotation aside):
    # the Model is reconciled after the apply (the operator's counter), and all is as before.
    before = world.snapshot()
    launcher_apply(paths, kubeconfig, world.ns, model_manifest("v2"))
    wait_turns("reconciles", operator.reconciles, 1)
    assert world.snapshot() == before

    # Retire: everything at zero, no Service, every version kept.
    world.set_spec(retired=True)
    wait_for("no Service", lambda: world.selector_version() is None)
    wait_for("all Deployments at zero", lambda: all(r == 0 for r in world.deployments().values()))
    wait_for("v1 Retired", lambda: world.phase("iris-v1") == "Retired")
    # The Model's status is the reconcile's last write, after its versions'.
    wait_for("Ready=False Retired", lambda: world.condition("Ready").get("reason") == "Retired")

    # Delete: what the Model created goes; the registry stays.
    world.custom.delete_namespaced_custom_object(G, V, world.ns, "models", "iris")
    wait_for("the Deployments to be garbage-collected", lambda: not world.deployments(), timeout=60)
    names = {
        v["metadata"]["name"]
        for v in world.custom.list_namespaced_custom_object(G, V, world.ns, "modelversions")[
            "items"
        ]
    }
    assert names == {"iris-v1", "iris-v2"}


def launcher_apply(paths: Any, kubeconfig: Any, namespace: str, manifest: dict[str, Any]) -> None:
    import json

    from localcluster import launcher

    launcher.kubectl(
        paths, kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest)
    )


def test_a_serving_version_cannot_be_deleted_until_the_model_moves_on(world):
    world.create(version_manifest("v1"))
    world.create(version_manifest("v2"))
    world.create(model_manifest("v1"))
    wait_for("v1 serving", lambda: world.phase("iris-v1") == "Serving")
    world.custom.delete_namespaced_custom_object(G, V, world.ns, "modelversions", "iris-v1")

    def blocked() -> bool:
        conditions = world.version("iris-v1").get("status", {}).get("conditions", [])
        return any(c["type"] == "DeletionBlocked" and c["status"] == "True" for c in conditions)

    wait_for("a DeletionBlocked condition", blocked)
    assert world.selector_version() == "v1", "it still serves"
    world.set_spec(version="v2")

    def gone() -> bool:
        try:
            world.version("iris-v1")
        except ApiException as e:
            return e.status == 404
        return False

    wait_for("v1 to be deleted once v2 serves", gone)


def test_a_version_without_its_model_is_registered_and_says_the_model_is_missing(world):
    world.create(version_manifest("v1", model="nomodel"))

    def found_condition() -> dict[str, Any]:
        status = world.version("nomodel-v1").get("status", {})
        return next((c for c in status.get("conditions", []) if c["type"] == "ModelFound"), {})

    condition = wait_for("a ModelFound condition", found_condition)
    assert condition["status"] == "False" and condition["reason"] == "ModelNotFound"
    assert world.phase("nomodel-v1") == "Registered"
    assert world.version("nomodel-v1")["metadata"]["labels"]["ciclo.dev/model"] == "nomodel"


def test_restart_mid_switch_converges_without_duplicate_events(world, operator):
    world.create(version_manifest("v1"))
    world.create(version_manifest("v2"))
    world.create(model_manifest("v1"))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")
    operator.kill()
    try:
        world.set_spec(version="v2")
    finally:
        operator.start()
    wait_for("v2 serving", lambda: world.model()["status"].get("servingVersion") == "v2")
    wait_for("v2 Ready", lambda: world.condition("Ready").get("status") == "True")
    operator.kill()  # and once more, after convergence: a restart must change nothing
    operator.start()
    # The restarted operator reconciles every Model it finds (its counter starts at 0).
    models = len(world.custom.list_cluster_custom_object(G, V, "models")["items"])
    wait_for("a reconcile of every Model", lambda: operator.reconciles() >= models)
    assert world.model()["status"]["servingVersion"] == "v2"
    assert world.selector_version() == "v2"
    messages = sorted(e.message for e in world.events("Serving"))
    everything = [
        (e.involved_object.kind, e.reason, e.message)
        for e in world.core.list_namespaced_event(world.ns).items
    ]
    assert messages == ["v1 serves", "v2 serves (was v1)"], everything


def test_serving_pods_are_admitted_under_pod_security_restricted(world, core):
    core.patch_namespace(
        world.ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    # The admission plugin is active: a privileged pod is refused in this namespace.
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(
            world.ns,
            {
                "metadata": {"name": "bad"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "x", "securityContext": {"privileged": True}}
                    ]
                },
            },
        )
    assert "violates PodSecurity" in refused.value.body
    world.create(version_manifest("v1"))
    world.create(model_manifest("v1"))
    pods = wait_for(
        "serving pods",
        lambda: core.list_namespaced_pod(world.ns, label_selector="ciclo.dev/model=iris").items,
    )
    assert pods[0].spec.security_context.run_as_non_root is True
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")


def test_register_computes_the_digest_and_status_shows_the_model(world, kubeconfig, tmp_path):
    import hashlib

    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"not really a model, but bytes with a digest")

    def register(*extra: str) -> subprocess.CompletedProcess[str]:
        return ciclo(
            "register",
            str(artifact),
            "--model",
            "iris",
            "--version",
            "v1",
            "--format",
            "sklearn",
            "-n",
            world.ns,
            *extra,
            kubeconfig=kubeconfig,
        )

    baseline = tmp_path / "profile.json"
    baseline.write_text("{}")
    result = register("--metric", "accuracy=0.93", "--baseline", str(baseline))
    assert result.returncode == 0, result.stderr
    spec = world.version("iris-v1")["spec"]
    assert spec["baseline"] == {
        "uri": baseline.as_uri(),
        "sha256": hashlib.sha256(b"{}").hexdigest(),
    }
    assert spec["artifact"] == {
        "uri": artifact.as_uri(),
        "format": "sklearn",
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
    }
    assert spec["metrics"] == {"accuracy": 0.93}

    again = register()
    assert again.returncode == 1 and "already exists" in again.stderr

    world.create(model_manifest("v1"))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")
    table = ciclo("status", "-n", world.ns, kubeconfig=kubeconfig)
    assert table.returncode == 0
    header, row = table.stdout.splitlines()[:2]
    assert header.split()[:6] == ["NAMESPACE", "MODEL", "DESIRED", "SERVING", "READY", "HEALTH"]
    assert row.split()[:6] == [world.ns, "iris", "v1", "v1", "True", "-"]

    metrics = urllib.request.urlopen("http://127.0.0.1:18000/metrics", timeout=5).read().decode()
    reconciles = [
        line
        for line in metrics.splitlines()
        if line.startswith('ciclo_reconciles_total{kind="Model",result="ok"}')
    ]
    assert reconciles and float(reconciles[0].split()[-1]) > 0
    assert "ciclo_reconcile_duration_seconds_bucket" in metrics
    assert 'ciclo_api_requests_total{code="201",resource="events",verb="POST"}' in metrics


def test_a_wrong_digest_fails_the_fetch_step_and_the_version_never_serves(
    world, tmp_path, artifacts
):
    """Real parts: the Deployment's init step runs `ciclo fetch` on the real node."""
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"the bytes that were registered are not these")
    manifest = version_manifest("v1")
    # sha256 stays "0" * 64: wrong
    manifest["spec"]["artifact"]["uri"] = artifacts.publish(artifact)
    world.create(manifest)
    world.create(model_manifest("v1", replicas=1, **ON_REAL_NODE))

    def validated() -> dict[str, Any]:
        conditions = world.version("iris-v1").get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Validated"), {})

    condition = wait_for(
        "the Validated condition",
        lambda: (c := validated()).get("status") != "Unknown" and c,
        timeout=60,
    )
    assert condition["status"] == "False" and condition["reason"] == "FetchFailed"
    assert "sha256 mismatch" in condition["message"], condition
    wait_for("phase Failed", lambda: world.phase("iris-v1") == "Failed")
    assert world.model()["status"].get("servingVersion") is None
    assert world.condition("Degraded")["reason"] == "VersionInvalid"
    wait_for("the failing Deployment to be removed", lambda: not world.deployments())


def test_a_model_really_serves_on_the_real_node(world, api, tmp_path, kubeconfig, artifacts):
    """All real: ciclo fetch checks the digests of the model and its baseline profile;
    ciclo serve answers at the Service's endpoints, REST (JSON and binary) and gRPC, and
    measures drift against the baseline."""
    import hashlib

    import joblib
    import numpy as np
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import kubernetes

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    artifact = tmp_path / "iris.joblib"
    joblib.dump(model, artifact)
    manifest = version_manifest("v1")
    manifest["spec"]["artifact"].update(
        uri=artifacts.publish(artifact), sha256=hashlib.sha256(artifact.read_bytes()).hexdigest()
    )
    data = tmp_path / "train.csv"
    data.write_text("a,b,c,d\n" + "".join(",".join(map(str, row)) + "\n" for row in x))
    profile = tmp_path / "profile.json"
    made = ciclo("profile", str(data), "--out", str(profile), kubeconfig=kubeconfig)
    assert made.returncode == 0, made.stderr
    manifest["spec"]["baseline"] = {
        "uri": artifacts.publish(profile),
        "sha256": hashlib.sha256(profile.read_bytes()).hexdigest(),
    }
    world.create(manifest)
    world.create(model_manifest("v1", replicas=1, **ON_REAL_NODE))
    wait_for(
        "v1 Ready on the real node",
        lambda: world.condition("Ready").get("status") == "True",
        timeout=90,
    )

    def validated() -> list[dict[str, Any]]:
        conditions = world.version("iris-v1")["status"]["conditions"]
        return [c for c in conditions if c["type"] == "Validated" and c["status"] != "Unknown"]

    judged = wait_for("v1 Validated", validated, timeout=30)
    assert judged[0]["status"] == "True", judged

    discovery = kubernetes.client.DiscoveryV1Api(api)

    def endpoint(name: str) -> str | None:
        slices = discovery.list_namespaced_endpoint_slice(
            world.ns, label_selector="kubernetes.io/service-name=iris"
        ).items
        ready = [
            a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses
        ]
        port = next((p.port for s in slices for p in s.ports or [] if p.name == name), None)
        return f"{ready[0]}:{port}" if ready and port else None

    address = wait_for("a ready endpoint for the Service", lambda: endpoint("http"), timeout=30)
    client = triton.InferenceServerClient(url=address)
    tensor = triton.InferInput("input-0", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x, binary_data=False)
    result = client.infer(
        "iris",
        [tensor],
        model_version="v1",
        outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(x))
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'ciclo_drift_window_samples{model="iris",version="v1"} 150.0' in metrics
    # tritonclient's defaults: binary inputs and outputs over REST; then gRPC on its port
    tensor.set_data_from_numpy(x)
    result = client.infer("iris", [tensor])
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(x))
    grpc_client = triton_grpc.InferenceServerClient(endpoint("grpc"))
    assert grpc_client.is_model_ready("iris", "v1")
    grpc_tensor = triton_grpc.InferInput("input-0", list(x.shape), "FP64")
    grpc_tensor.set_data_from_numpy(x)
    result = grpc_client.infer("iris", [grpc_tensor])
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(x))
    assert 'ciclo_drift_psi{feature="c",model="iris",version="v1"} 0.0' in metrics


def test_an_operator_limited_to_namespaces_leaves_the_others_alone(
    custom,
    core,
    apps,
    namespace,
    kubeconfig,
    without_session_operator,
    tmp_path,
    deleted_namespaces,
):
    """`ciclo run --namespace A` (the chart's watchNamespaces) reconciles A, and its resync
    does not list or touch Models anywhere else."""
    from conftest import Operator

    other = f"{namespace[:50]}-other"
    core.create_namespace({"metadata": {"name": other}})
    try:
        inside, outside = World(custom, core, apps, namespace), World(custom, core, apps, other)
        for world in (inside, outside):
            world.create(version_manifest("v1"))
            world.create(model_manifest("v1"))
        limited = Operator(kubeconfig, tmp_path / "limited.log", ("--namespace", namespace), 1)
        limited.start()
        try:
            wait_for(
                "the watched Model Ready", lambda: inside.condition("Ready").get("status") == "True"
            )
            time.sleep(3)  # three resyncs
            assert "status" not in outside.model(), "a Model outside the watched namespace"
            assert limited.running()
        finally:
            limited.stop()
    finally:
        core.delete_namespace(other)
        deleted_namespaces.append(other)
