"""The monitoring loop on the local cluster: the operator evaluates a MonitorPolicy against a
real Prometheus (scraping a local exporter of the runtime's metrics) and acts."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server
from prometheus_process import Prometheus, free_port, prometheus, static_config
from test_operator import G, V, World, model_manifest, serve_v1_then_v2, version_manifest
from waiting import wait_for, wait_turns

from ciclo.drift.window import Drift
from ciclo.serving.feedback import Quality
from ciclo.serving.metrics import RuntimeMetrics, Snapshot

pytestmark = pytest.mark.integration

VERSIONS = ("v1", "v2")


class Exporter:
    """The runtime's metric names for v1 and v2, each on its own port, with the accuracy of
    the feedback and the drift we choose; feedback counters tick four times a second."""

    def __init__(self) -> None:
        self.accuracy = dict.fromkeys(VERSIONS, 0.95)
        self.psi = dict.fromkeys(VERSIONS, 0.05)
        self.metrics = {v: RuntimeMetrics("iris", v) for v in VERSIONS}
        self.servers: list[Any] = []
        self.targets: list[str] = []
        for v, m in self.metrics.items():
            m.watch(lambda v=v: self.snapshot(v))
            port = free_port()
            server, _ = start_http_server(port, addr="127.0.0.1", registry=m.registry)
            self.servers.append(server)
            self.targets.append(f"127.0.0.1:{port}")
        self.stopping = threading.Event()
        threading.Thread(target=self.tick, daemon=True).start()

    def snapshot(self, v: str) -> Snapshot:
        a = self.accuracy[v]
        return Snapshot(
            Quality(a, a, a, a, 500), [Drift("petal_length", self.psi[v], 0.1, None)], None, 1000
        )

    def tick(self) -> None:
        while not self.stopping.wait(0.25):
            for v, m in self.metrics.items():
                m.feedback.labels("iris", v, "matched").inc(20)
                m.correct.inc(round(20 * self.accuracy[v]))

    def close(self) -> None:
        self.stopping.set()
        for s in self.servers:
            s.shutdown()


class Webhook:
    """Receives the alert bodies; answers 500 to the first one, to show the retry."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.attempts == 1:
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.close()


@pytest.fixture
def prom(exporter: Exporter, namespace: str, tmp_path: Path) -> Iterator[Prometheus]:
    with prometheus(
        tmp_path / "prom", static_config(exporter.targets, {"namespace": namespace})
    ) as p:
        yield p


@pytest.fixture
def world(custom, core, apps, namespace, operator) -> World:
    return World(custom, core, apps, namespace)


def policy(prom_url: str, **alerting: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "MonitorPolicy",
        "metadata": {"name": "iris"},
        "spec": {
            "modelRef": {"name": "iris"},
            "interval": "2s",
            "source": {"type": "prometheus", "prometheus": {"url": prom_url}},
            "rules": [
                {
                    "name": "accuracy",
                    "metric": "accuracy",
                    "window": "10s",
                    "min": 0.85,
                    "minSamples": 20,
                    "failureThreshold": 3,
                    "action": "rollback",
                },
                {
                    "name": "input-drift",
                    "metric": "feature_drift_psi",
                    "window": "10s",
                    "max": 0.2,
                    "failureThreshold": 2,
                    "action": "alert",
                },
            ],
            "alerting": alerting,
        },
    }


def create_policy(world: World, manifest: dict[str, Any]) -> None:
    world.custom.create_namespaced_custom_object(G, V, world.ns, "monitorpolicies", manifest)


def policy_status(world: World) -> dict[str, Any]:
    obj = world.custom.get_namespaced_custom_object(G, V, world.ns, "monitorpolicies", "iris")
    return obj.get("status", {})


def evaluations(world: World, turns: int) -> None:
    """Wait for `turns` more evaluations of the policy (its lastEvaluationTime advancing)."""
    wait_turns(
        "evaluations", lambda: policy_status(world).get("lastEvaluationTime"), turns, 15 * turns
    )


def rule(world: World, name: str) -> dict[str, Any]:
    return next((r for r in policy_status(world).get("rules", []) if r["name"] == name), {})


def condition(world: World, kind: str) -> dict[str, Any]:
    return next((c for c in policy_status(world).get("conditions", []) if c["type"] == kind), {})


def first_below(prom: Prometheus, namespace: str, start: float, end: float) -> float | None:
    """The first stored evaluation (1 s steps) at which v2's accuracy was below 0.85."""
    expr = (
        f'sum(increase(ciclo_feedback_correct_total{{namespace="{namespace}",version="v2"}}[10s]))'
        f' / sum(increase(ciclo_feedback_total{{namespace="{namespace}",version="v2",'
        'outcome="matched"}[10s]))'
    )
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1s"})
    with urllib.request.urlopen(f"{prom.url}/api/v1/query_range?{query}", timeout=5) as r:
        result = json.loads(r.read())["data"]["result"]
    values = result[0]["values"] if result else []
    return next((float(t) for t, v in values if float(v) < 0.85), None)


