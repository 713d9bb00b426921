"""The metric sources against a real runtime: `ciclo serve` answering requests and feedback,
a real Prometheus scraping it, every built-in metric's PromQL run for real."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from prometheus_process import Prometheus, free_port, prometheus, static_config
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from tests.unit.test_server import MODEL, X, infer, matrix_input, serving
from waiting import wait_for

from ciclo.monitoring.sources import PodsSource, PrometheusSource, Query

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(7)
PREDICTED = MODEL.predict(X)
# labels: the truth for 60% of rows, a wrong class for the rest
WRONG = RNG.random(len(X)) < 0.4
LABELS = np.where(WRONG, (PREDICTED + 1) % 3, PREDICTED)
# a third round of inputs shifted on one feature, so drift is measurable
SHIFTED = X.copy()
SHIFTED[:, 2] += 3.0


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("runtime")
    data = home / "train.csv"
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    data.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in X))
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "ciclo.cli.main",
            "profile",
            str(data),
            "--out",
            str(home / "p.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    with serving(home / "iris.joblib", "--baseline", str(home / "p.json")) as url:
        yield url


def send(url: str, rows: np.ndarray, labels: np.ndarray | None, tag: str) -> None:
    """One request per row with its id, then the true labels as one feedback batch."""
    for i, row in enumerate(rows):
        body = {"id": f"{tag}-{i}", "inputs": [matrix_input(row.reshape(1, -1))]}
        assert infer(url, body).status_code == 200
    if labels is None:
        return
    feedback = [{"id": f"{tag}-{i}", "label": int(label)} for i, label in enumerate(labels)]
    answer = httpx.post(f"{url}/v2/models/iris/feedback", json={"feedback": feedback}, timeout=10)
    assert answer.json() == {"matched": len(labels), "late": 0}, answer.text


@pytest.fixture(scope="module")
def prom(runtime: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    target = runtime.removeprefix("http://")
    config = static_config([target], {"namespace": "test"})
    with prometheus(tmp_path_factory.mktemp("prometheus"), config) as p:
        wait_for("a first scrape", lambda: p.scrapes() >= 2, timeout=30)
        # Two identical rounds: whichever part of them a window holds, its quality is the same,
        # and series created by the first round are present for increase() in the second.
        send(runtime, X, LABELS, "a")
        before = p.scrapes()
        wait_for("scrapes after round a", lambda: p.scrapes() >= before + 2, timeout=30)
        send(runtime, X, LABELS, "b")
        send(runtime, SHIFTED, None, "c")  # drift only: no labels
        before = p.scrapes()
        wait_for("scrapes after rounds b, c", lambda: p.scrapes() >= before + 2, timeout=30)
        yield p


def q(metric: str | None = None, promql: str | None = None, feature: str | None = None) -> Query:
    return Query("test", "iris", "v1", "5m", metric, promql, feature)


def test_quality_through_prometheus_matches_scikit_learn(prom: Prometheus) -> None:
    source = PrometheusSource(prom.url)
    expected = {
        "accuracy": accuracy_score(LABELS, PREDICTED),
        "precision": precision_score(LABELS, PREDICTED, average="macro", zero_division=0),
        "recall": recall_score(LABELS, PREDICTED, average="macro", zero_division=0),
        "f1": f1_score(LABELS, PREDICTED, average="macro", zero_division=0),
    }
    for metric, value in expected.items():
        reading = source.read(q(metric))
        assert reading.error is None, reading.error
        assert reading.value == pytest.approx(value, abs=1e-9), metric
        assert reading.samples is not None and reading.samples >= len(X), metric
    assert 0.3 < expected["accuracy"] < 0.8  # the labels really are 40% wrong


def test_error_rate_latency_and_drift_through_prometheus(prom: Prometheus, runtime: str) -> None:
    source = PrometheusSource(prom.url)
    errors = source.read(q("error_rate"))
    assert (errors.value, errors.error) == (0.0, None)
    latency = source.read(q("latency_p99"))
    assert latency.value is not None and 0 < latency.value < 1
    pods = PodsSource({"v1": [f"{runtime}/metrics"]})
    # the drift gauges as Prometheus last scraped them and as the pod says now agree
    for metric, feature in (
        ("feature_drift_psi", None),
        ("feature_drift_psi", "petal_length"),
        ("feature_drift_ks", None),
    ):
        via_prometheus = source.read(q(metric, feature=feature))
        direct = pods.read(q(metric, feature=feature))
        assert via_prometheus.value is not None and direct.value is not None
        assert via_prometheus.value == pytest.approx(direct.value, rel=1e-9), metric
        assert direct.samples == 3 * len(X)
    psi_shifted = source.read(q("feature_drift_psi", feature="petal_length")).value
    psi_same = source.read(q("feature_drift_psi", feature="sepal_width")).value
    assert psi_shifted is not None and psi_same is not None and psi_shifted > 0.2 > psi_same


def test_the_pods_source_reads_the_runtime_window(runtime: str, prom: Prometheus) -> None:
    reading = PodsSource({"v1": [f"{runtime}/metrics"]}).read(q("accuracy"))
    assert reading.value == pytest.approx(accuracy_score(LABELS, PREDICTED))
    assert reading.samples == 2 * len(X)
    assert PodsSource({}).read(q("accuracy")).value is None  # no Ready pod: NoData
    assert PodsSource({"v1": [f"{runtime}/metrics"]}).read(q(promql="up")).error


def test_a_rules_own_promql_and_query_failures(prom: Prometheus) -> None:
    source = PrometheusSource(prom.url)
    own = source.read(
        q(promql='sum(ciclo_drift_window_samples{namespace="{{namespace}}",model="{{model}}"})')
    )
    assert (own.value, own.samples) == (3 * len(X), None)
    assert source.read(q(promql="sum(")).error.startswith("prometheus answered 400")
    assert "not one" in (source.read(q(promql="ciclo_drift_psi")).error or "")
    empty = source.read(q(promql='ciclo_window_accuracy{model="nope"}'))
    assert (empty.value, empty.error) == (None, None)
    down = PrometheusSource(f"http://127.0.0.1:{free_port()}").read(q("accuracy"))
    assert down.error and "unreachable" in down.error
