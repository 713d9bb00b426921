"""The way in, part 2, all real: Traefik's Gateway API provider routing real requests by
the HTTPRoute the operator owns (weights; a TraefikService's mirror), `ciclo serve` pods
of three versions on the real node, a shared prediction store matching labels to
whichever version predicted, and a MonitorPolicy judging the candidate alone.

Canary: a bad v2 aborts at its first step (20%) having answered about that share of
requests while it ran, and none after; a good v3 walks every step and is promoted.
A/B: a worse version loses with p < 0.05, an identical one names no winner. Shadow: a
worse version never answers a client and is held out with its comparison in status, an
identical one is promoted. Client-side counts per version come from each response's
model_version."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from tests.integration.prometheus_process import free_port
from tests.integration.realnode import ON_REAL_NODE, ArtifactServer
from tests.integration.waiting import wait_for
from tests.unit.test_store import redis_server

import kubernetes
from ciclo.api.model import Model
from ciclo.api.rollout import GatewayReference
from ciclo.planning import gateway as planned
from localcluster import gateway as local_gateway
from localcluster import launcher
from localcluster.node import HOST_ADDRESS
from localcluster.paths import Paths

pytestmark = pytest.mark.e2e

G, V = "ciclo.dev", "v1alpha1"
GW = "gateway.networking.k8s.io"
X, Y = load_iris(return_X_y=True)
STEPS = [
    {"weight": 20, "pause": "60s"},
    {"weight": 60, "pause": "15s"},
    {"weight": 100, "pause": "10s"},
]


def register(custom: Any, ns: str, version: str, model: Any, artifacts: ArtifactServer) -> None:
    artifact = artifacts.root / f"{ns}-iris-{version}.joblib"
    joblib.dump(model, artifact)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
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
                "metrics": {"accuracy": float((model.predict(X) == Y).mean())},
                "artifact": {
                    "uri": artifacts.uri(artifact.name),
                    "format": "sklearn",
                    "sha256": digest,
                },
            },
        },
    )


# Labels go in pairs, one feedback request per two answers. Traefik's weighted round
# robin is deterministic: with each answer's labels sent at once, inference and feedback
# alternate, and at 50/50 every inference request met one backend, every label the other
# (a cycle of three requests is out of phase with weights of period 2 and 5).
LABEL_BATCH = 2


class Load:
    """Requests of 5 rows through the Gateway, their true labels sent after them in pairs
    (through the Gateway too, so perhaps to the other version: the store matches them).
    Every answer is recorded as (monotonic time, UTC time, the version that answered)."""

    def __init__(self, url: str, label_delay: float = 0.0) -> None:
        self.url = url
        self.rng = np.random.default_rng(3)
        self.answers: list[tuple[dt.datetime, str]] = []
        self.latencies: list[tuple[dt.datetime, float]] = []
        """(when, seconds) of each answered request, as the client saw it."""
        self.label_delay = label_delay
        """Seconds before a request's labels are sent (late ground truth): a mirrored
        copy's prediction reaches the store a moment after the answer."""
        self.labels: list[tuple[float, str, list[int]]] = []
        self.failed = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            n = 0
            while not self.stopping.is_set():
                n += 1
                rows = self.rng.integers(0, len(X), size=5)
                body = {
                    "id": f"r{n}",
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [5, 4],
                            "datatype": "FP64",
                            "data": X[rows].tolist(),
                        }
                    ],
                }
                try:
                    start = time.monotonic()
                    answer = client.post(f"{self.url}/v2/models/iris/infer", json=body)
                    took = time.monotonic() - start
                    if answer.status_code != 200:
                        self.failed += 1
                        time.sleep(0.1)
                        continue
                    now = dt.datetime.now(dt.UTC)
                    self.answers.append((now, answer.json()["model_version"]))
                    self.latencies.append((now, took))
                    self.labels.append((start + self.label_delay, f"r{n}", Y[rows].tolist()))
                    due = [x for x in self.labels if x[0] <= time.monotonic()]
                    if len(due) >= LABEL_BATCH:
                        del self.labels[: len(due)]
                        items = [{"id": rid, "labels": labels} for _, rid, labels in due]
                        client.post(f"{self.url}/v2/models/iris/feedback", json={"feedback": items})
                except httpx.HTTPError:
                    self.failed += 1
                    time.sleep(0.1)
                time.sleep(0.02)

    def between(self, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for at, version in list(self.answers):
            if start <= at <= end:
                counts[version] = counts.get(version, 0) + 1
        return counts

    def p99(self, start: dt.datetime, end: dt.datetime) -> float:
        """The client's p99 latency (seconds) of the requests answered in [start, end]."""
        took = sorted(t for at, t in list(self.latencies) if start <= at <= end)
        return took[min(len(took) - 1, int(0.99 * len(took)))] if took else float("nan")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


@pytest.fixture
def gateway_api(paths: Paths, kubeconfig: Path) -> None:
    """The pinned Gateway API CRDs and Traefik's own (tools/build.sh copies them), installed
    once: they are cluster-wide, and nothing else in the suite minds them."""
    files = sorted((paths.cache / "crds" / "gateway-api").glob("*.yaml"))
    traefik_crds = paths.cache / "crds" / "traefik" / "traefik.io.yaml"
    assert files and traefik_crds.exists(), "CRDs are missing: run `make tools`"
    launcher.kubectl(
        paths,
        kubeconfig,
        "apply",
        "--server-side",
        *(f"--filename={f}" for f in [*files, traefik_crds]),
    )
    names = [f"crd/{kind}.{GW}" for kind in ("httproutes", "gateways", "gatewayclasses")]
    names.append("crd/traefikservices.traefik.io")
    seen: list[str] = []

    def established() -> bool:
        done = launcher.kubectl(
            paths, kubeconfig, "get", *names, "-o", "json", check=False, timeout=30
        )
        if done.returncode != 0:
            seen[:] = [done.stderr]
            return False
        items = json.loads(done.stdout).get("items", [])
        # A CRD just created may show `conditions: null` before the first one is set.
        found = [(crd.get("status") or {}).get("conditions") or [] for crd in items]
        seen[:] = [json.dumps(found)]
        return len(items) == len(names) and all(
            any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            for conditions in found
        )

    try:
        wait_for("the Gateway API CRDs established", established, 120)
    except Exception as e:
        raise AssertionError(f"{e}; the API server last said: {seen}") from e


@pytest.fixture
def traefik(
    paths: Paths, kubeconfig: Path, gateway_api: None, tmp_path: Path
) -> Iterator[local_gateway.Traefik]:
    t = local_gateway.start(paths, kubeconfig, tmp_path / "traefik", free_port(), free_port())
    yield t
    t.stop()


@pytest.fixture
def store(core: Any, namespace: str, tmp_path: Path) -> Iterator[str]:
    port, password = free_port(), "ciclo-test"
    url = f"redis://:{password}@{HOST_ADDRESS}:{port}/0"
    core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="prediction-store"),
            data={"url": base64.b64encode(url.encode()).decode()},
        ),
    )
    with redis_server(tmp_path, port, HOST_ADDRESS, password) as served:
        yield served


