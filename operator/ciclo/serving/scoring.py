"""`ciclo evaluate`: a candidate and the champion scored on the same labelled rows.

The evaluation Job's work. It fetches the dataset and both artifacts (each checked
against its sha256, as the serving pods' fetch does), loads them with the runtime's own
loaders, predicts every row with both, and writes one compact JSON result (the
operator reads it back as the container's termination message, at most 4096 bytes).
Precision, recall and F1 are macro averages over the classes the rows hold, as
scikit-learn's `average="macro"` computes them; latency is per row, one row per call.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ciclo.drift.profile import value_key
from ciclo.drift.table import read_csv, read_parquet
from ciclo.serving.artifacts import fetch
from ciclo.serving.loaders import Predictor, load

MESSAGE_LIMIT = 4096
"""What Kubernetes keeps of a termination message."""
CLASSES_KEPT = 8


class ScoringError(Exception):
    """The rows cannot be scored (a missing target column, no rows). str() is one line."""


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, float]
    classes: list[dict[str, Any]]


def classification(truth: np.ndarray, predicted: np.ndarray) -> Scores:
    """Accuracy, macro precision/recall/F1 and per-class figures, over the labels in
    either array (what scikit-learn's classification_report counts)."""
    t = np.asarray([value_key(v) for v in truth], dtype=object)
    p = np.asarray([value_key(v) for v in predicted], dtype=object)
    labels = sorted(set(t.tolist()) | set(p.tolist()))
    rows = []
    for label in labels:
        tp = float(np.sum((t == label) & (p == label)))
        predicted_n = float(np.sum(p == label))
        support = int(np.sum(t == label))
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {"label": label, "support": support, "precision": precision, "recall": recall, "f1": f1}
        )
    n = len(labels) or 1
    metrics = {
        "accuracy": float(np.mean(t == p)) if len(t) else 0.0,
        "precision": sum(r["precision"] for r in rows) / n,
        "recall": sum(r["recall"] for r in rows) / n,
        "f1": sum(r["f1"] for r in rows) / n,
    }
    return Scores(metrics, rows)


def regression(truth: np.ndarray, predicted: np.ndarray) -> Scores:
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    error = p - t
    total = float(np.sum((t - t.mean()) ** 2))
    return Scores(
        {
            "mae": float(np.mean(np.abs(error))),
            "rmse": float(math.sqrt(np.mean(error**2))),
            "r2": 1.0 - float(np.sum(error**2)) / total if total else 0.0,
        },
        [],
    )


def latency_ms(predictor: Predictor, x: np.ndarray, rows: int) -> dict[str, float]:
    """p50 and p99 of one-row predictions over the first `rows` rows, in milliseconds."""
    times = []
    for i in range(min(rows, len(x))):
        start = time.perf_counter()
        predictor.predict(x[i : i + 1])
        times.append((time.perf_counter() - start) * 1000)
    if not times:
        return {}
    return {
        "latency_p50_ms": float(np.percentile(times, 50)),
        "latency_p99_ms": float(np.percentile(times, 99)),
    }


def split(table: dict[str, np.ndarray], target: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (every column but the target, in file order) and the target."""
    if target not in table:
        raise ScoringError(f"no target column {target!r}: the columns are {', '.join(table)}")
    features = [c for c in table if c != target]
    if not features:
        raise ScoringError("no feature columns besides the target")
    n = len(table[target])
    if n == 0:
        raise ScoringError("the dataset has no rows")
    x = np.column_stack([np.asarray(table[c], dtype=np.float64) for c in features])
    return x, table[target]


def score(predictor: Predictor, x: np.ndarray, y: np.ndarray, task: str, rows: int) -> Scores:
    predicted = predictor.predict(x)
    scores = classification(y, predicted) if task == "classification" else regression(y, predicted)
    return Scores({**scores.metrics, **latency_ms(predictor, x, rows)}, scores.classes)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _classes(rows: list[dict[str, Any]], kept: int) -> list[dict[str, Any]]:
    largest = sorted(rows, key=lambda r: (-r["support"], r["label"]))[:kept]
    return [
        {k: _round(v) if isinstance(v, float) else v for k, v in r.items()}
        | {"label": str(r["label"])[:64]}
        for r in largest
    ]


def result(
    candidate: Scores,
    champion: Scores | None,
    champion_version: str | None,
    rows: int,
    **extra: Any,
) -> dict[str, Any]:
    """The record the operator stores (ciclo.api.promotion.EvaluationRecord's camelCase)."""
    metrics = []
    for name, value in candidate.metrics.items():
        entry: dict[str, Any] = {"metric": name, "candidate": _round(value)}
        if champion is not None and name in champion.metrics:
            entry["champion"] = _round(champion.metrics[name])
            entry["delta"] = _round(value - champion.metrics[name])
        metrics.append(entry)
    out: dict[str, Any] = {"rows": rows, "metrics": metrics, **extra}
    if champion_version:
        out["champion"] = champion_version
    kept = CLASSES_KEPT
    while True:
        out["classes"] = _classes(candidate.classes, kept)
        out["championClasses"] = _classes(champion.classes, kept) if champion else []
        if len(compact(out).encode()) <= MESSAGE_LIMIT or kept == 0:
            return out
        kept -= 1


def compact(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


@dataclass(frozen=True)
class Artifact:
    uri: str
    sha256: str
    format: str


def evaluate(
    dataset: Artifact,
    target: str,
    task: str,
    candidate: Artifact,
    champion: Artifact | None,
    champion_version: str | None,
    workdir: Path,
    latency_rows: int = 1000,
) -> dict[str, Any]:
    """Fetch, load, score both; the result record."""
    start = time.monotonic()
    suffix = "parquet" if dataset.format == "parquet" else "csv"
    data_path = workdir / f"dataset.{suffix}"
    fetch(dataset.uri, data_path, dataset.sha256)
    table = read_parquet(data_path) if suffix == "parquet" else read_csv(data_path)
    x, y = split(table, target)
    loaded = []
    for role, artifact in (("candidate", candidate), ("champion", champion)):
        if artifact is None:
            continue
        path = workdir / f"{role}.{artifact.format}"
        fetch(artifact.uri, path, artifact.sha256)
        loaded.append(load(path, artifact.format))
    scores = [score(p, x, y, task, latency_rows) for p in loaded]
    return result(
        scores[0],
        scores[1] if len(scores) > 1 else None,
        champion_version,
        len(y),
        datasetSha256=dataset.sha256,
        seconds=round(time.monotonic() - start, 3),
    )
