"""The way in, all real: evaluation Jobs run `ciclo evaluate` from the ciclo image on the
real node, serving pods run `ciclo serve` there, the API server's ValidatingAdmissionPolicy
(from the chart) signs Reviews, and a client counts which version answers each request
through the Service's endpoints.

v1 serves (its first evaluation has no champion); v3, worse, fails its gate and never gets
a request; v4, as good, waits for approval, then serves once a reviewer (a second, real
user: a ServiceAccount's token) runs `ciclo approve`; v5 is rejected for good."""

from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from tests.integration.realnode import ON_REAL_NODE, ArtifactServer
from tests.integration.waiting import wait_for

import kubernetes
from localcluster import launcher

pytestmark = pytest.mark.e2e

G, V = "ciclo.dev", "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]
X, Y = load_iris(return_X_y=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Counter:
    """One-row requests through the Service's ready endpoint; answers counted by the
    model_version that gave them."""

    def __init__(self, discovery: Any, ns: str) -> None:
        self.discovery, self.ns = discovery, ns
        self.by_version: collections.Counter[str] = collections.Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def endpoint(self) -> str | None:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.ns, label_selector="kubernetes.io/service-name=iris"
        ).items
        ready = [
            a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses
        ]
        port = next((p.port for s in slices for p in s.ports or [] if p.name == "http"), None)
        return f"http://{ready[0]}:{port}" if ready and port else None

    def run(self) -> None:
        body = {
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": X[0].tolist()}]
        }
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                address = self.endpoint()
                deadline = time.monotonic() + 1.0
                while address and time.monotonic() < deadline and not self.stopping.is_set():
                    try:
                        answer = client.post(f"{address}/v2/models/iris/infer", json=body)
                        if answer.status_code == 200:
                            self.by_version[answer.json()["model_version"]] += 1
                    except httpx.HTTPError:
                        break
                    time.sleep(0.05)
                if not address:
                    time.sleep(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def reviewer_kubeconfig(
    admin: Path, core: Any, rbac: Any, ns: str, name: str, tmp_path: Path
) -> tuple[Path, str]:
    """A second real user: a ServiceAccount bound to the chart's reviewer ClusterRole in
    the namespace, and a kubeconfig with its token."""
    core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "ciclo-reviewer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    )
    token = core.create_namespaced_service_account_token(
        name, ns, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    config = yaml.safe_load(admin.read_text())
    context = config["contexts"][0]["context"]
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"] = [{"name": name, "context": {"cluster": context["cluster"], "user": name}}]
    config["current-context"] = name
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, f"system:serviceaccount:{ns}:{name}"


def ciclo(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ciclo.cli.main", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def review_policy(paths: Any, kubeconfig: Path, crds: None) -> Any:
    """The chart's reviewer ClusterRole and ValidatingAdmissionPolicy, as it renders them."""
    helm = paths.cache / "bin" / "helm"
    rendered = subprocess.run(
        [str(helm), "template", "ciclo", str(ROOT / "charts" / "ciclo"),
         "--namespace", "ciclo-system", "--show-only", "templates/review.yaml"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    manifest = Path(kubeconfig).parent / "review-policy.yaml"
    manifest.write_text(rendered)
    launcher.kubectl(paths, kubeconfig, "apply", "--server-side", "-f", str(manifest))
    yield
    launcher.kubectl(paths, kubeconfig, "delete", "--ignore-not-found", "-f", str(manifest))


@pytest.mark.timeout(900)
def test_the_way_in_gates_and_reviews_before_any_traffic(
    custom: Any,
    core: Any,
    api: Any,
    kubeconfig: Path,
    namespace: str,
    operator: Any,
    review_policy: Any,
    tmp_path: Path,
    artifacts: ArtifactServer,
) -> None:
    ns = namespace
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    data = tmp_path / "eval.csv"
    data.write_text(
        "a,b,c,d,species\n"
        + "".join(",".join(map(str, [*r, y])) + "\n" for r, y in zip(X, Y, strict=True))
    )
    models = {
        "v1": LogisticRegression(max_iter=500).fit(X, Y),
        "v3": DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, Y),  # 0.67
        "v4": LogisticRegression(max_iter=500, C=2.0).fit(X, Y),
        "v5": LogisticRegression(max_iter=500, C=0.5).fit(X, Y),
    }
    for version, model in models.items():
        path = tmp_path / f"iris-{version}.joblib"
        joblib.dump(model, path)
        custom.create_namespaced_custom_object(
            G, V, ns, "modelversions",
            {
                "apiVersion": f"{G}/{V}", "kind": "ModelVersion",
                "metadata": {"name": f"iris-{version}"},
                "spec": {
                    "model": "iris", "version": version, "tags": ["e2e"],
                    "artifact": {"uri": artifacts.publish(path), "format": "sklearn",
                                 "sha256": sha(path)},
                },
            },
        )  # fmt: skip
    promotion = {
        "evaluation": {
            "dataset": {"uri": artifacts.publish(data), "sha256": sha(data), "target": "species"}
        },
        "gates": [
            {"metric": "accuracy", "min": 0.9, "maxDrop": 0.02},
            {"metric": "latency_p99_ms", "max": 1000},
        ],
    }
    created = time.monotonic()
    custom.create_namespaced_custom_object(
        G, V, ns, "models",
        {
            "apiVersion": f"{G}/{V}", "kind": "Model", "metadata": {"name": "iris"},
            "spec": {"version": "v1", "serving": {"replicas": 1, **ON_REAL_NODE},
                     "promotion": promotion},
        },
    )  # fmt: skip

    def model() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, "models", "iris")
        return obj

    def version(name: str) -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            G, V, ns, "modelversions", f"iris-{name}"
        )
        return obj

    def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
        found = obj.get("status", {}).get("conditions", [])
        return next((c for c in found if c["type"] == kind), {})

    def set_spec(**spec: Any) -> None:
        custom.patch_namespaced_custom_object(G, V, ns, "models", "iris", {"spec": spec})

    # v1: evaluated alone (no champion), then served.
    wait_for(
        "v1 Validated",
        lambda: condition(version("v1"), "Validated").get("status") == "True",
        timeout=120,
    )
    print(f"v1: ModelVersion created to Validated in {time.monotonic() - created:.1f} s")
    record = version("v1")["status"]["evaluation"]
    assert "champion" not in record and record["rows"] == 150
    assert "no champion to compare with" in condition(version("v1"), "Validated")["message"]
    wait_for("v1 serving", lambda: model()["status"].get("servingVersion") == "v1", timeout=120)
    counter = Counter(kubernetes.client.DiscoveryV1Api(api), ns)
    try:
        wait_for("v1 answering", lambda: counter.by_version["v1"] > 5, timeout=60)

        # v3: worse; fails its gate, never gets a pod or a request; the spec is untouched.
        set_spec(version="v3")
        degraded = wait_for(
            "the Model Degraded by v3's gate",
            lambda: (c := condition(model(), "Degraded")).get("reason") == "GateFailed" and c,
            timeout=120,
        )
        accuracy = {m["metric"]: m for m in version("v3")["status"]["evaluation"]["metrics"]}[
            "accuracy"
        ]
        assert accuracy["champion"] == pytest.approx(
            float((models["v1"].predict(X) == Y).mean()), abs=1e-4
        )
        assert f"candidate {accuracy['candidate']:.4g}" in degraded["message"]
        assert f"champion {accuracy['champion']:.4g}" in degraded["message"]
        assert version("v3")["status"]["phase"] == "Failed"
        assert model()["spec"]["version"] == "v3" and model()["status"]["servingVersion"] == "v1"
        pods = core.list_namespaced_pod(ns, label_selector="ciclo.dev/version=v3").items
        assert pods == [], "v3 never had a serving pod"
        seen = counter.by_version["v1"]
        wait_for("more requests answered", lambda: counter.by_version["v1"] > seen + 20)
        assert counter.by_version["v3"] == 0

        # v4: as good, but a person must approve it first.
        set_spec(version="v4", promotion={**promotion, "requireApproval": True})
        wait_for(
            "v4 AwaitingApproval",
            lambda: version("v4").get("status", {}).get("phase") == "AwaitingApproval",
            timeout=120,
        )
        wait_for(
            "the Model Progressing: AwaitingApproval",
            lambda: condition(model(), "Progressing").get("reason") == "AwaitingApproval",
        )
        # A forged reviewer is refused by the API server itself.
        forged = {
            "apiVersion": f"{G}/{V}", "kind": "Review", "metadata": {"name": "forged"},
            "spec": {"model": "iris", "version": "v4", "decision": "Approve", "user": "alice"},
        }  # fmt: skip
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(G, V, ns, "reviews", forged)
        assert refused.value.status in (403, 422)
        assert "spec.user must be the user who creates the Review" in refused.value.body
        alice, alice_name = reviewer_kubeconfig(kubeconfig, core, rbac, ns, "alice", tmp_path)
        # The reviewer may review, and may not edit the Model.
        as_alice = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(str(alice))
        )
        with pytest.raises(ApiException) as forbidden:
            as_alice.patch_namespaced_custom_object(
                G, V, ns, "models", "iris", {"spec": {"version": "v3"}}
            )
        assert forbidden.value.status == 403
        assert counter.by_version["v4"] == 0
        approved = ciclo(alice, "approve", "iris", "v4", "-n", ns, "--comment", "same as v1")
        assert approved.returncode == 0, approved.stderr
        assert alice_name in approved.stdout
        wait_for("v4 serving", lambda: model()["status"].get("servingVersion") == "v4", timeout=120)
        [review] = version("v4")["status"]["reviews"]
        assert (review["user"], review["decision"], review["comment"]) == (
            alice_name,
            "Approve",
            "same as v1",
        )
        wait_for("v4 answering", lambda: counter.by_version["v4"] > 5, timeout=30)

        # v5: rejected, for good: a later approval does not let it in.
        set_spec(version="v5")
        wait_for(
            "v5 AwaitingApproval",
            lambda: version("v5").get("status", {}).get("phase") == "AwaitingApproval",
            timeout=120,
        )
        rejected = ciclo(alice, "reject", "iris", "v5", "-n", ns, "--comment", "not this one")
        assert rejected.returncode == 0, rejected.stderr
        wait_for(
            "the Model Degraded: v5 Rejected",
            lambda: condition(model(), "Degraded").get("reason") == "Rejected",
            timeout=60,
        )
        assert ciclo(alice, "approve", "iris", "v5", "-n", ns).returncode == 0
        wait_for("both reviews recorded", lambda: len(version("v5")["status"]["reviews"]) == 2)
        assert version("v5")["status"]["phase"] == "Rejected"
        assert condition(model(), "Degraded")["reason"] == "Rejected"
        seen = counter.by_version["v4"]
        wait_for("v4 still answering", lambda: counter.by_version["v4"] > seen + 20)
        assert counter.by_version["v5"] == 0 and counter.by_version["v3"] == 0
        # The evaluation Jobs are gone once recorded.
        jobs = kubernetes.client.BatchV1Api(api).list_namespaced_job(ns).items
        wait_for(
            "no evaluation Jobs left",
            lambda: not kubernetes.client.BatchV1Api(api).list_namespaced_job(ns).items,
        )
        print(f"jobs at the end: {len(jobs)}; answers: {dict(counter.by_version)}")
    finally:
        counter.stop()