def explained(
    custom: Any, ns: str, load: Load | None = None, traefik: local_gateway.Traefik | None = None
) -> Callable[[], str]:
    """What the Model's and its MonitorPolicy's status, the route and the client saw, and
    the end of Traefik's log, for a wait that timed out."""

    def said() -> str:
        found: dict[str, Any] = {}
        for group, plural in ((G, "models"), (G, "monitorpolicies"), (GW, "httproutes")):
            try:
                obj = custom.get_namespaced_custom_object(group, V if group == G else "v1",
                                                          ns, plural, "iris")  # fmt: skip
                found[plural] = obj.get("status", {}) if group == G else obj
            except kubernetes.client.ApiException as e:
                found[plural] = {"error": e.status}
        if load is not None:
            now = dt.datetime.now(dt.UTC)
            found["client"] = {
                "last 30 s": load.between(now - dt.timedelta(seconds=30), now),
                "failed": load.failed,
                "running": load.thread.is_alive(),
            }
        if traefik is not None:
            found["traefik"] = traefik.log.read_text(errors="replace").splitlines()[-15:]
        # What each serving pod counts of the labels (the policy reads these).
        pods = kubernetes.client.CoreV1Api(custom.api_client).list_namespaced_pod(ns).items
        for pod in pods:
            port = (pod.metadata.annotations or {}).get("prometheus.io/port")
            try:
                text = httpx.get(f"http://{pod.status.pod_ip}:{port}/metrics", timeout=3).text
            except (httpx.HTTPError, TypeError) as e:
                text = str(e)
            found[f"pod {pod.metadata.name}"] = [
                line for line in text.splitlines() if line.startswith(("ciclo_window_lab",
                                                                       "ciclo_feedback_total"))
            ]  # fmt: skip
        return json.dumps(found, default=str)

    return said


