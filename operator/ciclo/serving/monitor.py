"""What the runtime measures about its model: predictions, late labels, quality, drift.

A request only queues what it answered (observe: an append under a small lock);
fold() counts the queue into the store, the windows and the counters in one go,
every FOLD_ROWS rows from an inference thread, and always before feedback is
matched or /metrics is read, so nothing anyone reads is stale. Per row, folding
256 at once costs a small part of what counting each request did (one binary
search per feature per fold, not per request), and the event loop never waits
for it: observe takes only the queue's lock, fold holds the windows' lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ciclo.drift.profile import Profile, value_key
from ciclo.drift.window import DriftWindow
from ciclo.serving.feedback import FeedbackError, Label, PredictionStore, QualityWindow
from ciclo.serving.metrics import RuntimeMetrics, Snapshot

KNOWN_CLASSES = 10_000
"""Class keys remembered at most (a regressor mistaken for a classifier would add one a row)."""
FOLD_ROWS = 256
"""Rows queued before an inference thread folds them: under 1% of one-row requests pay."""


@dataclass(frozen=True)
class Settings:
    quality_window: int = 1000
    drift_window: int = 1000
    feedback_capacity: int = 100_000
    feedback_max_age: float = 86_400.0


def class_keys(predictions: np.ndarray, known: dict[Any, str] | None = None) -> list[str]:
    """value_key of each prediction; `known` remembers them across calls (a classifier has
    few classes, and equal values have equal keys)."""
    known = {} if known is None else known
    keys = []
    for value in predictions.reshape(-1).tolist():
        key = known.get(value)
        if key is None:
            key = value_key(value)
            if len(known) < KNOWN_CLASSES:
                known[value] = key
        keys.append(key)
    return keys


_Observed = tuple[str, np.ndarray, np.ndarray, float]
"""(request id, inputs, predictions, when it was answered: the store's max_age counts
from there); a plain tuple, the cheapest record to make per request."""


class Monitor:
    def __init__(
        self,
        metrics: RuntimeMetrics,
        classifier: bool,
        profile: Profile | None = None,
        settings: Settings | None = None,
        fold_rows: int = FOLD_ROWS,
    ) -> None:
        settings = settings or Settings()
        self.metrics = metrics
        self.classifier = classifier
        self.store = PredictionStore(settings.feedback_capacity, settings.feedback_max_age)
        self.quality = QualityWindow(settings.quality_window)
        # binned at scrapes: at a few thousand requests a second most rows leave the window
        # between two scrapes, and those are never binned
        self.drift = DriftWindow(profile, settings.drift_window, lazy=True) if profile else None
        self.fold_rows = fold_rows
        self.lock = threading.Lock()  # the store and the windows
        self.queue_lock = threading.Lock()  # only the queue: observe never waits for a fold
        self.queue: list[_Observed] = []
        self.queued_rows = 0
        self.known_classes: dict[Any, str] = {}
        metrics.watch(self.snapshot, self.fold)

    def observe(self, request_id: str, matrix: np.ndarray, predictions: np.ndarray) -> None:
        """One answered request, queued for fold(); an input the drift window cannot take
        is refused here, so its own request fails rather than a later fold."""
        if self.drift is not None:
            self.drift.check(matrix, predictions)
        item = (request_id, matrix, predictions, self.store.clock())
        with self.queue_lock:
            self.queue.append(item)
            self.queued_rows += len(matrix)

    @property
    def due(self) -> bool:
        """Enough rows queued that an inference thread should fold them."""
        return self.queued_rows >= self.fold_rows

    def fold(self) -> None:
        """Count every queued request, in the order they were observed."""
        with self.lock:
            with self.queue_lock:
                queue, self.queue, self.queued_rows = self.queue, [], 0
            if queue:
                self._count(queue)

    def _count(self, queue: list[_Observed]) -> None:
        ids, matrices, answers, stamps = zip(*queue, strict=True)
        predictions = np.concatenate(answers, axis=None)  # flattened
        if self.classifier:
            keys = class_keys(predictions, self.known_classes)
            if len(keys) == len(queue):  # one row each, the usual case
                rows: Iterable[tuple[str, ...]] = zip(keys)
            else:
                cuts = np.cumsum([a.size for a in answers]).tolist()
                rows = (tuple(keys[a:b]) for a, b in zip([0, *cuts], cuts, strict=False))
            self.store.put_many(zip(ids, rows, stamps, strict=True))
            for name, count in Counter(keys).items():
                self.metrics.predictions.labels(*self.metrics.labels, name).inc(count)
        else:
            for value in predictions.astype(np.float64).tolist():
                self.metrics.prediction_value.observe(value)
        if self.drift is not None:
            matrix = np.concatenate(matrices) if len(matrices) > 1 else matrices[0]
            self.drift.add(matrix, predictions)

    def feedback(self, items: list[Label]) -> tuple[int, int]:
        """Match labels to stored predictions; (matched, late) label counts."""
        if not self.classifier:
            raise FeedbackError("feedback is for classifiers: this model's predictions are values")
        self.fold()  # every prediction answered so far can be matched
        late = 0
        pairs: list[tuple[str, str]] = []
        with self.lock:
            for item in items:  # check every item before taking any, so a 400 changes nothing
                entry = self.store.entries.get(item.request_id)
                if entry is not None and len(entry[1]) != len(item.labels):
                    raise FeedbackError(
                        f"feedback {item.request_id}: {len(item.labels)} labels for a request "
                        f"of {len(entry[1])} rows"
                    )
            for item in items:
                predicted = self.store.take(item.request_id)
                if predicted is None:
                    late += len(item.labels)
                else:
                    pairs.extend(zip(item.labels, predicted, strict=True))
            for actual, predicted_key in pairs:
                self.quality.add(actual, predicted_key)
            matched = len(pairs)
        m, labels = self.metrics, self.metrics.labels
        m.feedback.labels(*labels, "matched").inc(matched)
        m.feedback.labels(*labels, "late").inc(late)
        for actual, predicted_key in pairs:
            m.confusion.labels(*labels, actual, predicted_key).inc()
            m.class_actual.labels(*labels, actual).inc()
            m.class_predicted.labels(*labels, predicted_key).inc()
            if actual == predicted_key:
                m.correct.inc()
                m.true_positives.labels(*labels, actual).inc()
        return matched, late

    def snapshot(self) -> Snapshot:
        self.fold()
        with self.lock:
            quality = self.quality.quality() if self.classifier else None
            if self.drift is None:
                return Snapshot(quality, None, None, 0)
            stats = self.drift.drift()
            samples = self.drift.filled
        features = stats[: self.drift.n_features]
        prediction = stats[self.drift.n_features] if self.drift.has_prediction else None
        return Snapshot(quality, features, prediction, samples)
