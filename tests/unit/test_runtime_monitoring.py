"""Feedback, quality, drift and /metrics: pure parts against scikit-learn, then a real server."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from tests.unit.test_server import MODEL, X, Y, infer, matrix_input, serving

from ciclo.drift.profile import build_profile
from ciclo.drift.window import DriftWindow
from ciclo.serving.batching import Batcher
from ciclo.serving.feedback import (
    FeedbackError,
    Label,
    PredictionStore,
    QualityWindow,
    parse_feedback,
)
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor
from localcluster.paths import Paths

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("seed", range(5))
def test_window_quality_agrees_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=300)
    guess = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 5, size=300))  # 4: never true
    window = QualityWindow(size=200)
    for t, g in zip(truth, guess, strict=True):
        window.add(str(t), str(g))
    q = window.quality()
    t, g = truth[-200:], guess[-200:]  # the window keeps the last 200
    assert q.samples == 200
    assert abs(q.accuracy - accuracy_score(t, g)) < 1e-12
    assert abs(q.precision - precision_score(t, g, average="macro", zero_division=0)) < 1e-12
    assert abs(q.recall - recall_score(t, g, average="macro", zero_division=0)) < 1e-12
    assert abs(q.f1 - f1_score(t, g, average="macro", zero_division=0)) < 1e-12
    assert math.isnan(QualityWindow().quality().accuracy)


def test_the_prediction_store_is_bounded_by_rows_and_age() -> None:
    now = [0.0]
    store = PredictionStore(capacity=5, max_age=10.0, clock=lambda: now[0])
    store.put("a", ["1", "2"])
    store.put("b", ["1", "1", "1"])
    store.put("c", ["0"])  # 6 rows > 5: the oldest request goes
    assert store.take("a") is None
    assert store.take("b") == ["1", "1", "1"]
    assert store.take("b") is None, "a prediction is matched once"
    now[0] = 11.0
    assert store.take("c") is None, "older than max_age"
    assert store.rows == 0
    store.put("d", ["1"])
    now[0] = 20.0
    store.put("e", ["2"], stamp=19.0)  # answered at 19, stored later
    now[0] = 21.5
    store.put("f", ["0"])  # a put evicts what aged out too: d, stored at 11
    assert list(store.entries) == ["e", "f"] and store.rows == 2


def test_put_many_is_put_in_turn() -> None:
    rng = np.random.default_rng(7)
    items = [
        (f"r{rng.integers(0, 40)}", tuple(["1"] * int(rng.integers(1, 4))), float(i))
        for i in range(300)
    ]  # ids reused often, capacity exceeded throughout
    one, many = PredictionStore(capacity=50), PredictionStore(capacity=50)
    for request_id, keys, stamp in items:
        one.put(request_id, keys, stamp)
    many.put_many(items)
    assert list(one.entries.items()) == list(many.entries.items()) and one.rows == many.rows


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"labels": [1]}, "needs an 'id'"),
        ({"id": "x"}, "give 'labels'"),
        ({"id": "x", "labels": []}, "non-empty list"),
        ({"id": "x", "labels": [{"a": 1}]}, "numbers or strings"),
        ({"feedback": []}, "non-empty list"),
    ],
)
def test_malformed_feedback_is_named(body: Any, fragment: str) -> None:
    with pytest.raises(FeedbackError, match=fragment):
        parse_feedback(body)


def test_a_bad_request_in_a_batch_fails_alone() -> None:
    def run(matrices: list[np.ndarray]) -> list[float]:
        if any(np.isnan(m).any() for m in matrices):
            raise ValueError("nan")
        return [float(m.sum()) for m in matrices]

    async def main() -> list[Any]:
        batcher = Batcher(run, max_rows=64, max_delay=0.01)
        inputs = [np.full((1, 2), float(i)) for i in range(10)]
        inputs[4] = np.full((1, 2), np.nan)
        return await asyncio.gather(*(batcher.submit(m) for m in inputs), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[4], ValueError)
    assert [r for i, r in enumerate(results) if i != 4] == [2.0 * i for i in range(10) if i != 4]


def test_folding_in_batches_counts_exactly_what_observing_each_request_would() -> None:
    x = RNG.normal(size=(400, 3))
    predicted = (x[:, 0] > 0).astype(int)
    profile = build_profile({f"f{i}": x[:, i] for i in range(3)}, predictions=predicted)
    now = [0.0]
    metrics = RuntimeMetrics("m", "v1")
    monitor = Monitor(metrics, classifier=True, profile=profile, fold_rows=64)
    monitor.store.clock = lambda: now[0]
    each = DriftWindow(profile, size=1000)
    live = RNG.normal(0.3, size=(300, 3))
    for i in range(0, 300, 3):  # three-row requests; some folds happen, the rest waits
        now[0] = float(i)
        rows, guess = live[i : i + 3], (live[i : i + 3, 0] > 0).astype(int)
        monitor.observe(f"r{i}", rows, guess)
        each.add(rows, guess)
        if monitor.due:
            monitor.fold()
    assert monitor.queue, "the last requests are still queued"
    assert monitor.snapshot().drift == each.drift()[:3]  # a snapshot folds first
    text = metrics.exposition().decode()
    guessed = (live[:, 0] > 0).astype(int)
    assert f'ciclo_predictions_total{{class="1",model="m",version="v1"}} {guessed.sum()}.0' in text
    now[0] = monitor.store.max_age + 10  # r0 was answered at 0 and folded at 63: too old now
    monitor.observe("last", live[:1], guessed[:1])
    assert monitor.feedback([Label("last", ["1"]), Label("r0", ["1", "1", "1"])]) == (1, 3)
    with pytest.raises(ValueError, match="the profile has 3 features"):
        monitor.observe("wide", np.zeros((1, 4)), np.zeros(1))  # refused by its own request


def test_requests_queued_while_a_trip_runs_share_the_next_trip() -> None:
    trips: list[int] = []

    def run(matrices: list[np.ndarray]) -> list[float]:
        trips.append(len(matrices))
        return [float(m[0, 0]) for m in matrices]

    async def main() -> list[float]:
        batcher = Batcher(run, max_rows=4)
        alone = await batcher.submit(np.full((1, 1), -1.0))  # waits for nothing
        burst = await asyncio.gather(*(batcher.submit(np.full((1, 1), float(i))) for i in range(9)))
        return [alone, *burst]

    assert asyncio.run(main()) == [-1.0, *range(9)]
    assert trips == [1, 1, 4, 4], "each trip takes what queued meanwhile, up to max_rows"


def metrics_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in s.labels.items() if k not in ("model", "version"))
            )
            out[(s.name, labels)] = s.value
    return out


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ciclo serve` with a baseline built by `ciclo profile` from iris as CSV, with the model."""
    tmp = tmp_path_factory.mktemp("monitored")
    model = tmp / "iris.joblib"
    import joblib

    joblib.dump(MODEL, model)
    data = tmp / "train.csv"
    rows = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    rows += [",".join(map(str, [*x, y])) for x, y in zip(X, Y, strict=True)]
    data.write_text("\n".join(rows) + "\n")
    profile = subprocess.run(
        [
            sys.executable,
            "-m",
            "ciclo.cli.main",
            "profile",
            str(data),
            "--out",
            str(tmp / "p.json"),
            "--target",
            "species",
            "--model",
            str(model),
            "--format",
            "sklearn",
        ],
        capture_output=True,
        text=True,
    )
    assert profile.returncode == 0, profile.stderr
    assert "150 rows, 4 numeric and 0 categorical features, and the predictions" in profile.stdout
    args = ["--baseline", str(tmp / "p.json"), "--drift-window", "150", "--quality-window", "100"]
    with serving(tmp / "served.joblib", *args) as url:
        yield url