def create_model(custom: Any, ns: str, rollout: dict[str, Any]) -> None:
    """Model iris at v1, one pod on the real node, labels in the shared store."""
    spec = {
        "version": "v1",
        "serving": {"replicas": 1, **ON_REAL_NODE},
        "monitoring": {"feedback": {"store": {"secretKeyRef": {"name": "prediction-store"}}}},
        "rollout": rollout,
    }
    model = {"apiVersion": f"{G}/{V}", "kind": "Model", "metadata": {"name": "iris"}}
    custom.create_namespaced_custom_object(G, V, ns, "models", {**model, "spec": spec})


def create_policy(custom: Any, ns: str, rule: dict[str, Any]) -> None:
    """iris's MonitorPolicy: the pods' own /metrics every 2 s, one rule."""
    spec = {
        "modelRef": {"name": "iris"},
        "interval": "2s",
        "source": {"type": "pods"},
        "rules": [rule],
    }
    policy = {"apiVersion": f"{G}/{V}", "kind": "MonitorPolicy", "metadata": {"name": "iris"}}
    custom.create_namespaced_custom_object(G, V, ns, "monitorpolicies", {**policy, "spec": spec})


def gateway(custom: Any, ns: str, traefik: local_gateway.Traefik) -> None:
    """Traefik's GatewayClass (cluster-wide: perhaps made by an earlier run) and a Gateway
    named web in the namespace, listening on Traefik's entry point."""
    try:
        custom.create_cluster_custom_object(
            GW, "v1", "gatewayclasses", local_gateway.gateway_class()
        )
    except kubernetes.client.ApiException as e:
        assert e.status == 409, e
    custom.create_namespaced_custom_object(
        GW, "v1", ns, "gateways", local_gateway.gateway("web", traefik.port)
    )


@pytest.mark.timeout(900)
def test_a_bad_canary_aborts_at_its_first_step_and_a_good_one_is_promoted(
    custom: Any,
    api: Any,
    namespace: str,
    operator: Any,
    traefik: local_gateway.Traefik,
    store: str,
    artifacts: ArtifactServer,
) -> None:
    ns = namespace
    gateway(custom, ns, traefik)
    register(
        custom, ns, "v1", DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y), artifacts
    )
    shuffled = np.random.default_rng(0).permutation(Y)
    register(
        custom,
        ns,
        "v2",
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, shuffled),
        artifacts,
    )
    register(custom, ns, "v3", LogisticRegression(max_iter=500).fit(X, Y), artifacts)
    create_model(custom, ns, {"strategy": "canary", "steps": STEPS, "gateway": {"name": "web"}})

    def model() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, "models", "iris")
        return obj

    def weights() -> dict[str, int]:
        route = custom.get_namespaced_custom_object(GW, "v1", ns, "httproutes", "iris")
        return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}

    def answers_through_gateway() -> bool:
        try:
            body = {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": X[:1].tolist()}
                ]
            }
            return (
                httpx.post(
                    f"{traefik.url()}/v2/models/iris/infer", json=body, timeout=3
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    wait_for("v1 serving", lambda: model().get("status", {}).get("servingVersion") == "v1", 120)
    wait_for("the route answering through the Gateway", answers_through_gateway, 60)
    create_policy(
        custom,
        ns,
        {
            "name": "accuracy",
            "metric": "accuracy",
            "window": "20s",
            "min": 0.8,
            "minSamples": 30,
            "failureThreshold": 2,
            "action": "rollback",
        },
    )
    load = Load(traefik.url())
    try:
        wait_for(
            "answers from v1",
            lambda: (
                load.between(dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.now(dt.UTC)).get(
                    "v1", 0
                )
                > 50
            ),
            60,
        )

        # A bad v2: its canary aborts at its first step.
        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v2"}}
        )
        wait_for(
            "v2's canary aborted",
            lambda: (model()["status"].get("canary") or {}).get("phase") == "Aborted",
            240,
            explained(custom, ns, load, traefik),
        )
        canary = model()["status"]["canary"]
        assert canary["version"] == "v2" and canary["step"] == 0, canary
        assert model()["status"]["servingVersion"] == "v1"
        assert model()["spec"]["version"] == "v2", "an abort is status, never a spec write"
        assert weights() == {"iris-v-v1": 100}
        since = dt.datetime.fromisoformat(canary["since"])
        until = dt.datetime.fromisoformat(canary["until"])
        during = load.between(since, until)
        share = during.get("v2", 0) / sum(during.values())
        # Traefik's weighted round robin over two backends is exact over a few dozen
        # requests; the bound leaves room for a step boundary's second of slack.
        assert 0.1 <= share <= 0.3, during
        mark = custom.get_namespaced_custom_object(G, V, ns, "modelversions", "iris-v2")["status"][
            "rolledBack"
        ]
        breach = dt.datetime.fromisoformat(mark["at"])
        last_v2 = max(at for at, v in load.answers if v == "v2")
        after = until + dt.timedelta(seconds=2)
        wait_for(
            "100 answers after the abort",
            lambda: sum(load.between(after, dt.datetime.now(dt.UTC)).values()) >= 100,
            60,
        )
        assert load.between(after, dt.datetime.now(dt.UTC)).get("v2", 0) == 0
        figures = {
            "breach_to_champion_s": (last_v2 - breach).total_seconds(),
            "canary_answers": during,
            "bad_share": share,
        }

        # A good v3: every step, then promoted.
        seen: set[tuple[int, int]] = set()

        def promoted() -> bool:
            c = model()["status"].get("canary") or {}
            if c.get("version") == "v3" and c.get("phase") == "Progressing":
                seen.add((c["step"], c["weight"]))
            return c.get("version") == "v3" and c.get("phase") == "Promoted"

        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v3"}}
        )
        wait_for("v3 promoted", promoted, 300, explained(custom, ns, load, traefik))
        assert {s for s, _ in seen} == {0, 1, 2}, seen
        assert model()["status"]["servingVersion"] == "v3"
        assert weights() == {"iris-v-v3": 100}
        canary = model()["status"]["canary"]
        during = load.between(
            dt.datetime.fromisoformat(canary["since"]), dt.datetime.fromisoformat(canary["until"])
        )
        assert during.get("v3", 0) > 0 and during.get("v1", 0) > 0, during
        figures["good_canary_answers"] = during
        figures["good_canary_seconds"] = (
            dt.datetime.fromisoformat(canary["until"]) - dt.datetime.fromisoformat(canary["since"])
        ).total_seconds()
        print("ROLLOUT-FIGURES " + json.dumps(figures))
    finally:
        load.stop()


