"""Quality from late labels: recent predictions kept by id, and a window of labelled samples.

Ground truth often arrives hours after the prediction. The store keeps what was
predicted for each response id, bounded by a row count and an age, so memory
stays fixed however long labels take; a label whose prediction is gone is
counted as late rather than guessed at.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ciclo.drift.profile import value_key
from ciclo.serving.protocol import ProtocolError, request_id_of

MALFORMED, UNKNOWN_CLASS, CLASS_LIMIT, ROW_COUNT, NOT_CLASSIFIER = (
    "malformed",
    "unknown_class",
    "class_limit",
    "row_count",
    "not_classifier",
)
REASONS = (MALFORMED, UNKNOWN_CLASS, CLASS_LIMIT, ROW_COUNT, NOT_CLASSIFIER)
"""Why feedback is refused: the `reason` label of ciclo_feedback_rejected_total, a fixed set."""


class FeedbackError(Exception):
    """Feedback refused; str() names what is wrong, for a 400, and `reason` is one of REASONS."""

    def __init__(self, message: str, reason: str = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class PredictionStore:
    """Predicted class keys by response id: at most `capacity` rows, none older than `max_age` s.

    This process's own store (store.Store), holding `version`'s predictions only."""

    capacity: int = 100_000
    max_age: float = 86_400.0
    clock: Callable[[], float] = time.monotonic
    version: str = ""
    remote: ClassVar[bool] = False
    # (stamp, keys) as tuples of strings: the garbage collector stops tracking them, so a
    # full store adds nothing to its passes (lists would be scanned on every full one)
    entries: OrderedDict[str, tuple[float, tuple[str, ...]]] = field(default_factory=OrderedDict)
    rows: int = 0
    expiry: float = -math.inf  # when the oldest entry ages out: no eviction to look for before

    def put(self, request_id: str, predicted: Sequence[str], stamp: float | None = None) -> None:
        """Keep a prediction; `stamp` is when it was made (on `clock`), if not now."""
        if request_id in self.entries:  # a reused id: the newest prediction wins
            self.rows -= len(self.entries.pop(request_id)[1])
        self.entries[request_id] = (self.clock() if stamp is None else stamp, tuple(predicted))
        self.rows += len(predicted)
        if self.rows > self.capacity or self.clock() > self.expiry:
            self._evict()

    def put_many(self, items: Iterable[tuple[str, tuple[str, ...], float]]) -> None:
        """put() of each (id, keys, stamp) in turn, in one call: fold's loop, per row."""
        entries, now = self.entries, self.clock()
        for request_id, predicted, stamp in items:
            old = entries.pop(request_id, None)
            if old is not None:
                self.rows -= len(old[1])
            entries[request_id] = (stamp, predicted)
            self.rows += len(predicted)
            if self.rows > self.capacity or now > self.expiry:
                self._evict()

    def take(self, request_id: str) -> list[str] | None:
        """The prediction for this id, once: a second label for it counts as late."""
        self._evict()
        entry = self.entries.pop(request_id, None)
        if entry is None:
            return None
        self.rows -= len(entry[1])
        return list(entry[1])

    def lookup(self, request_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        self._evict()
        found = ((i, self.entries.get(i)) for i in request_ids)
        return {i: {self.version: entry[1]} for i, entry in found if entry is not None}

    def claim(self, request_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        out = {}
        for request_id in request_ids:
            predicted = self.take(request_id)
            if predicted is not None:
                out[request_id] = {self.version: tuple(predicted)}
        return out

    def flush(self, timeout: float) -> None:
        """Nothing to wait for: put_many stores at once."""

    def notify(self) -> None:
        """Nothing to wake: the monitor's fold puts predictions here."""

    def _evict(self) -> None:
        oldest = self.clock() - self.max_age
        self.expiry = -math.inf
        while self.entries:
            stamp, rows = next(iter(self.entries.values()))
            if self.rows <= self.capacity and stamp >= oldest:
                self.expiry = stamp + self.max_age
                return
            self.entries.popitem(last=False)
            self.rows -= len(rows)


@dataclass(frozen=True)
class Quality:
    accuracy: float
    precision: float
    recall: float
    f1: float
    samples: int


@dataclass
class QualityWindow:
    """The last `size` (actual, predicted) pairs and their confusion counts."""

    size: int = 1000
    pairs: deque[tuple[str, str]] = field(default_factory=deque)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, actual: str, predicted: str) -> None:
        self.pairs.append((actual, predicted))
        self.confusion[(actual, predicted)] += 1
        if len(self.pairs) > self.size:
            old = self.pairs.popleft()
            self.confusion[old] -= 1
            if not self.confusion[old]:
                del self.confusion[old]

    def quality(self) -> Quality:
        """Accuracy, and precision/recall/F1 macro-averaged over every class in the window
        (scikit-learn's average="macro": a class never predicted has precision 0)."""
        n = len(self.pairs)
        if not n:
            nan = math.nan
            return Quality(nan, nan, nan, nan, 0)
        classes = {c for pair in self.confusion for c in pair}
        predicted: Counter[str] = Counter()
        actual: Counter[str] = Counter()
        for (truth, guess), count in self.confusion.items():
            predicted[guess] += count
            actual[truth] += count
        precisions, recalls, f1s = [], [], []
        for c in classes:
            tp = self.confusion.get((c, c), 0)
            p = tp / predicted[c] if predicted[c] else 0.0
            r = tp / actual[c] if actual[c] else 0.0
            precisions.append(p)
            recalls.append(r)
            f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        correct = sum(self.confusion.get((c, c), 0) for c in classes)
        k = len(classes)
        return Quality(correct / n, sum(precisions) / k, sum(recalls) / k, sum(f1s) / k, n)


@dataclass(frozen=True)
class Agreement:
    share: float
    """Rows on which two versions predicted the same class, as a share; NaN when none."""
    samples: int


@dataclass
class AgreementWindow:
    """The last `size` rows two versions both predicted (and were labelled): whether each
    pair of predictions agreed."""

    size: int = 1000
    rows: deque[bool] = field(default_factory=deque)
    agreed: int = 0

    def add(self, agreed: bool) -> None:
        self.rows.append(agreed)
        self.agreed += agreed
        if len(self.rows) > self.size:
            self.agreed -= self.rows.popleft()

    def agreement(self) -> Agreement:
        n = len(self.rows)
        return Agreement(self.agreed / n if n else math.nan, n)


@dataclass(frozen=True)
class Label:
    request_id: str
    labels: list[str]


def parse_feedback(body: Any) -> list[Label]:
    """{"id", "labels": [...]} or {"id", "label": x}, or {"feedback": [such objects]}."""
    items = body.get("feedback") if isinstance(body, dict) and "feedback" in body else [body]
    if not isinstance(items, list) or not items:
        raise FeedbackError("'feedback' must be a non-empty list of {id, labels} objects")
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            raise FeedbackError("each feedback item needs an 'id' (the inference response's id)")
        try:
            request_id = request_id_of(item["id"], "a feedback item's 'id'")
        except ProtocolError as e:
            raise FeedbackError(str(e)) from None
        assert request_id is not None  # neither None nor ""
        if "labels" in item:
            labels = item["labels"]
            if not isinstance(labels, list) or not labels:
                raise FeedbackError(f"feedback {request_id}: 'labels' must be a non-empty list")
        elif "label" in item:
            labels = [item["label"]]
        else:
            raise FeedbackError(f"feedback {request_id}: give 'labels' (one per row) or 'label'")
        if any(not isinstance(v, str | int | float) for v in labels):
            raise FeedbackError(f"feedback {request_id}: labels must be numbers or strings")
        try:
            keys = [value_key(v) for v in labels]
        except OverflowError:  # an integer beyond a double's range
            raise FeedbackError(f"feedback {request_id}: a label is out of range") from None
        out.append(Label(request_id, keys))
    return out
