"""The shared prediction store on a real redis-server (Debian's; `make redis`): the store
alone, then two `ciclo serve` processes of different versions sharing it."""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from tests.unit.test_server import MODEL, X, free_port, infer, matrix_input, serving

from ciclo.monitoring.sources import PodsSource, Query
from ciclo.serving.feedback import FeedbackError, Label
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor
from ciclo.serving.store import SharedStore, StoreUnavailable


@contextlib.contextmanager
def redis_server(
    tmp: Path, port: int | None = None, host: str = "127.0.0.1", password: str | None = None
) -> Iterator[str]:
    """A redis-server process on a free port, with no persistence; its URL once it answers.
    The integration tests bind it to the real node's bridge, where pods reach it (with a
    password: protected mode refuses other hosts without one)."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    assert binary, "redis-server is missing: run `make redis`"
    port = port or free_port()
    auth = ["--requirepass", password] if password else []
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", host, "--save", "", "--dir", str(tmp), *auth],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{password}@{host}:{port}/0" if password else f"redis://{host}:{port}/0"
    try:
        wait_for(lambda: _pings(url), "redis-server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def wait_for(condition: Callable[[], bool], message: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def shared(url: str, version: str, registry: CollectorRegistry | None = None) -> SharedStore:
    store = SharedStore(
        url, "ns/iris", version, 60.0, registry or CollectorRegistry(), ("iris", version)
    )
    store.start()
    return store


def test_entries_hold_every_version_in_row_order_and_are_taken_once(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        v1, v2 = shared(url, "v1"), shared(url, "v2")
        v1.put_many([("a", ("0", "2", "1"), v1.clock()), ("b", ("1",), v1.clock())])
        v2.put_many([("a", ("0", "0", "1"), v2.clock())])  # a shadow's prediction of "a"
        v1.flush(5)
        v2.flush(5)
        assert v2.lookup(["a", "b", "c"]) == {
            "a": {"v1": ("0", "2", "1"), "v2": ("0", "0", "1")},
            "b": {"v1": ("1",)},
        }
        assert v2.claim(["a", "c"]) == {"a": {"v1": ("0", "2", "1"), "v2": ("0", "0", "1")}}
        assert v1.claim(["a"]) == {}  # taken once, whoever asks
        ttl = redis.Redis.from_url(url).pttl(b"ciclo:ns/iris:b")
        assert 0 < ttl <= 60_000  # max_age, counted from the prediction
        v1.close()
        v2.close()


def test_a_store_that_is_down_drops_and_counts_and_reconnects(tmp_path: Path) -> None:
    port = free_port()
    registry = CollectorRegistry()

    def value(name: str) -> float:
        return registry.get_sample_value(name, {"model": "iris", "version": "v1"}) or 0.0

    with redis_server(tmp_path, port) as url:
        store = shared(url, "v1", registry)
        store.put_many([("before", ("1",), store.clock())])
        store.flush(5)
        assert value("ciclo_feedback_store_recorded_total") == 1
    # down: put_many still returns at once; the writer drops what it cannot write
    start = time.perf_counter()
    store.put_many([(f"r{i}", ("1",), store.clock()) for i in range(100)])
    assert time.perf_counter() - start < 0.5  # under one connect timeout (1 s): no I/O
    wait_for(lambda: value("ciclo_feedback_store_unrecorded_total") == 100, "not counted")
    assert value("ciclo_feedback_store_up") == 0
    with pytest.raises(StoreUnavailable):
        store.lookup(["before"])
    # a full queue drops at once, counted
    small = SharedStore(url, "ns/iris", "v9", 60.0, CollectorRegistry(), ("iris", "v9"), 10)
    small.put_many([(f"q{i}", ("1",), 0.0) for i in range(25)])
    assert len(small.queue) == 10
    assert small.unrecorded._value.get() == 15
    with redis_server(tmp_path, port):  # back, empty (no persistence): the writer reconnects
        store.put_many([("after", ("2",), store.clock())])
        wait_for(lambda: value("ciclo_feedback_store_recorded_total") == 2, "no reconnect")
        assert value("ciclo_feedback_store_up") == 1
        assert store.lookup(["after", "r1"]) == {"after": {"v1": ("2",)}}
        store.close()


def two_pods(url: str) -> list[tuple[Monitor, RuntimeMetrics, SharedStore]]:
    """The monitors of a v1 pod and a v2 pod of one Model on one shared store, started."""
    pods = []
    for version in ("v1", "v2"):
        metrics = RuntimeMetrics("iris", version)
        store = SharedStore(url, "ns/iris", version, 60.0, metrics.registry, metrics.labels)
        monitor = Monitor(metrics, True, store=store, classes=["0", "1", "2"])
        store.before_write = monitor.fold
        store.start()
        pods.append((monitor, metrics, store))
    return pods


def test_a_monitor_counts_labels_for_the_version_that_predicted(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        (one, _, s1), (two, m2, s2) = two_pods(url)
        one.observe("r1", np.zeros((2, 4)), np.array([0, 1]))
        two.observe("r2", np.zeros((1, 4)), np.array([2]))
        s1.flush(5)
        # a label for v1's prediction reaches v2's pod: counted for v1
        assert two.feedback([Label("r1", ["0", "0"]), Label("r2", ["2"]), Label("r9", ["1"])]) == (
            3,
            1,
        )
        assert two.feedback([Label("r1", ["0", "0"])]) == (0, 2)  # counted once
        text = m2.exposition().decode()
        assert 'ciclo_feedback_correct_total{model="iris",version="v1"} 1.0' in text
        assert 'ciclo_feedback_correct_total{model="iris",version="v2"} 1.0' in text
        assert 'ciclo_feedback_total{model="iris",outcome="matched",version="v1"} 2.0' in text
        assert 'ciclo_window_accuracy{model="iris",version="v1"} 0.5' in text
        assert 'ciclo_window_accuracy{model="iris",version="v2"} 1.0' in text
        one.observe("r3", np.zeros((1, 4)), np.array([1]))
        s1.flush(5)
        with pytest.raises(FeedbackError, match="2 labels for a request of 1 rows"):
            two.feedback([Label("r3", ["1", "1"])])
        with pytest.raises(FeedbackError, match="not a class of this model"):
            two.feedback([Label("r3", ["7"])])
        assert two.feedback([Label("r3", ["1"])]) == (1, 0)  # the refusals took nothing
        s1.close()
        s2.close()


def test_a_label_sent_at_once_to_another_pod_finds_its_prediction(tmp_path: Path) -> None:
    """v1's pod answers; the label goes through the Service to v2's pod straight away,
    before v1's writer has sent the prediction (it gathers for LINGER): v2's pod looks
    again once, so the label is matched, not late. An unknown id is still late."""
    with redis_server(tmp_path) as url:
        (one, _, s1), (two, _, s2) = two_pods(url)
        for n in range(20):
            one.observe(f"r{n}", np.zeros((1, 4)), np.array([1]))
            one.fold()  # the inference path queues it for the writer; no flush
            assert two.feedback([Label(f"r{n}", ["1"])]) == (1, 0), n
        assert two.feedback([Label("unknown", ["1"])]) == (0, 1)
        s1.close()
        s2.close()


def test_a_shadows_agreement_with_its_champion_on_the_same_requests(tmp_path: Path) -> None:
    """Both versions answer the same ids (a mirror); a label sent to either pod counts the
    agreement of the pair both ways, on that pod."""
    with redis_server(tmp_path) as url:
        (champion, m1, s1), (shadow, m2, s2) = two_pods(url)
        champion.observe("r1", np.zeros((4, 4)), np.array([0, 1, 2, 2]))
        shadow.observe("r1", np.zeros((4, 4)), np.array([0, 1, 1, 2]))
        champion.observe("r2", np.zeros((1, 4)), np.array([1]))  # the mirror missed it
        s2.flush(5)
        assert champion.feedback([Label("r1", ["0", "1", "2", "0"]), Label("r2", ["1"])]) == (5, 0)
        text = m1.exposition().decode()
        for version, other in (("v1", "v2"), ("v2", "v1")):
            labels = f'model="iris",other="{other}",version="{version}"'
            assert f"ciclo_window_agreement{{{labels}}} 0.75" in text
            assert f"ciclo_window_agreement_samples{{{labels}}} 4.0" in text
            assert f"ciclo_feedback_compared_total{{{labels}}} 4.0" in text
            assert f"ciclo_feedback_agreed_total{{{labels}}} 3.0" in text
        assert "agreement" not in m2.exposition().decode()  # the label went to v1's pod
        s1.close()
        s2.close()


def _families(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_pods_sharing_a_store_count_each_label_for_its_version(tmp_path: Path) -> None:
    """Labels sent to the other pod are matched and counted for the version that
    predicted; summed over both pods' /metrics (as Prometheus sums them), quality equals
    scikit-learn's on the same labels."""
    rng = np.random.default_rng(16)
    with (
        redis_server(tmp_path) as store,
        serving(tmp_path / "a.joblib", "--feedback-store", store) as a,
        serving(tmp_path / "b.joblib", "--feedback-store", store, version="v2") as b,
    ):
        pods = {"v1": a, "v2": b}
        made: dict[str, list[tuple[str, list[int]]]] = {"v1": [], "v2": []}
        for i in range(120):
            version = "v1" if i % 2 else "v2"
            rows = X[rng.integers(0, len(X), size=int(rng.integers(1, 4)))]
            answer = infer(pods[version], {"id": f"r{i}", "inputs": [matrix_input(rows)]})
            assert answer.status_code == 200, answer.text
            predicted = answer.json()["outputs"][0]["data"]
            assert predicted == MODEL.predict(rows).tolist()
            made[version].append((f"r{i}", predicted))
        for version, url in pods.items():
            written = functools.partial(_value, url, "ciclo_feedback_store_recorded_total")
            count = len(made[version])
            wait_for(lambda w=written, n=count: w() == n, f"{version}'s predictions not written")
        truth: dict[str, list[int]] = {"v1": [], "v2": []}
        guess: dict[str, list[int]] = {"v1": [], "v2": []}
        for version, other in (("v1", b), ("v2", a)):  # every label to the other pod
            feedback = []
            for request_id, predicted in made[version]:
                labels = [p if rng.random() < 0.7 else int(rng.integers(0, 3)) for p in predicted]
                feedback.append({"id": request_id, "labels": labels})
                truth[version] += labels
                guess[version] += predicted
            answer = httpx.post(f"{other}/v2/models/iris/feedback", json={"feedback": feedback})
            assert answer.json() == {"matched": len(truth[version]), "late": 0}
        again = httpx.post(f"{a}/v2/models/iris/feedback", json=feedback[0])
        assert again.json() == {"matched": 0, "late": len(feedback[0]["labels"])}  # once only
        samples = [_families(url) for url in pods.values()]
        for version in ("v1", "v2"):
            t, g = truth[version], guess[version]

            def total(name: str, version: str = version, **labels: str) -> float:
                want = {"model": "iris", "version": version, **labels}
                return sum(
                    value
                    for pod in samples
                    for (n, key), value in pod.items()
                    if n == name and all(dict(key).get(k) == v for k, v in want.items())
                )

            matched = total("ciclo_feedback_total", outcome="matched")
            assert matched == len(t)
            assert total("ciclo_feedback_correct_total") / matched == accuracy_score(t, g)
            classes = sorted(set(t) | set(g))
            tp = [total("ciclo_class_true_positives_total", **{"class": str(c)}) for c in classes]
            pred = [total("ciclo_class_predicted_total", **{"class": str(c)}) for c in classes]
            act = [total("ciclo_class_actual_total", **{"class": str(c)}) for c in classes]
            p = [x / y if y else 0.0 for x, y in zip(tp, pred, strict=True)]
            r = [x / y if y else 0.0 for x, y in zip(tp, act, strict=True)]
            f = [2 * x / (y + z) if y + z else 0.0 for x, y, z in zip(tp, pred, act, strict=True)]
            assert np.mean(p) == pytest.approx(precision_score(t, g, average="macro"), abs=1e-12)
            assert np.mean(r) == pytest.approx(recall_score(t, g, average="macro"), abs=1e-12)
            assert np.mean(f) == pytest.approx(f1_score(t, g, average="macro"), abs=1e-12)
            # the pod that got the labels counted them, in its window too
            other = samples[0] if version == "v2" else samples[1]
            key = ("ciclo_window_accuracy", (("model", "iris"), ("version", version)))
            assert other[key] == pytest.approx(accuracy_score(t, g), abs=1e-12)
            # and the pods source, which a MonitorPolicy reads without Prometheus, finds them
            source = PodsSource({v: [f"{url}/metrics"] for v, url in pods.items()})
            reading = source.read(Query("ns", "iris", version, "1h", metric="accuracy"))
            assert reading.value == pytest.approx(accuracy_score(t, g), abs=1e-12)
            assert reading.samples == len(t)


def _value(url: str, name: str) -> float:
    return sum(v for (n, _), v in _families(url).items() if n == name)