@pytest.mark.timeout(900)
def test_an_ab_test_names_the_better_version_and_identical_versions_none(
    custom: Any,
    namespace: str,
    operator: Any,
    traefik: local_gateway.Traefik,
    store: str,
    artifacts: ArtifactServer,
) -> None:
    ns = namespace
    gateway(custom, ns, traefik)
    good = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    register(custom, ns, "v1", good, artifacts)
    register(
        custom, ns, "v2", DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, Y), artifacts
    )
    register(custom, ns, "v3", good, artifacts)  # the same model: identical answers
    rollout = {
        "strategy": "abtest",
        # alpha 0.01: two identical versions still differ by chance in their samples, and
        # the test names a winner at a rate of alpha; v2's effect is far beyond it.
        "abtest": {"split": 50, "sampleSize": 300, "alpha": 0.01, "promoteWinner": True},
        "gateway": {"name": "web"},
    }
    create_model(custom, ns, rollout)
    # The A/B test reads the labels through the Model's MonitorPolicy source; its one rule
    # only alerts, so nothing aborts the worse version before the test ends.
    create_policy(
        custom, ns, {"name": "accuracy", "metric": "accuracy", "min": 0.5, "action": "alert"}
    )

    def model() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, "models", "iris")
        return obj

    wait_for("v1 serving", lambda: model().get("status", {}).get("servingVersion") == "v1", 120)
    load = Load(traefik.url())
    try:
        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v2"}}
        )
        wait_for(
            "v2's A/B test concluded",
            lambda: (model()["status"].get("abtest") or {}).get("version") == "v2",
            240,
            explained(custom, ns, load, traefik),
        )
        verdict = model()["status"]["abtest"]
        assert verdict["winner"] == "v1" and verdict["pValue"] < 0.05, verdict
        assert verdict["effect"] < 0, verdict
        wait_for("v2 concluded", lambda: model()["status"]["canary"]["phase"] == "Concluded", 30)
        assert model()["status"]["servingVersion"] == "v1"

        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v3"}}
        )
        wait_for(
            "v3's A/B test concluded",
            lambda: (model()["status"].get("abtest") or {}).get("version") == "v3",
            240,
            explained(custom, ns, load, traefik),
        )
        same = model()["status"]["abtest"]
        assert "winner" not in same and same["pValue"] >= 0.01, same
        wait_for("v3 concluded", lambda: model()["status"]["canary"]["phase"] == "Concluded", 30)
        assert model()["status"]["servingVersion"] == "v1"
        print("ABTEST-FIGURES " + json.dumps({"worse": verdict, "identical": same}))
    finally:
        load.stop()


