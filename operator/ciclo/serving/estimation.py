"""CBPE in the runtime: accuracy and F1 estimated from the last predictions' probabilities.

A request only appends its probabilities (the model computes them for every request
anyway); they are folded into a window of the last `size` rows in batches, and the
estimate (ciclo.drift.cbpe) is computed when /metrics is scraped, like the other
windowed statistics. Exported as ciclo_estimated_accuracy, ciclo_estimated_f1 and
ciclo_estimation_window_samples, for a profile with a calibration (docs/cbpe.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ciclo.drift.cbpe import Calibration, estimate

Estimate = tuple[float, float, int]
"""(accuracy, macro F1, rows estimated from)."""


class Estimator:
    """The last `size` rows of predicted probabilities, and CBPE's estimate over them."""

    def __init__(self, calibration: Calibration, size: int = 1000) -> None:
        self.calibration = calibration
        self.size = size
        self.width = len(calibration.classes)
        self.window = np.zeros((size, self.width))
        self.next = 0
        self.filled = 0
        self.lock = threading.Lock()
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0

    def add(self, proba: np.ndarray) -> None:
        """One request's probabilities (rows x classes, or a binary model's P(positive))."""
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim == 1:
            p = np.column_stack([1 - p, p])
        if p.ndim != 2 or p.shape[1] != self.width:
            return  # not this calibration's classes: nothing to estimate from
        with self.lock:
            self.pending.append(p)
            self.pending_rows += len(p)
            if self.pending_rows >= self.size:
                self._fold()

    def _fold(self) -> None:
        if not self.pending:
            return
        rows = np.concatenate(self.pending)[-self.size :]
        self.pending, self.pending_rows = [], 0
        n = len(rows)
        end = self.next + n
        if end <= self.size:
            self.window[self.next : end] = rows
        else:
            first = self.size - self.next
            self.window[self.next :] = rows[:first]
            self.window[: n - first] = rows[first:]
        self.next = end % self.size
        self.filled = min(self.size, self.filled + n)

    def estimate(self) -> Estimate | None:
        """None until a prediction has been made."""
        with self.lock:
            self._fold()
            if self.filled == 0:
                return None
            rows = self.window[: self.filled].copy()
        accuracy, f1 = estimate(self.calibration, rows)
        return accuracy, f1, len(rows)


class EstimateCollector(Collector):
    """The estimate's gauges, computed at scrape time."""

    def __init__(self, labels: tuple[str, str], current: Callable[[], Estimate | None]) -> None:
        self.labels = list(labels)
        self.current = current

    def collect(self) -> Iterable[Metric]:
        found = self.current()
        if found is None:
            return
        accuracy, f1, rows = found
        for name, text, value in (
            ("estimated_accuracy", "Accuracy estimated by CBPE from the probabilities", accuracy),
            ("estimated_f1", "F1, macro-averaged, estimated by CBPE", f1),
            ("estimation_window_samples", "Predictions in the CBPE window", float(rows)),
        ):
            family = GaugeMetricFamily(f"ciclo_{name}", text, labels=["model", "version"])
            family.add_metric(self.labels, value)
            yield family
