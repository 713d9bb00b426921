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

import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ciclo.drift.profile import CategoricalFeature, Profile, value_key
from ciclo.drift.window import DriftWindow
from ciclo.serving.estimation import EstimateCollector, Estimator
from ciclo.serving.feedback import (
    CLASS_LIMIT,
    NOT_CLASSIFIER,
    ROW_COUNT,
    UNKNOWN_CLASS,
    AgreementWindow,
    FeedbackError,
    Label,
    PredictionStore,
    QualityWindow,
)
from ciclo.serving.metrics import RuntimeMetrics, Snapshot
from ciclo.serving.protocol import show
from ciclo.serving.store import FLUSH_TIMEOUT, LINGER, Entry, Store

KNOWN_CLASSES = 10_000
"""Class keys remembered at most (a regressor mistaken for a classifier would add one a row)."""
UNLISTED_LABELS = 100
"""When the model's classes are unknown: distinct label values taken besides the classes it
has predicted; a new one after that is refused, so labels never add series without bound."""
MAX_LABEL = 128
"""Longest label taken when the classes are unknown, in characters."""
FOLD_ROWS = 256
"""Rows queued before an inference thread folds them: under 1% of one-row requests pay."""
OTHER_VERSIONS = 16
"""Versions besides this pod's whose labels it counts at most (a shared store holds the
predictions of every version of the Model; only the Model's own pods write there)."""
CROSS_POD_WAIT = 5 * LINGER
"""Seconds a feedback request waits, once, for the predictions of ids the shared store
does not hold yet: another pod's writer gathers for LINGER, then one round trip."""
AGREEMENT_PAIRS = 2 * OTHER_VERSIONS
"""Ordered pairs of versions whose agreement a pod counts at most: each other version
compared with one version both ways (a shadow and its champion)."""


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

_Compared = dict[tuple[str, str], list[bool]]
"""By ordered pair of versions (version, other): whether each row's predictions agreed."""


