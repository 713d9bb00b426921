"""What the runtime measures about its model: predictions, late labels, quality, drift.

Called from inference threads and the event loop alike, so one lock guards the
windows; the work under it is a few counter updates and a binary search per
feature, and the statistics wait for a scrape.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ciclo.drift.profile import Profile, value_key
from ciclo.drift.window import DriftWindow
from ciclo.serving.feedback import FeedbackError, Label, PredictionStore, QualityWindow
from ciclo.serving.metrics import RuntimeMetrics, Snapshot


@dataclass(frozen=True)
class Settings:
    quality_window: int = 1000
    drift_window: int = 1000
    feedback_capacity: int = 100_000
    feedback_max_age: float = 86_400.0


def class_keys(predictions: np.ndarray) -> list[str]:
    """value_key of each prediction, computed once per distinct value."""
    flat = predictions.reshape(-1)
    if flat.size == 1:
        return [value_key(flat[0])]
    values, inverse = np.unique(flat, return_inverse=True)
    keys = [value_key(v) for v in values]
    return [keys[i] for i in inverse.reshape(-1)]


class Monitor:
    def __init__(
        self,
        metrics: RuntimeMetrics,
        classifier: bool,
        profile: Profile | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = settings or Settings()
        self.metrics = metrics
        self.classifier = classifier
        self.store = PredictionStore(settings.feedback_capacity, settings.feedback_max_age)
        self.quality = QualityWindow(settings.quality_window)
        self.drift = DriftWindow(profile, settings.drift_window) if profile else None
        self.lock = threading.Lock()
        metrics.watch(self.snapshot)

    def observe(self, request_id: str, matrix: np.ndarray, predictions: np.ndarray) -> None:
        """One answered request: remember its predictions for feedback, count them, window them."""
        keys = class_keys(predictions) if self.classifier else None
        with self.lock:
            if keys is not None:
                self.store.put(request_id, keys)
            if self.drift is not None:
                self.drift.add(matrix, predictions)
        if keys is not None:
            for key, count in zip(*np.unique(keys, return_counts=True), strict=True):
                self.metrics.predictions.labels(*self.metrics.labels, key).inc(int(count))
        else:
            for value in predictions.reshape(-1).astype(np.float64):
                self.metrics.prediction_value.observe(float(value))

    def feedback(self, items: list[Label]) -> tuple[int, int]:
        """Match labels to stored predictions; (matched, late) label counts."""
        if not self.classifier:
            raise FeedbackError("feedback is for classifiers: this model's predictions are values")
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
        with self.lock:
            quality = self.quality.quality() if self.classifier else None
            if self.drift is None:
                return Snapshot(quality, None, None, 0)
            stats = self.drift.drift()
            samples = self.drift.filled
        features = stats[: self.drift.n_features]
        prediction = stats[self.drift.n_features] if self.drift.has_prediction else None
        return Snapshot(quality, features, prediction, samples)
