"""The acceptance of the monitoring loop, all real: two scikit-learn versions served by
`ciclo serve` on the real node, Prometheus discovering and scraping them through the
API server, the operator evaluating a MonitorPolicy, and a load generator sending requests
through the Service's endpoints and feedback with true labels.

v2 gets 40% wrong labels -> rolled back to v1; one feature shifts -> the drift rule
alerts, nothing rolls back; Prometheus stops -> NoData, nothing rolls back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from tests.integration.prometheus_process import Prometheus
from tests.integration.realnode import ON_REAL_NODE, ArtifactServer
from tests.integration.waiting import wait_for, wait_turns

import kubernetes
from localcluster import prometheus as local_prometheus

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "ciclo" / "dashboards" / "ciclo.json"
# The session operator's metrics (CICLO_METRICS_PORT in tests/conftest.py).
OPERATOR_METRICS = "127.0.0.1:18000"

G, V = "ciclo.dev", "v1alpha1"
X, Y = load_iris(return_X_y=True)
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def register(
    custom: Any, ns: str, version: str, model: Any, artifacts: ArtifactServer, profile: Path
) -> None:
    artifact = artifacts.root / f"{ns}-iris-{version}.joblib"
    joblib.dump(model, artifact)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    accuracy = float((model.predict(X) == Y).mean())
    custom.create_namespaced_custom_object(
        G,
        V,
        ns,
        "modelversions",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "ModelVersion",
            "metadata": {"name": f"iris-{version}"},
            "spec": {
                "model": "iris",
                "version": version,
                "metrics": {"accuracy": accuracy},
                "artifact": {
                    "uri": artifacts.uri(artifact.name),
                    "format": "sklearn",
                    "sha256": digest,
                },
                "baseline": {
                    "uri": artifacts.publish(profile),
                    "sha256": hashlib.sha256(profile.read_bytes()).hexdigest(),
                },
            },
        },
    )


class Load:
    """Requests of 10 rows each through the Service's ready endpoint, each followed by
    feedback with the rows' labels (a share of them made wrong on demand)."""

    def __init__(self, discovery: Any, ns: str) -> None:
        self.discovery, self.ns = discovery, ns
        self.wrong = 0.0
        self.shift = 0.0
        self.rng = np.random.default_rng(1)
        self.stopping = threading.Event()
        self.sent = 0
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
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                address = self.endpoint()
                deadline = time.monotonic() + 1.0  # re-read the endpoints every second
                while address and time.monotonic() < deadline and not self.stopping.is_set():
                    self.send(client, address)
                    time.sleep(0.05)
                if not address:
                    time.sleep(0.2)

    def send(self, client: httpx.Client, url: str) -> None:
        rows = self.rng.integers(0, len(X), size=10)
        x = X[rows].copy()
        x[:, 1] += self.shift
        labels = Y[rows].copy()
        flip = self.rng.random(10) < self.wrong
        labels[flip] = (labels[flip] + 1) % 3
        request_id = f"r{self.sent}"
        body = {
            "id": request_id,
            "inputs": [
                {"name": "input-0", "shape": [10, 4], "datatype": "FP64", "data": x.tolist()}
            ],
        }
        try:
            answer = client.post(f"{url}/v2/models/iris/infer", json=body)
            if answer.status_code == 200:
                client.post(
                    f"{url}/v2/models/iris/feedback",
                    json={"id": request_id, "labels": labels.tolist()},
                )
        except httpx.HTTPError:
            return  # a pod going away mid-request: the next round reads the endpoints again
        self.sent += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def dashboard_gaps(url: str, namespace: str) -> list[str]:
    """The Grafana dashboard's panels whose PromQL (with Grafana's variables filled in)
    returns nothing from this Prometheus; a query it cannot run fails the test."""
    variables = {
        "$namespace": namespace,
        "$model": "iris",
        "$__rate_interval": "10s",
        "$__range": "10m",
    }
    gaps = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found = []
        for target in panel.get("targets", []):
            query = target["expr"]
            for name, value in variables.items():
                query = query.replace(name, value)
            answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
            assert answer["status"] == "success", (panel["title"], query, answer)
            found.append(bool(answer["data"]["result"]))
        if found and not any(found):
            gaps.append(panel["title"])
    return gaps