def test_feedback_quality_drift_and_metrics_on_a_real_server(monitored: str) -> None:
    predicted = MODEL.predict(X)
    truth = Y.copy()
    truth[::4] = (truth[::4] + 1) % 3  # a quarter of the labels disagree with the truth
    for start in range(0, 150, 10):  # ten-row requests with ids of our own
        body = {"id": f"r{start}", "inputs": [matrix_input(X[start : start + 10])]}
        assert infer(monitored, body).json()["id"] == f"r{start}"
    feedback = [{"id": f"r{s}", "labels": truth[s : s + 10].tolist()} for s in range(0, 140, 10)]
    response = httpx.post(f"{monitored}/v2/models/iris/feedback", json={"feedback": feedback})
    assert response.json() == {"matched": 140, "late": 0}
    late = httpx.post(
        f"{monitored}/v2/models/iris/feedback", json={"id": "never-served", "label": 1}
    )
    assert late.json() == {"matched": 0, "late": 1}
    wrong = httpx.post(f"{monitored}/v2/models/iris/feedback", json={"id": "r140", "labels": [1]})
    assert wrong.status_code == 400 and "1 labels for a request of 10 rows" in wrong.json()["error"]

    m = metrics_of(monitored)
    assert m[("ciclo_requests_total", (("outcome", "success"),))] == 15
    assert m[("ciclo_request_duration_seconds_count", ())] == 15
    assert m[("ciclo_feedback_total", (("outcome", "matched"),))] == 140
    assert m[("ciclo_feedback_total", (("outcome", "late"),))] == 1
    t, g = truth[:140], predicted[:140]
    assert m[("ciclo_feedback_correct_total", ())] == (t == g).sum()
    for c in range(3):
        key = (("class", str(c)),)
        assert m[("ciclo_predictions_total", key)] == (predicted == c).sum()
        assert m[("ciclo_class_true_positives_total", key)] == ((t == c) & (g == c)).sum()
        assert m[("ciclo_class_actual_total", key)] == (t == c).sum()
        assert m[("ciclo_class_predicted_total", key)] == (g == c).sum()
        assert (
            m.get(("ciclo_confusion_total", (("actual", str(c)), ("predicted", "0"))), 0)
            == ((t == c) & (g == 0)).sum()
        )
    wt, wg = t[-100:], g[-100:]  # the quality window holds the last 100 labels
    assert m[("ciclo_window_labelled_samples", ())] == 100
    assert abs(m[("ciclo_window_accuracy", ())] - accuracy_score(wt, wg)) < 1e-9
    assert abs(m[("ciclo_window_f1", ())] - f1_score(wt, wg, average="macro")) < 1e-9
    # the window holds the training data itself: no drift
    assert m[("ciclo_drift_window_samples", ())] == 150
    for feature in ("sepal_length", "petal_width"):
        assert m[("ciclo_drift_psi", (("feature", feature),))] < 1e-9
        assert m[("ciclo_drift_ks", (("feature", feature),))] < 1e-9
    assert m[("ciclo_prediction_drift_psi", ())] < 1e-9

    shifted = X.copy()
    shifted[:, 1] += 1.0  # sepal width, by more than two standard deviations
    infer(monitored, {"inputs": [matrix_input(shifted)]})
    m = metrics_of(monitored)
    assert m[("ciclo_drift_psi", (("feature", "sepal_width"),))] > 0.2
    assert m[("ciclo_drift_psi", (("feature", "sepal_length"),))] < 0.1


