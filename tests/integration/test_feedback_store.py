"""Issue 16's acceptance: labels sent through the Model's Service are matched whatever pod
or version made the prediction, with a shared prediction store.

All real: a redis-server runs as a host process on the real node's bridge (where the
pods reach it), the Model names it through a Secret, and the serving pods run `ciclo
serve` from the ciclo image on the real node. "Through the Service" is the Service's
ready endpoints taken in turn, as kube-proxy spreads connections, with every label sent
to another pod than the one that predicted; quality is read as Prometheus reads it, each
version's counters summed over every pod, and compared with scikit-learn's.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from realnode import ON_REAL_NODE, ArtifactServer
from sklearn.metrics import accuracy_score, f1_score
from test_operator import World, model_manifest, version_manifest
from tests.unit.test_server import free_port
from tests.unit.test_store import redis_server
from waiting import wait_for

import kubernetes
from localcluster.node import HOST_ADDRESS

pytestmark = pytest.mark.integration
RNG = np.random.default_rng(16)


@pytest.fixture
def world(custom: Any, core: Any, apps: Any, namespace: str, operator: Any) -> World:
    return World(custom, core, apps, namespace)


class Service:
    """The Model's Service as a client meets it: its ready endpoints, one after another."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.discovery = kubernetes.client.DiscoveryV1Api(api)
        self.namespace = namespace
        self.turn = itertools.count()

    def endpoints(self) -> list[str]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector="kubernetes.io/service-name=iris"
        ).items
        port = next(p.port for s in slices for p in s.ports or [] if p.name == "http")
        return sorted(
            f"http://{a}:{port}"
            for s in slices
            for e in s.endpoints or []
            if e.conditions.ready
            for a in e.addresses
        )

    def next(self, avoid: str | None = None) -> str:
        """The next endpoint in turn; not `avoid` when there is another."""
        pods = self.endpoints()
        pod = pods[next(self.turn) % len(pods)]
        if pod == avoid and len(pods) > 1:
            pod = pods[(pods.index(pod) + 1) % len(pods)]
        return pod


def pods(core: Any, namespace: str) -> dict[str, str]:
    """Every running serving pod of the Model (warm versions too): name -> base URL."""
    out = {}
    for pod in core.list_namespaced_pod(namespace, label_selector="ciclo.dev/model=iris").items:
        if (
            pod.status.pod_ip
            and pod.status.phase == "Running"
            and not pod.metadata.deletion_timestamp
        ):
            out[pod.metadata.name] = f"http://{pod.status.pod_ip}:8080"
    return out


def totals(urls: list[str], version: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`version`'s counters summed over these pods, as Prometheus' sum() by version."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("version") != version:
                    continue
                key = (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "version")))
                out[key] = out.get(key, 0.0) + s.value
    return out


def quality(urls: list[str], version: str) -> tuple[float, float, float]:
    """(matched labels, accuracy, macro F1) of `version` from the pods' counters."""
    t = totals(urls, version)
    matched = t.get(("ciclo_feedback_total", (("model", "iris"), ("outcome", "matched"))), 0.0)
    correct = t.get(("ciclo_feedback_correct_total", (("model", "iris"),)), 0.0)
    per_class: dict[str, list[float]] = {}
    for (name, labels), value in t.items():
        kind = {
            "ciclo_class_true_positives_total": 0,
            "ciclo_class_predicted_total": 1,
            "ciclo_class_actual_total": 2,
        }.get(name)
        if kind is not None:
            per_class.setdefault(dict(labels)["class"], [0.0, 0.0, 0.0])[kind] += value
    f1s = [2 * tp / (p + a) if p + a else 0.0 for tp, p, a in per_class.values()]
    return matched, correct / matched if matched else float("nan"), float(np.mean(f1s))


def store_metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


@pytest.fixture
def store(core: Any, namespace: str) -> tuple[int, str]:
    """Where the test's redis-server will listen, and the Secret naming it: (port, password)."""
    port, password = free_port(), "ciclo-test"
    url = f"redis://:{password}@{HOST_ADDRESS}:{port}/0"
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="prediction-store"),
        data={"url": base64.b64encode(url.encode()).decode()},
    )
    core.create_namespaced_secret(namespace, secret)
    return port, password