@pytest.mark.timeout(900)
def test_a_worse_shadow_is_never_exposed_and_an_identical_one_is_promoted(
    custom: Any,
    namespace: str,
    operator: Any,
    traefik: local_gateway.Traefik,
    store: str,
    artifacts: ArtifactServer,
) -> None:
    """Traefik mirrors each inference request to the candidate through a TraefikService
    (its Gateway provider has no RequestMirror); the client only ever hears the champion.
    A worse v2 is held out on its comparison; v3, the champion's own model, agrees on
    every row and is promoted."""
    ns = namespace
    gateway(custom, ns, traefik)
    good = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    register(custom, ns, "v1", good, artifacts)
    register(
        custom, ns, "v2", DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, Y), artifacts
    )
    register(custom, ns, "v3", good, artifacts)
    rollout = {
        "strategy": "shadow",
        "shadow": {"duration": "60s", "minSamples": 50, "maxDisagreement": 0.1},
        "gateway": {"name": "web", "mirror": "TraefikService"},
    }
    create_model(custom, ns, rollout)
    # The shadow is judged through the Model's MonitorPolicy source; its rule only alerts.
    create_policy(
        custom, ns, {"name": "accuracy", "metric": "accuracy", "min": 0.5, "action": "alert"}
    )

    def model() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, ns, "models", "iris")
        return obj

    def ended(version: str) -> bool:
        c = model()["status"].get("canary") or {}
        return c.get("version") == version and c.get("phase") in ("Aborted", "Promoted")

    wait_for("v1 serving", lambda: model().get("status", {}).get("servingVersion") == "v1", 120)
    # The portable route (the RequestMirror filter, for Gateways that have it) passes the
    # real Gateway API CRDs' validation too, though Traefik cannot run it.
    portable = Model.model_validate(model())
    portable.spec.rollout.gateway = GatewayReference(name="web")
    route = planned.http_route(portable, {"v1": 100}, "v2")
    assert route["spec"]["rules"][1]["filters"][0]["type"] == "RequestMirror"
    route["metadata"]["name"] = "iris-portable"  # beside the operator's own
    custom.create_namespaced_custom_object(GW, "v1", ns, "httproutes", route, dry_run="All")
    load = Load(traefik.url(), label_delay=1.0)
    try:
        wait_for("answers through the Gateway", lambda: len(load.answers) > 100, 60)
        quiet_start = dt.datetime.now(dt.UTC)
        time.sleep(20)  # the champion's latency alone, to compare the shadow's cost with
        quiet = load.p99(quiet_start, dt.datetime.now(dt.UTC))

        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v2"}}
        )
        wait_for(
            "v2's shadow judged", lambda: ended("v2"), 300, explained(custom, ns, load, traefik)
        )
        status = model()["status"]
        canary, verdict = status["canary"], status["shadow"]
        assert (canary["strategy"], canary["phase"]) == ("shadow", "Aborted"), canary
        assert verdict["version"] == "v2" and verdict["promote"] is False, verdict
        assert verdict["samples"] >= 50, verdict
        assert verdict["accuracy"] < verdict["championAccuracy"] - 0.1, verdict
        assert verdict["agreement"] < 0.9, verdict
        assert any("accuracy" in f for f in verdict["failed"]), verdict
        assert status["servingVersion"] == "v1"
        degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
        assert degraded["reason"] == "ShadowAborted", degraded
        since = dt.datetime.fromisoformat(canary["since"])
        until = dt.datetime.fromisoformat(canary["until"])
        during = load.between(since, until)
        assert during.get("v1", 0) > 100 and set(during) == {"v1"}, during
        shadowed = load.p99(since, until)

        custom.patch_namespaced_custom_object(
            G, V, ns, "models", "iris", {"spec": {"version": "v3"}}
        )
        wait_for(
            "v3's shadow judged", lambda: ended("v3"), 300, explained(custom, ns, load, traefik)
        )
        status = model()["status"]
        assert status["canary"]["phase"] == "Promoted", status["canary"]
        same = status["shadow"]
        assert same["version"] == "v3" and same["promote"] is True, same
        assert same["agreement"] == 1.0, same
        wait_for("v3 serving", lambda: model()["status"].get("servingVersion") == "v3", 60)
        wait_for(
            "answers from v3",
            lambda: load.between(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
                                 dt.datetime.now(dt.UTC)).get("v3", 0) > 0,
            60,
        )  # fmt: skip
        print(
            "SHADOW-FIGURES "
            + json.dumps(
                {
                    "champion_p99_ms_alone": round(quiet * 1000, 1),
                    "champion_p99_ms_with_shadow": round(shadowed * 1000, 1),
                    "worse": verdict,
                    "identical": same,
                }
            )
        )
    finally:
        load.stop()