def test_bad_accuracy_rolls_back_once_and_a_restart_repeats_nothing(
    world: World, exporter: Exporter, prom: Prometheus, operator: Any, tmp_path: Path
) -> None:
    serve_v1_then_v2(world)
    create_policy(world, policy(prom.url))
    wait_for("the accuracy rule Ok", lambda: rule(world, "accuracy").get("state") == "Ok", 30)
    assert rule(world, "accuracy")["version"] == "v2"
    assert condition(world, "Healthy")["status"] == "True"

    broke = time.time()
    exporter.accuracy["v2"] = 0.6  # 40% of v2's labels are now wrong
    wait_for("the Service to select v1", lambda: world.selector_version() == "v1", 60)
    switched = time.time()
    below = first_below(prom, world.ns, broke - 1, switched)
    assert below is not None
    reaction = switched - below
    print(f"reaction time: {reaction:.2f} s (interval 2 s x failureThreshold 3)")
    assert reaction <= 2 * 3 + 2, reaction

    wait_for("status: v1 serves", lambda: world.model()["status"]["servingVersion"] == "v1")
    assert world.model()["spec"]["version"] == "v2"
    wait_for("Model Degraded", lambda: world.condition("Degraded").get("reason") == "RolledBack")
    wait_for("v2 RolledBack", lambda: world.phase("iris-v2") == "RolledBack")
    serving = next(
        c for c in world.version("iris-v2")["status"]["conditions"] if c["type"] == "Serving"
    )
    assert "rule accuracy" in serving["message"] and ">= 0.85" in serving["message"], serving
    actions = policy_status(world)["actions"]
    assert [(a["rule"], a["action"], a["version"]) for a in actions] == [
        ("accuracy", "rollback", "v2")
    ]
    assert actions[0]["value"] < 0.85 and actions[0]["threshold"] == ">= 0.85"
    assert "rolled back from v2 to v1" in actions[0]["message"]
    rolled = [
        e for e in world.core.list_namespaced_event(world.ns).items if e.reason == "RolledBack"
    ]
    assert any(e.involved_object.kind == "MonitorPolicy" for e in rolled)

    # v1 is judged afresh, and is healthy
    wait_for(
        "v1 judged Ok",
        lambda: (
            rule(world, "accuracy").get("version") == "v1"
            and rule(world, "accuracy").get("state") == "Ok"
        ),
        20,
    )
    # a restart re-evaluates from status: nothing is done twice
    operator.kill()
    operator.start()
    evaluations(world, 3)
    assert len(policy_status(world)["actions"]) == 1
    assert world.model()["status"]["servingVersion"] == "v1"
    rolled = [
        e for e in world.core.list_namespaced_event(world.ns).items if e.reason == "RolledBack"
    ]
    assert len([e for e in rolled if e.involved_object.kind == "MonitorPolicy"]) == 1


def test_drift_alerts_with_an_alertmanager_body_and_rolls_nothing_back(
    world: World, exporter: Exporter, prom: Prometheus
) -> None:
    hook = Webhook()
    world.create(version_manifest("v1"))
    world.create(model_manifest("v1"))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True")
    create_policy(world, policy(prom.url, webhook={"url": hook.url}))
    wait_for("the drift rule Ok", lambda: rule(world, "input-drift").get("state") == "Ok", 30)
    exporter.psi["v1"] = 0.35
    wait_for(
        "Alerting on the policy", lambda: condition(world, "Alerting").get("status") == "True", 30
    )
    wait_for(
        "Alerting on the Model", lambda: world.condition("Alerting").get("status") == "True", 10
    )
    assert "input-drift" in world.condition("Alerting")["message"]
    wait_for("the webhook, after one retry", lambda: hook.bodies, 15)
    body = hook.bodies[0]
    assert body["version"] == "4" and body["status"] == "firing"
    labels = body["alerts"][0]["labels"]
    assert (labels["rule"], labels["model"], labels["version"], labels["namespace"]) == (
        "input-drift",
        "iris",
        "v1",
        world.ns,
    )
    assert labels["alertname"] == "ciclo_input_drift"  # the mirrored PrometheusRule's name
    assert body["alerts"][0]["annotations"]["value"] == "0.35"
    assert hook.attempts == 2
    assert [
        e for e in world.core.list_namespaced_event(world.ns).items if e.reason == "RuleBreached"
    ]
    evaluations(world, 2)
    assert len(hook.bodies) == 1, "one alert per run of breaches"
    assert [a["action"] for a in policy_status(world)["actions"]] == ["alert"]
    assert world.model()["status"]["servingVersion"] == "v1"
    exporter.psi["v1"] = 0.05
    wait_for("recovered", lambda: world.condition("Alerting").get("status") == "False", 30)


def test_prometheus_down_is_no_data_and_never_a_rollback(
    world: World, exporter: Exporter, prom: Prometheus
) -> None:
    serve_v1_then_v2(world)
    create_policy(world, policy(prom.url))
    wait_for("rules Ok", lambda: rule(world, "accuracy").get("state") == "Ok", 30)
    prom.stop()
    exporter.accuracy["v2"] = 0.1  # nobody can see it
    wait_for("NoData", lambda: condition(world, "NoData").get("status") == "True", 15)
    assert condition(world, "NoData")["reason"] == "QueryError"
    assert rule(world, "accuracy")["state"] == "Error"
    assert "unreachable" in rule(world, "accuracy")["message"]
    evaluations(world, 4)  # more than failureThreshold
    assert world.model()["status"]["servingVersion"] == "v2"
    assert policy_status(world).get("actions", []) == []
    assert condition(world, "Healthy")["status"] == "False"
