"""A sliding window of recent inputs (and predictions), kept as counts in the profile's bins.

Adding rows costs a binary search per value; a row leaving the window subtracts
the bins it was counted in, remembered in a ring buffer of bin indices. The
statistics then cost O(bins) per feature, whatever the window's size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ciclo.drift.profile import CategoricalFeature, NumericFeature, Profile, value_key
from ciclo.drift.statistics import (
    frequencies,
    js_distance,
    ks_bin_index,
    ks_from_counts,
    ks_reference_cdf,
    psi,
)


@dataclass(frozen=True)
class Drift:
    """One feature's statistics over the window; ks for numeric, js for categorical."""

    feature: str
    psi: float
    ks: float | None
    js: float | None


class _Encoder:
    """Values of one feature -> (PSI bin, KS bin or -1), as offsets into flat count arrays."""

    def __init__(self, feature: NumericFeature | CategoricalFeature) -> None:
        self.feature = feature
        self.reference = np.asarray(feature.reference)
        self.psi_bins = self.reference.size
        if isinstance(feature, NumericFeature):
            self.edges = np.asarray(feature.edges)
            self.support = np.asarray(feature.support)
            self.ks_cdf = ks_reference_cdf(np.asarray(feature.support_cdf))
            self.ks_bins = self.ks_cdf.size
        else:
            self.ks_bins = 0
            self.index = {c: i for i, c in enumerate(feature.categories)}
            numbers = [_as_number(c) for c in feature.categories]
            # integer-coded categories (the usual case: tensors are numbers) are looked up
            # with one vectorised search; other keys go through the dict
            self.numeric = all(n is not None for n in numbers)
            if self.numeric:
                order = np.argsort(np.asarray(numbers, dtype=np.float64))
                self.sorted_codes = np.asarray(numbers, dtype=np.float64)[order]
                self.sorted_index = order

    def psi_bin(self, values: np.ndarray) -> np.ndarray:
        if isinstance(self.feature, NumericFeature):
            return np.searchsorted(self.edges, np.asarray(values, np.float64), side="right")
        other = len(self.feature.categories)
        if self.numeric and values.dtype.kind in "iufb":
            x = np.asarray(values, np.float64)
            pos = np.minimum(np.searchsorted(self.sorted_codes, x), self.sorted_codes.size - 1)
            hit = self.sorted_codes[pos] == x
            return np.where(hit, self.sorted_index[pos], other)
        return np.asarray([self.index.get(value_key(v), other) for v in values])

    def ks_bin(self, values: np.ndarray) -> np.ndarray:
        return ks_bin_index(np.asarray(values, np.float64), self.support)


def _count(counts: np.ndarray, index: np.ndarray, sign: int) -> None:
    """counts[i] += sign for each i in index (repeats add up)."""
    if index.size * 8 > counts.size:  # dense: one pass over all bins beats scattered adds
        counts += sign * np.bincount(index.ravel(), minlength=counts.size)
    else:
        np.add.at(counts, index.ravel(), sign)


def _as_number(key: str) -> float | None:
    try:
        return float(key)
    except ValueError:
        return None