def test_promtool_accepts_the_exposition(monitored: str, tmp_path: Path) -> None:
    promtool = Paths.from_env().binary("promtool")  # built by `make tools`
    infer(monitored, {"inputs": [matrix_input(X[:3])]})
    text = httpx.get(f"{monitored}/metrics").text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_batching_gives_each_request_its_own_predictions(tmp_path: Path) -> None:
    with serving(
        tmp_path / "iris.joblib", "--max-batch-size", "64", "--max-batch-delay-ms", "5"
    ) as url:

        async def send() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/v2/models/iris/infer",
                            json={"inputs": [matrix_input(X[i : i + 3])]},
                        )
                        for i in range(0, 147, 3)
                    )
                )

        responses = asyncio.run(send())
        for i, response in zip(range(0, 147, 3), responses, strict=True):
            assert response.json()["outputs"][0]["data"] == MODEL.predict(X[i : i + 3]).tolist()
        bad = infer(url, {"inputs": [matrix_input(X[:2])], "outputs": [{"name": "nope"}]})
        assert bad.status_code == 400


def test_feedback_is_refused_when_monitoring_is_off(tmp_path: Path) -> None:
    with serving(tmp_path / "iris.joblib", "--no-monitoring") as url:
        response = httpx.post(f"{url}/v2/models/iris/feedback", json={"id": "a", "label": 1})
        assert response.status_code == 404 and "--no-monitoring" in response.json()["error"]
        assert "ciclo_requests_total" in httpx.get(f"{url}/metrics").text
