"""`ciclo evaluate`'s scoring (serving/scoring.py), checked against scikit-learn's metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from ciclo.api.promotion import EvaluationRecord
from ciclo.cli.main import main
from ciclo.serving import scoring


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 5, 500))
    got = scoring.classification(truth.astype(float), predicted)
    assert got.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    for name, fn in (
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ):
        want = fn(truth, predicted, average="macro", zero_division=0)
        assert got.metrics[name] == pytest.approx(want), name
    report = metrics.classification_report(truth, predicted, output_dict=True, zero_division=0)
    for row in got.classes:
        assert row["support"] == report[row["label"]]["support"]
        assert row["f1"] == pytest.approx(report[row["label"]]["f1-score"])


def test_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=300)
    predicted = truth + rng.normal(scale=0.3, size=300)
    got = scoring.regression(truth, predicted).metrics
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert got["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    assert got["r2"] == pytest.approx(metrics.r2_score(truth, predicted))


def test_the_result_fits_a_termination_message() -> None:
    labels = np.arange(200) % 100  # 100 classes: more than a message holds
    scores = scoring.classification(labels, labels)
    out = scoring.result(scores, scores, "v1", 200)
    assert len(scoring.compact(out).encode()) <= scoring.MESSAGE_LIMIT
    assert out["classes"] and len(out["classes"]) <= scoring.CLASSES_KEPT


def test_a_missing_target_column_says_so() -> None:
    with pytest.raises(scoring.ScoringError, match="no target column 'label'"):
        scoring.split({"a": np.zeros(3), "y": np.zeros(3)}, "label")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ciclo_evaluate_scores_both_on_the_same_rows(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    good = LogisticRegression(max_iter=500).fit(x, y)
    weak = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y)
    joblib.dump(good, tmp_path / "good.joblib")
    joblib.dump(weak, tmp_path / "weak.joblib")
    rows = ["a,b,c,d,species"] + [",".join(map(str, [*r, t])) for r, t in zip(x, y, strict=True)]
    (tmp_path / "eval.csv").write_text("\n".join(rows) + "\n")
    work, result = tmp_path / "work", tmp_path / "result.json"
    code = main(
        [
            "evaluate",
            *("--dataset", (tmp_path / "eval.csv").as_uri()),
            *("--dataset-sha256", _sha(tmp_path / "eval.csv")),
            *("--target", "species"),
            *("--candidate", (tmp_path / "weak.joblib").as_uri()),
            *("--candidate-sha256", _sha(tmp_path / "weak.joblib")),
            *("--candidate-format", "sklearn"),
            *("--champion", (tmp_path / "good.joblib").as_uri()),
            *("--champion-sha256", _sha(tmp_path / "good.joblib")),
            *("--champion-format", "sklearn"),
            *("--champion-version", "v1"),
            *("--workdir", str(work), "--result", str(result), "--latency-rows", "20"),
        ]
    )
    assert code == 0
    raw = json.loads(result.read_text())
    record = EvaluationRecord.model_validate({**raw, "finishedAt": "2026-01-01T00:00:00Z"})
    by = {m.metric: m for m in record.metrics}
    assert record.rows == 150 and record.champion == "v1"
    assert by["accuracy"].candidate == pytest.approx(metrics.accuracy_score(y, weak.predict(x)))
    assert by["accuracy"].champion == pytest.approx(metrics.accuracy_score(y, good.predict(x)))
    assert by["accuracy"].delta == pytest.approx(
        by["accuracy"].candidate - by["accuracy"].champion, abs=1e-5
    )
    assert by["latency_p99_ms"].candidate > 0 and len(record.classes) == 3


def test_ciclo_evaluate_refuses_a_wrong_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "eval.csv").write_text("a,y\n1,0\n")
    code = main(
        [
            "evaluate",
            *("--dataset", (tmp_path / "eval.csv").as_uri(), "--dataset-sha256", "0" * 64),
            *("--candidate", "file:///nowhere", "--candidate-sha256", "0" * 64),
            *("--candidate-format", "sklearn", "--workdir", str(tmp_path)),
        ]
    )
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("ciclo evaluate: sha256")