class Monitor:
    def __init__(
        self,
        metrics: RuntimeMetrics,
        classifier: bool,
        profile: Profile | None = None,
        settings: Settings | None = None,
        fold_rows: int = FOLD_ROWS,
        classes: Iterable[str] | None = None,
        store: Store | None = None,
    ) -> None:
        """`classes`: the model's class keys (value_key), when it says; with the classes of
        the profile's prediction baseline they are the labels feedback takes. `store`:
        where predictions wait for labels; this process's memory by default."""
        settings = settings or Settings()
        self.metrics = metrics
        self.classifier = classifier
        self.version = metrics.labels[1]
        self.store: Store = store or PredictionStore(
            settings.feedback_capacity, settings.feedback_max_age, version=self.version
        )
        self.quality = QualityWindow(settings.quality_window)
        self.windows = {self.version: self.quality}
        """Quality windows by the version that predicted: this pod's, and others' whose
        predictions it matched labels to through a shared store."""
        self.agreement: dict[tuple[str, str], AgreementWindow] = {}
        """By ordered pair (version, other): whether their predictions for the same labelled
        rows agreed, when a shared store held both (a shadow's and its champion's)."""
        # binned at scrapes: at a few thousand requests a second most rows leave the window
        # between two scrapes, and those are never binned
        self.drift = DriftWindow(profile, settings.drift_window, lazy=True) if profile else None
        self.fold_rows = fold_rows
        self.lock = threading.Lock()  # the store and the windows
        self.queue_lock = threading.Lock()  # only the queue: observe never waits for a fold
        self.queue: list[_Observed] = []
        self.queued_rows = 0
        self.known_classes: dict[Any, str] = {}
        known = set(classes or ())
        if profile is not None and isinstance(profile.prediction, CategoricalFeature):
            known.update(profile.prediction.categories)
        self.classes = frozenset(known) if known else None
        """Labels feedback takes; None: unknown, then `predicted` and `unlisted` bound them."""
        self.predicted: set[str] = set()  # classes predicted so far
        self.unlisted: set[str] = set()  # other labels taken, at most UNLISTED_LABELS
        metrics.watch(self.snapshot, self.fold)
        # CBPE (docs/cbpe.md): when the profile carries the classifier's calibration
        calibration = profile.calibration if profile is not None and classifier else None
        self.estimator = Estimator(calibration, settings.drift_window) if calibration else None
        if self.estimator is not None:
            metrics.registry.register(EstimateCollector(metrics.labels, self.estimator.estimate))

    def observe(
        self,
        request_id: str,
        matrix: np.ndarray,
        predictions: np.ndarray,
        proba: np.ndarray | None = None,
    ) -> None:
        """One answered request, queued for fold(); an input the drift window cannot take
        is refused here, so its own request fails rather than a later fold. `proba`, the
        class probabilities, feed CBPE's window."""
        if self.drift is not None:
            self.drift.check(matrix, predictions)
        if self.estimator is not None and proba is not None:
            self.estimator.add(proba)
        item = (request_id, matrix, predictions, self.store.clock())
        with self.queue_lock:
            self.queue.append(item)
            self.queued_rows += len(matrix)
        self.store.notify()

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
                self.predicted.add(name)
        else:
            for value in predictions.astype(np.float64).tolist():
                self.metrics.prediction_value.observe(value)
        if self.drift is not None:
            matrix = np.concatenate(matrices) if len(matrices) > 1 else matrices[0]
            self.drift.add(matrix, predictions)

    def feedback(self, items: list[Label]) -> tuple[int, int]:
        """Match labels to stored predictions; (matched, late) label counts. Each label
        counts for every version that predicted its id. With a remote store this does
        network I/O: call it off the event loop; it raises StoreUnavailable when the
        store cannot be read."""
        if not self.classifier:
            raise FeedbackError(
                "feedback is for classifiers: this model's predictions are values", NOT_CLASSIFIER
            )
        self.fold()  # every prediction answered so far can be matched
        self.store.flush(FLUSH_TIMEOUT)
        ids = list(dict.fromkeys(item.request_id for item in items))
        # the memory store is the monitor's, under its lock; a shared one takes no lock
        with self._store_lock():
            held = self.store.lookup(ids)
        missing = [i for i in ids if i not in held]
        if missing and self.store.remote:
            # Another pod may have answered a moment ago: its writer sends within about
            # LINGER of the answer, so a label sent at once through the Service would be
            # late for nothing. Look once more, after that (only for ids not found).
            time.sleep(CROSS_POD_WAIT)
            held.update(self.store.lookup(missing))
        with self.lock:
            # check every item before taking any, so a 400 changes nothing
            live = []  # items whose prediction is kept: only their labels reach the metrics
            for item in items:
                entry = held.get(item.request_id)
                if entry is None:
                    continue
                rows = len(next(iter(entry.values())))
                if rows != len(item.labels):
                    raise FeedbackError(
                        f"feedback {item.request_id}: {len(item.labels)} labels for a request "
                        f"of {rows} rows",
                        ROW_COUNT,
                    )
                live.append(item)
            self.unlisted.update(self._admit(items, live))
        with self._store_lock():
            taken = self.store.claim(ids)
        matched = late = 0
        pairs: dict[str, list[tuple[str, str]]] = {}
        compared: _Compared = {}
        for item in items:
            entry = taken.pop(item.request_id, None)  # a repeated id: its second label is late
            if entry is None or not self._counts(entry, len(item.labels), pairs):
                late += len(item.labels)
                continue
            matched += len(item.labels)
            for version, predicted in entry.items():
                pairs.setdefault(version, []).extend(zip(item.labels, predicted, strict=True))
            for a, b in itertools.permutations(entry, 2):
                compared.setdefault((a, b), []).extend(
                    x == y for x, y in zip(entry[a], entry[b], strict=True)
                )
        with self.lock:
            for version, version_pairs in pairs.items():
                window = self.windows.setdefault(version, QualityWindow(self.quality.size))
                for actual, predicted_key in version_pairs:
                    window.add(actual, predicted_key)
            compared = self._compare(compared)
        self.metrics.feedback.labels(*self.metrics.labels, "late").inc(late)
        for version, version_pairs in pairs.items():
            self.metrics.count_labels(version, version_pairs)
        for (version, other), alike in compared.items():
            self.metrics.count_agreement(version, other, alike)
        return matched, late

    def _compare(self, compared: _Compared) -> _Compared:
        """Add each pair's rows to its agreement window, under the lock; the pairs counted:
        a new pair beyond AGREEMENT_PAIRS is not (it would add series)."""
        counted = {}
        for pair, alike in compared.items():
            window = self.agreement.get(pair)
            if window is None:
                if len(self.agreement) >= AGREEMENT_PAIRS:
                    continue
                window = self.agreement[pair] = AgreementWindow(self.quality.size)
            for agreed in alike:
                window.add(agreed)
            counted[pair] = alike
        return counted

    def _counts(self, entry: Entry, rows: int, pending: Iterable[str] = ()) -> bool:
        """Whether a claimed entry can be counted: as many predictions as labels (an id
        reused between lookup and claim may have changed), and no more other versions
        than the bound, counting those `pending` (taken by this call, not yet windowed)."""
        if any(len(predicted) != rows for predicted in entry.values()):
            return False
        held = [v for v in pending if v not in self.windows]
        new = [v for v in entry if v not in self.windows and v not in held]
        if len(self.windows) + len(held) + len(new) > 1 + OTHER_VERSIONS:
            for version in new:
                del entry[version]
        return bool(entry)

    def _store_lock(self) -> threading.Lock | contextlib.nullcontext[None]:
        return contextlib.nullcontext() if self.store.remote else self.lock

    def _admit(self, items: list[Label], live: list[Label]) -> set[str]:
        """Raise FeedbackError unless every label is a class this version knows. With the
        classes unknown, the labels of `live` items that are new, within the bound (late
        labels add no series, so they spend none of it), for the caller to add."""
        classes = self.classes
        if classes is not None:
            for item in items:
                for label in item.labels:
                    if label not in classes:
                        listed = sorted(classes)
                        more = ", ..." if len(listed) > 10 else ""
                        raise FeedbackError(
                            f"feedback {item.request_id}: label {show(label)} is not a class of "
                            f"this model (one of {', '.join(listed[:10])}{more})",
                            UNKNOWN_CLASS,
                        )
            return set()
        new: set[str] = set()
        for item in live:
            for label in item.labels:
                if label in self.predicted or label in self.unlisted or label in new:
                    continue
                if len(label) > MAX_LABEL or not label.isprintable():
                    raise FeedbackError(
                        f"feedback {item.request_id}: label {show(label)} is not a class: "
                        f"at most {MAX_LABEL} printable characters",
                        UNKNOWN_CLASS,
                    )
                new.add(label)
        if len(self.unlisted) + len(new) > UNLISTED_LABELS:
            raise FeedbackError(
                f"feedback: this model's classes are unknown and {UNLISTED_LABELS} labels it "
                "never predicted are counted already; no new ones are taken",
                CLASS_LIMIT,
            )
        return new

    def snapshot(self) -> Snapshot:
        self.fold()
        with self.lock:
            quality = self.quality.quality() if self.classifier else None
            others = {
                version: window.quality()
                for version, window in self.windows.items()
                if version != self.version
            }
            agreement = {pair: window.agreement() for pair, window in self.agreement.items()}
            if self.drift is None:
                return Snapshot(quality, None, None, 0, others, agreement)
            stats = self.drift.drift()
            samples = self.drift.filled
        features = stats[: self.drift.n_features]
        prediction = stats[self.drift.n_features] if self.drift.has_prediction else None
        return Snapshot(quality, features, prediction, samples, others, agreement)