def register(
    world: World, artifacts: ArtifactServer, tmp_path: Path, version: str, c: float
) -> Any:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    path = tmp_path / f"{version}.joblib"
    joblib.dump(model, path)
    manifest = version_manifest(version)
    manifest["spec"]["artifact"].update(
        uri=artifacts.publish(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )
    world.create(manifest)
    return model


def predict(service: Service, n: int, prefix: str) -> list[tuple[str, str, list[int]]]:
    """`n` requests of one to three rows through the Service: (id, pod, predictions)."""
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    out = []
    for i in range(n):
        rows = x[RNG.integers(0, len(x), size=int(RNG.integers(1, 4)))]
        pod = service.next()
        body = {
            "id": f"{prefix}-{i}",
            "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.tolist()}],
        }  # fmt: skip
        answer = httpx.post(f"{pod}/v2/models/iris/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        out.append((f"{prefix}-{i}", pod, answer.json()["outputs"][0]["data"]))
    return out


def label(service: Service, made: list[tuple[str, str, list[int]]]) -> tuple[list[int], list[int]]:
    """A label for each row (right 70% of the time), each sent to another pod than the
    one that predicted; (truth, predicted) in order."""
    truth: list[int] = []
    guess: list[int] = []
    for request_id, pod, predicted in made:
        labels = [p if RNG.random() < 0.7 else int(RNG.integers(0, 3)) for p in predicted]
        to = service.next(avoid=pod)
        answer = httpx.post(
            f"{to}/v2/models/iris/feedback", json={"id": request_id, "labels": labels}, timeout=10
        )
        assert answer.json() == {"matched": len(labels), "late": 0}, (request_id, answer.text)
        truth += labels
        guess += predicted
    return truth, guess


def written(store: str, namespace: str, made: list[tuple[str, str, list[int]]]) -> None:
    """Wait until the store holds every prediction made (a label may otherwise overtake it)."""
    client = redis.Redis.from_url(store)
    keys = [f"ciclo:{namespace}/iris:{request_id}" for request_id, _, _ in made]
    wait_for("the predictions written", lambda: client.exists(*keys) == len(keys))


@pytest.mark.timeout(900)
def test_labels_through_the_service_count_for_the_version_that_predicted(
    world: World,
    api: Any,
    core: Any,
    tmp_path: Path,
    store: tuple[int, str],
    artifacts: ArtifactServer,
) -> None:
    port, password = store
    with redis_server(tmp_path, port, host=HOST_ADDRESS, password=password) as url:
        service = replicas_pod_loss_and_rollout(world, api, core, artifacts, tmp_path, url)
    # Store down for 30 s under load: no failed inference, the metric says so, recovery.
    failures: list[str] = []
    sent = itertools.count()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                predict(service, 1, f"outage-{next(sent)}")
            except (AssertionError, httpx.HTTPError) as e:
                failures.append(str(e))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        wait_for(
            "ciclo_feedback_store_up 0",
            lambda: all(
                store_metric(u, "ciclo_feedback_store_up") == 0 for u in service.endpoints()
            ),
            timeout=30,
        )
        time.sleep(30)  # the outage's length is the point here, not a wait for a result
        # back, empty (no persistence): the pods reconnect by themselves
        with redis_server(tmp_path, port, host=HOST_ADDRESS, password=password) as url:
            stop.set()
            thread.join(30)
            assert not failures, failures[:3]
            assert next(sent) > 30
            unrecorded = sum(
                store_metric(u, "ciclo_feedback_store_unrecorded_total")
                for u in service.endpoints()
            )
            assert unrecorded > 0
            recovered = predict(service, 20, "recovered")
            written(url, world.ns, recovered)
            label(service, recovered)
            assert all(store_metric(u, "ciclo_feedback_store_up") == 1 for u in service.endpoints())
    finally:
        stop.set()
        thread.join(30)


def replicas_pod_loss_and_rollout(
    world: World, api: Any, core: Any, artifacts: ArtifactServer, tmp_path: Path, url: str
) -> Service:
    register(world, artifacts, tmp_path, "v1", 1.0)
    register(world, artifacts, tmp_path, "v2", 0.01)  # another model: other predictions
    manifest = model_manifest("v1", replicas=3, keepPrevious=1, warmReplicas=1, **ON_REAL_NODE)
    manifest["spec"]["monitoring"] = {
        "feedback": {"store": {"secretKeyRef": {"name": "prediction-store"}}}
    }
    world.create(manifest)
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True", timeout=180)
    service = Service(api, world.ns)
    wait_for("three ready endpoints", lambda: len(service.endpoints()) == 3, timeout=60)

    # Replicas: labels through the Service, each to another pod: none lost, quality exact.
    made = predict(service, 150, "replicas")
    written(url, world.ns, made)
    truth, guess = label(service, made)
    matched, accuracy, f1 = quality(list(pods(core, world.ns).values()), "v1")
    assert matched == len(truth)
    assert accuracy == pytest.approx(accuracy_score(truth, guess), abs=1e-12)
    assert f1 == pytest.approx(f1_score(truth, guess, average="macro"), abs=1e-12)

    # Pod loss: the pod that predicted is deleted; its predictions are still matched.
    lost = predict(service, 30, "lost")
    written(url, world.ns, lost)
    victim_url = lost[0][1]
    victim = next(name for name, u in pods(core, world.ns).items() if u == victim_url)
    core.delete_namespaced_pod(victim, world.ns, grace_period_seconds=0)
    wait_for("the pod gone from the Service", lambda: victim_url not in service.endpoints())
    truth_lost, _ = label(service, [m for m in lost if m[1] == victim_url])
    assert truth_lost

    # Rollout: v1's predictions, then v2 serves, then v1's labels arrive (at v2's pods).
    before = predict(service, 60, "rollout-v1")
    written(url, world.ns, before)
    world.set_spec(version="v2")
    wait_for("v2 serving", lambda: world.model()["status"].get("servingVersion") == "v2", 240)
    wait_for(
        "only v2 endpoints",
        lambda: all(u not in service.endpoints() for _, u, _ in before),
        timeout=60,
    )
    v2_urls = service.endpoints()
    truth1, guess1 = label(service, before)
    after = predict(service, 60, "rollout-v2")
    written(url, world.ns, after)
    truth2, guess2 = label(service, after)
    # v1's labels of this phase all landed on v2's pods, which are new: exactly them
    matched1, accuracy1, f11 = quality(v2_urls, "v1")
    assert matched1 == len(truth1)
    assert accuracy1 == pytest.approx(accuracy_score(truth1, guess1), abs=1e-12)
    assert f11 == pytest.approx(f1_score(truth1, guess1, average="macro"), abs=1e-12)
    matched2, accuracy2, f12 = quality(list(pods(core, world.ns).values()), "v2")
    assert matched2 == len(truth2)
    assert accuracy2 == pytest.approx(accuracy_score(truth2, guess2), abs=1e-12)
    assert f12 == pytest.approx(f1_score(truth2, guess2, average="macro"), abs=1e-12)
    return service