@pytest.fixture
def prom(kubeconfig: Path, tmp_path: Path) -> Iterator[Prometheus]:
    config = local_prometheus.config(kubeconfig, "1s")
    # The operator's own metrics too, as the chart's ServiceMonitor has them scraped.
    scrape_configs: list[Any] = config["scrape_configs"]  # type: ignore[assignment]
    scrape_configs.append(
        {
            "job_name": "ciclo-operator",
            "honor_labels": True,
            "static_configs": [{"targets": [OPERATOR_METRICS]}],
        }
    )
    p = Prometheus(tmp_path / "prometheus", config)
    p.start()
    yield p
    p.stop()


def test_the_monitoring_loop_end_to_end(
    custom: Any,
    core: Any,
    api: Any,
    namespace: str,
    operator: Any,
    prom: Prometheus,
    tmp_path: Path,
    artifacts: ArtifactServer,
) -> None:
    ns = namespace
    # v1 decides on the petals only, so a shift of sepal_width moves its inputs, not its answers
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, Y)
    tree_file = tmp_path / "tree.joblib"
    joblib.dump(tree, tree_file)
    data = tmp_path / "train.csv"
    data.write_text(
        ",".join([*NAMES, "species"])
        + "\n"
        + "".join(",".join(map(str, [*r, y])) + "\n" for r, y in zip(X, Y, strict=True))
    )
    profile = tmp_path / "profile.json"
    # With v1's predictions and probabilities: prediction drift and CBPE have a baseline too.
    made = subprocess.run(
        [
            *(sys.executable, "-m", "ciclo.cli.main", "profile", str(data), "--out", str(profile)),
            *("--target", "species", "--model", str(tree_file), "--format", "sklearn"),
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    register(custom, ns, "v1", tree, artifacts, profile)
    register(custom, ns, "v2", LogisticRegression(max_iter=500).fit(X, Y), artifacts, profile)
    model = {
        "apiVersion": f"{G}/{V}",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"version": "v1", "serving": {"replicas": 1, **ON_REAL_NODE}},
    }
    custom.create_namespaced_custom_object(G, V, ns, "models", model)

    def get(plural: str, name: str = "iris") -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, plural, name)
        return obj

    def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
        return next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {}
        )

    def rule(name: str) -> dict[str, Any]:
        rules = get("monitorpolicies").get("status", {}).get("rules", [])
        return next((r for r in rules if r["name"] == name), {})

    def selector() -> str | None:
        return core.read_namespaced_service("iris", ns).spec.selector.get("ciclo.dev/version")

    def serving(version: str) -> bool:
        m = get("models")
        return (
            m.get("status", {}).get("servingVersion") == version
            and condition(m, "Ready").get("status") == "True"
        )

    wait_for("v1 serving on the real node", lambda: serving("v1"), 120)
    load = Load(kubernetes.client.DiscoveryV1Api(api), ns)
    try:
        custom.create_namespaced_custom_object(
            G,
            V,
            ns,
            "monitorpolicies",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "MonitorPolicy",
                "metadata": {"name": "iris"},
                "spec": {
                    "modelRef": {"name": "iris"},
                    "interval": "2s",
                    "source": {"type": "prometheus", "prometheus": {"url": prom.url}},
                    "rules": [
                        {
                            "name": "accuracy",
                            "metric": "accuracy",
                            "window": "15s",
                            "min": 0.85,
                            "minSamples": 50,
                            "failureThreshold": 3,
                            "action": "rollback",
                        },
                        {
                            "name": "input-drift",
                            "metric": "feature_drift_psi",
                            "window": "15s",
                            "max": 0.2,
                            "minSamples": 200,
                            "failureThreshold": 2,
                            "action": "alert",
                        },
                    ],
                },
            },
        )
        wait_for(
            "v1 judged Ok",
            lambda: (
                rule("accuracy").get("state") == "Ok" and rule("input-drift").get("state") == "Ok"
            ),
            60,
        )

        # v2 serves, and its labels turn 40% wrong
        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v2"}}
        )
        wait_for("v2 serving", lambda: serving("v2") and selector() == "v2", 120)
        wait_for(
            "v2 judged Ok",
            lambda: (
                rule("accuracy").get("version") == "v2" and rule("accuracy").get("state") == "Ok"
            ),
            60,
        )
        load.wrong = 0.4
        wait_for("the Service back on v1", lambda: selector() == "v1", 90)
        wait_for("status: v1 serves", lambda: get("models")["status"]["servingVersion"] == "v1", 20)
        m = get("models")
        assert m["spec"]["version"] == "v2"
        wait_for(
            "Model Degraded",
            lambda: condition(get("models"), "Degraded").get("reason") == "RolledBack",
            20,
        )
        wait_for(
            "v2 RolledBack",
            lambda: get("modelversions", "iris-v2")["status"].get("phase") == "RolledBack",
            20,
        )
        message = condition(get("modelversions", "iris-v2"), "Serving")["message"]
        assert "rule accuracy" in message and ">= 0.85" in message, message
        actions = get("monitorpolicies")["status"]["actions"]
        assert [(a["rule"], a["action"], a["version"]) for a in actions] == [
            ("accuracy", "rollback", "v2")
        ]
        assert actions[0]["value"] < 0.85
        events = [e for e in core.list_namespaced_event(ns).items if e.reason == "RolledBack"]
        assert {e.involved_object.kind for e in events} >= {"MonitorPolicy", "Model"}

        # the good labels again, on v1; then one feature shifts: an alert, nothing more
        load.wrong = 0.0
        wait_for(
            "v1 judged Ok again",
            lambda: (
                rule("accuracy").get("version") == "v1" and rule("accuracy").get("state") == "Ok"
            ),
            60,
        )
        load.shift = 1.5
        wait_for(
            "the drift alert",
            lambda: condition(get("monitorpolicies"), "Alerting").get("status") == "True",
            60,
        )
        wait_for(
            "the drift alert on the Model",
            lambda: condition(get("models"), "Alerting").get("status") == "True",
            20,
        )
        assert rule("input-drift")["value"] > 0.2
        assert rule("accuracy")["state"] == "Ok"
        assert [e for e in core.list_namespaced_event(ns).items if e.reason == "RuleBreached"]
        assert get("models")["status"]["servingVersion"] == "v1"
        assert [a["action"] for a in get("monitorpolicies")["status"]["actions"]] == [
            "rollback",
            "alert",
        ]

        # Every panel of the Grafana dashboard shows data for this Model.
        gaps: list[str] = []

        def complete() -> bool:
            gaps[:] = dashboard_gaps(prom.url, ns)
            return not gaps

        try:
            wait_for("every dashboard panel to return data", complete, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}; without data: {gaps}") from None

        # Prometheus stops: NoData, and however bad the labels, nothing rolls back
        prom.stop()
        load.wrong = 0.9
        wait_for(
            "NoData",
            lambda: condition(get("monitorpolicies"), "NoData").get("status") == "True",
            30,
        )
        last = lambda: get("monitorpolicies")["status"].get("lastEvaluationTime")  # noqa: E731
        wait_turns("evaluations", last, 4, 60)  # more than failureThreshold
        assert rule("accuracy")["state"] == "Error"
        assert get("models")["status"]["servingVersion"] == "v1"
        assert len(get("monitorpolicies")["status"]["actions"]) == 2
    finally:
        load.stop()
    assert load.sent > 100
