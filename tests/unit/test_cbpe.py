"""CBPE (ciclo.drift.cbpe): the calibration against scikit-learn's isotonic regression,
the estimate against an independent computation and against realised accuracy under
covariate shift, the profile that stores it, and the runtime that exports it.

NannyML's own CBPE is compared in test_cbpe_nannyml.py, from a virtualenv of its own."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ciclo.cli.main import main
from ciclo.drift import cbpe
from ciclo.drift.profile import Profile, build_profile
from ciclo.monitoring.sources import Sample, combine
from ciclo.serving.estimation import Estimator
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor


def shifted_data(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose P(label | x) never changes; `shift` moves x's distribution."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[shift, -shift / 2, 0.0], scale=1.0, size=(n, 3))
    logits = np.column_stack([1.5 * x[:, 0], 1.2 * x[:, 1] - 0.5, 0.8 * x[:, 2] + 0.3 * x[:, 0]])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return x, y


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray]:
    x_train, y_train = shifted_data(4000, 0.0, 1)
    model = LogisticRegression(max_iter=500).fit(x_train[:, :2], y_train)  # a model that misses
    x_ref, y_ref = shifted_data(4000, 0.0, 2)
    proba = model.predict_proba(x_ref[:, :2])
    cal = cbpe.fit(proba, [str(v) for v in y_ref], ["0", "1", "2"])
    return model, cal, x_ref, y_ref


def test_isotonic_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=3000).round(3)  # ties, as probabilities have
    y = (rng.uniform(size=3000) < x**2).astype(float)
    bx, by = cbpe.isotonic(x, y)
    ours = np.interp(np.linspace(-0.1, 1.1, 500), bx, by)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(np.linspace(-0.1, 1.1, 500))
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert np.all(np.diff(by) >= 0)


def reference_estimate(
    proba_ref: np.ndarray, y_ref: np.ndarray, proba: np.ndarray
) -> tuple[float, float]:
    """CBPE written out independently: scikit-learn's isotonic regression per class,
    rows renormalised, then the expected confusion matrix."""
    k = proba_ref.shape[1]
    c = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            .fit(proba_ref[:, j], (y_ref == j).astype(float))
            .predict(proba[:, j])
            for j in range(k)
        ]
    )
    c = c / c.sum(axis=1, keepdims=True)
    predicted = proba.argmax(axis=1)
    accuracy = float(np.mean([c[i, predicted[i]] for i in range(len(c))]))
    f1s = []
    for j in range(k):
        tp = sum(c[i, j] for i in range(len(c)) if predicted[i] == j)
        fp = sum(1 - c[i, j] for i in range(len(c)) if predicted[i] == j)
        fn = sum(c[i, j] for i in range(len(c)) if predicted[i] != j)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return accuracy, float(np.mean(f1s))


def test_the_estimate_is_the_reference_computation(
    fitted: tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray],
) -> None:
    model, cal, x_ref, y_ref = fitted
    x, _ = shifted_data(1500, 1.0, 3)
    proba = model.predict_proba(x[:, :2])
    ours = cbpe.estimate(cal, proba)
    theirs = reference_estimate(model.predict_proba(x_ref[:, :2]), y_ref, proba)
    assert ours == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.75, 1.5])
def test_the_estimate_follows_realised_quality_under_covariate_shift(
    fitted: tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray], shift: float
) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    model, cal, _, _ = fitted
    x, y = shifted_data(5000, shift, 10 + int(shift * 4))
    proba = model.predict_proba(x[:, :2])
    accuracy, f1 = cbpe.estimate(cal, proba)
    predicted = proba.argmax(axis=1)
    assert accuracy == pytest.approx(accuracy_score(y, predicted), abs=0.025)
    assert f1 == pytest.approx(f1_score(y, predicted, average="macro"), abs=0.03)


def test_accuracy_moves_with_the_shift(
    fitted: tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray],
) -> None:
    """The estimate is not a constant: it sees the shift move accuracy."""
    model, cal, _, _ = fitted
    estimates = [
        cbpe.estimate(cal, model.predict_proba(shifted_data(3000, s, 7)[0][:, :2]))[0]
        for s in (0.0, 1.5)
    ]
    assert abs(estimates[0] - estimates[1]) > 0.03


def test_binary_calibration_is_one_map_for_the_positive_class() -> None:
    rng = np.random.default_rng(4)
    p1 = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < p1).astype(int)
    cal = cbpe.fit(np.column_stack([1 - p1, p1]), [str(v) for v in y], ["0", "1"])
    assert len(cal.x) == 1
    accuracy, _ = cbpe.estimate(cal, p1)  # a 1-D P(positive) is taken too
    assert accuracy == pytest.approx(np.mean(np.maximum(p1, 1 - p1)), abs=0.03)


def test_fit_refuses_labels_that_are_not_classes() -> None:
    with pytest.raises(ValueError, match="not classes of the model"):
        cbpe.fit(np.full((2, 2), 0.5), ["0", "7"], ["0", "1"])


def test_the_profile_stores_the_calibration(
    tmp_path: Path, fitted: tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray]
) -> None:
    _, cal, _, _ = fitted
    profile = build_profile({"a": np.arange(10.0)}).model_copy(update={"calibration": cal})
    profile.save(tmp_path / "p.json")
    assert Profile.load(tmp_path / "p.json").calibration == cal
    assert all(len(x) <= cbpe.MAX_POINTS for x in cal.x)


def test_ciclo_profile_calibrates_a_classifier_on_its_labels(tmp_path: Path) -> None:
    x, y = shifted_data(600, 0.0, 5)
    model = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(model, tmp_path / "model.joblib")
    rows = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(x, y, strict=True)]
    (tmp_path / "ref.csv").write_text("\n".join(rows) + "\n")
    code = main(
        [
            "profile",
            str(tmp_path / "ref.csv"),
            "--out",
            str(tmp_path / "profile.json"),
            "--target",
            "label",
            "--model",
            str(tmp_path / "model.joblib"),
            "--format",
            "sklearn",
        ]
    )
    assert code == 0
    stored = json.loads((tmp_path / "profile.json").read_text())["calibration"]
    assert stored["classes"] == ["0", "1", "2"] and stored["rows"] == 600
    cal = cbpe.Calibration.model_validate(stored)
    expected = reference_estimate(model.predict_proba(x), y, model.predict_proba(x))
    assert cbpe.estimate(cal, model.predict_proba(x)) == pytest.approx(expected, abs=1e-9)


def test_the_estimator_keeps_the_last_rows() -> None:
    cal = cbpe.Calibration(classes=["0", "1"], x=[[0.0, 1.0]], y=[[0.0, 1.0]], rows=2)
    est = Estimator(cal, size=4)
    assert est.estimate() is None
    for p in (0.9, 0.9, 0.9, 0.9, 0.6, 0.6):  # the first two fall out of the window
        est.add(np.array([[1 - p, p]]))
    accuracy, _, rows = est.estimate() or (0.0, 0.0, 0)
    assert rows == 4
    assert accuracy == pytest.approx((0.9 + 0.9 + 0.6 + 0.6) / 4)
    est.add(np.zeros((1, 3)))  # another model's width: ignored
    assert (est.estimate() or (0, 0, 0))[2] == 4


def test_the_runtime_exports_the_estimate(
    fitted: tuple[LogisticRegression, cbpe.Calibration, np.ndarray, np.ndarray],
) -> None:
    model, cal, _, _ = fitted
    metrics = RuntimeMetrics("iris", "v1")
    profile = build_profile({"a": np.arange(10.0), "b": np.arange(10.0)})
    monitor = Monitor(metrics, True, profile.model_copy(update={"calibration": cal}))
    x, _ = shifted_data(300, 1.0, 9)
    proba = model.predict_proba(x[:, :2])
    for i in range(300):
        monitor.observe(f"r{i}", x[i : i + 1, :2], proba[i].argmax(keepdims=True), proba[i : i + 1])
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    (sample,) = families["ciclo_estimated_accuracy"].samples
    assert sample.labels == {"model": "iris", "version": "v1"}
    assert sample.value == pytest.approx(cbpe.estimate(cal, proba)[0])
    assert families["ciclo_estimation_window_samples"].samples[0].value == 300
    assert "ciclo_estimated_f1" in families


def test_no_calibration_no_estimate() -> None:
    metrics = RuntimeMetrics("m", "v1")
    Monitor(metrics, True, build_profile({"a": np.arange(10.0)}))
    assert b"ciclo_estimated" not in metrics.exposition()


def test_the_pods_source_weights_each_pod_by_its_window() -> None:
    pods = [
        [
            Sample("ciclo_estimated_accuracy", {}, 0.9),
            Sample("ciclo_estimation_window_samples", {}, 300.0),
        ],
        [
            Sample("ciclo_estimated_accuracy", {}, 0.6),
            Sample("ciclo_estimation_window_samples", {}, 100.0),
        ],
    ]
    reading = combine("estimated_accuracy", None, pods)
    assert reading.value == pytest.approx((0.9 * 300 + 0.6 * 100) / 400)
    assert reading.samples == 400