class DriftWindow:
    """The last `size` rows of inputs (and predictions, when the profile has them)."""

    def __init__(
        self, profile: Profile, size: int, batch: int = 256, *, lazy: bool = False
    ) -> None:
        if size < 1:
            raise ValueError("the drift window needs at least one row")
        self.size = size
        # rows wait here and are binned when a statistic is read, or once `batch` of them
        # wait if lazy is off: one search per feature per batch rather than per request,
        # and a row that leaves the window before anyone reads it is never binned at all
        self.batch = batch
        self.lazy = lazy
        self.pending: deque[np.ndarray] = deque()
        self.pending_rows = 0
        features = list(profile.features)
        if profile.prediction is not None:
            features.append(profile.prediction)
        self.encoders = [_Encoder(f) for f in features]
        self.has_prediction = profile.prediction is not None
        self.n_features = len(profile.features)
        self.psi_offsets = np.cumsum([0] + [e.psi_bins for e in self.encoders])
        self.ks_offsets = np.cumsum([0] + [e.ks_bins for e in self.encoders])
        self.numeric = [i for i, e in enumerate(self.encoders) if e.ks_bins]
        self.psi_counts = np.zeros(self.psi_offsets[-1], dtype=np.int64)
        self.ks_counts = np.zeros(self.ks_offsets[-1], dtype=np.int64)
        self.psi_ring = np.zeros((size, len(self.encoders)), dtype=np.int64)
        self.ks_ring = np.zeros((size, len(self.numeric)), dtype=np.int64)
        self.next = 0
        self.binned = 0  # rows in the rings

    def check(self, matrix: np.ndarray, predictions: np.ndarray | None) -> None:
        """Raise ValueError, naming why, unless add() can take these rows."""
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(
                f"the profile has {self.n_features} features, the input has "
                f"{matrix.shape[1] if matrix.ndim == 2 else matrix.ndim}"
            )
        if self.has_prediction:
            if predictions is None:
                raise ValueError("the profile has a prediction baseline: predictions are needed")
            if predictions.size != matrix.shape[0]:
                raise ValueError(
                    f"{np.size(predictions)} predictions for {matrix.shape[0]} input rows"
                )

    @property
    def filled(self) -> int:
        """Rows in the window, binned or waiting."""
        return min(self.size, self.binned + self.pending_rows)

    def add(self, matrix: np.ndarray, predictions: np.ndarray | None = None) -> None:
        """Count rows into the window (binned in batches; drift() sees every row added)."""
        self.check(matrix, predictions)
        if self.has_prediction:
            column = np.asarray(predictions).reshape(-1, 1)
            block = np.concatenate([matrix, column], axis=1)  # one dtype, as column_stack
        else:
            block = matrix.copy()  # the caller may reuse its array
        self.pending.append(block[-self.size :])
        self.pending_rows += len(self.pending[-1])
        # waiting rows older than the newest `size` will be out of the window by any read
        while self.pending_rows - len(self.pending[0]) >= self.size:
            self.pending_rows -= len(self.pending.popleft())
        if not self.lazy and self.pending_rows >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        block = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        block = block[-self.size :]  # only the newest rows stay
        self.pending, self.pending_rows = deque(), 0
        # one contiguous row per column: the searches read them one after another
        numeric = block.dtype.kind in "iufb"
        cols = np.ascontiguousarray(block.T, np.float64 if numeric else None)
        rows = block.shape[0]
        psi_idx = np.empty((rows, len(self.encoders)), dtype=np.int64)
        for i, (encoder, col) in enumerate(zip(self.encoders, cols, strict=True)):
            psi_idx[:, i] = encoder.psi_bin(col) + self.psi_offsets[i]
        # KS bins: each feature's values searched in increasing order, so one search starts
        # where the last ended (twice as fast once 20 supports of 5,000 outgrow the cache)
        values = np.asarray(cols[self.numeric], np.float64)
        order = np.argsort(values, axis=1)
        ascending = np.take_along_axis(values, order, axis=1)
        found = np.empty(values.shape, dtype=np.int64)
        for j, i in enumerate(self.numeric):
            found[j] = self.encoders[i].ks_bin(ascending[j]) + self.ks_offsets[i]
        ks_idx = np.empty_like(found)
        np.put_along_axis(ks_idx, order, found, axis=1)
        ks_idx = ks_idx.T
        slots = (self.next + np.arange(rows)) % self.size
        evicted = slots[self.size - self.binned :]  # the slots that already held a row
        if evicted.size:
            _count(self.psi_counts, self.psi_ring[evicted], -1)
            _count(self.ks_counts, self.ks_ring[evicted], -1)
        _count(self.psi_counts, psi_idx, 1)
        _count(self.ks_counts, ks_idx, 1)
        self.psi_ring[slots] = psi_idx
        self.ks_ring[slots] = ks_idx
        self.next = int((self.next + rows) % self.size)
        self.binned = min(self.size, self.binned + rows)

    def drift(self) -> list[Drift]:
        """Each feature's statistics, then the prediction's (named "prediction")."""
        self.flush()
        out = []
        for i, e in enumerate(self.encoders):
            counts = self.psi_counts[self.psi_offsets[i] : self.psi_offsets[i + 1]]
            if not self.filled:
                out.append(Drift(e.feature.name, float("nan"), None, None))
                continue
            actual = frequencies(counts)
            ks = js = None
            if e.ks_bins:
                ks_counts = self.ks_counts[self.ks_offsets[i] : self.ks_offsets[i + 1]]
                ks = ks_from_counts(e.ks_cdf, ks_counts)
            else:
                js = js_distance(e.reference, actual)
            out.append(Drift(e.feature.name, psi(e.reference, actual), ks, js))
        return out
