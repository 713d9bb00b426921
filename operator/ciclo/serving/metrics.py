"""The runtime's Prometheus metrics, in a registry of its own.

Counters are what PromQL computes rates and ratios from over any window; the
windowed quality and drift gauges are computed only when /metrics is scraped
(a collector), so requests never pay for statistics nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ciclo.drift.window import Drift
from ciclo.serving.feedback import REASONS, Agreement, Quality

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LABELS = ("model", "version")


@dataclass(frozen=True)
class Snapshot:
    quality: Quality | None
    """None when feedback is off or the model is not a classifier."""
    drift: list[Drift] | None
    """Input features; None without a baseline profile."""
    prediction_drift: Drift | None
    """None without a prediction baseline."""
    drift_samples: int
    others: dict[str, Quality] = field(default_factory=dict)
    """Quality of other versions whose labels this pod matched (through a shared store)."""
    agreement: dict[tuple[str, str], Agreement] = field(default_factory=dict)
    """By (version, other): how often two versions predicted alike on the same labelled rows."""


class WindowCollector(Collector):
    """The sliding-window gauges, computed from a snapshot at scrape time."""

    def __init__(self, labels: tuple[str, str], snapshot: Callable[[], Snapshot]) -> None:
        self.labels = list(labels)
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot()
        if snap.quality is not None:
            qualities = {self.labels[1]: snap.quality, **snap.others}
            for name, text in (
                ("accuracy", "Accuracy"),
                ("precision", "Precision, macro-averaged over classes,"),
                ("recall", "Recall, macro-averaged over classes,"),
                ("f1", "F1, macro-averaged over classes,"),
                ("labelled_samples", "Labelled samples in the quality window"),
            ):
                if name != "labelled_samples":
                    text = f"{text} over the labelled-sample window"
                family = GaugeMetricFamily(f"ciclo_window_{name}", text, labels=list(LABELS))
                for version, q in qualities.items():
                    value = q.samples if name == "labelled_samples" else getattr(q, name)
                    family.add_metric([self.labels[0], version], value)
                yield family
        if snap.agreement:
            yield from self._agreement(snap.agreement)
        if snap.drift is None:
            return
        stats = (
            ("psi", "Population Stability Index against the baseline"),
            ("ks", "Kolmogorov-Smirnov statistic against the baseline (numeric)"),
            ("js", "Jensen-Shannon distance against the baseline (categorical)"),
        )
        features = {
            stat: GaugeMetricFamily(
                f"ciclo_drift_{stat}", f"{text}, per input feature", labels=[*LABELS, "feature"]
            )
            for stat, text in stats
        }
        for d in snap.drift:
            for stat, stat_value in (("psi", d.psi), ("ks", d.ks), ("js", d.js)):
                if stat_value is not None:
                    features[stat].add_metric([*self.labels, d.feature], stat_value)
        yield from features.values()
        if snap.prediction_drift is not None:
            p = snap.prediction_drift
            for (stat, text), pvalue in zip(stats, (p.psi, p.ks, p.js), strict=True):
                if pvalue is not None:
                    yield self._gauge(
                        f"prediction_drift_{stat}", f"{text}, of the predictions", pvalue
                    )
        yield self._gauge("drift_window_samples", "Inputs in the drift window", snap.drift_samples)

    def _agreement(self, agreement: dict[tuple[str, str], Agreement]) -> Iterable[Metric]:
        labels = [*LABELS, "other"]
        share = GaugeMetricFamily(
            "ciclo_window_agreement",
            "Share of the agreement window's rows on which version predicted what other did",
            labels=labels,
        )
        samples = GaugeMetricFamily(
            "ciclo_window_agreement_samples",
            "Labelled rows both versions predicted, in the agreement window",
            labels=labels,
        )
        for (version, other), a in agreement.items():
            share.add_metric([self.labels[0], version, other], a.share)
            samples.add_metric([self.labels[0], version, other], a.samples)
        return share, samples

    def _gauge(self, name: str, text: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"ciclo_{name}", text, labels=list(LABELS))
        family.add_metric(self.labels, value)
        return family


class RuntimeMetrics:
    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry()
        self.labels = (model, version)
        r = self.registry
        self.requests = Counter(
            "ciclo_requests", "Inference requests by outcome", [*LABELS, "outcome"], registry=r
        )
        self.duration = Histogram(
            "ciclo_request_duration_seconds",
            "Inference request latency",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(*self.labels)
        self.predictions = Counter(
            "ciclo_predictions", "Predictions by predicted class", [*LABELS, "class"], registry=r
        )
        self.prediction_value = Histogram(
            "ciclo_prediction_value", "Predicted values (regression)", LABELS, registry=r
        ).labels(*self.labels)
        self.feedback = Counter(
            "ciclo_feedback",
            "Feedback labels: matched to a stored prediction, or late (its prediction was gone)",
            [*LABELS, "outcome"],
            registry=r,
        )
        rejected = Counter(
            "ciclo_feedback_rejected",
            "Feedback requests refused with a 400, by reason (a fixed set)",
            [*LABELS, "reason"],
            registry=r,
        )
        # present from the start, so rate() sees the first
        self.feedback_rejected = {k: rejected.labels(*self.labels, k) for k in REASONS}
        self.correct_by = Counter(
            "ciclo_feedback_correct", "Matched labels the prediction got right", LABELS, registry=r
        )
        self.correct = self.correct_by.labels(*self.labels)
        self.confusion = Counter(
            "ciclo_confusion",
            "Confusion matrix of matched labels",
            [*LABELS, "actual", "predicted"],
            registry=r,
        )
        self.true_positives = Counter(
            "ciclo_class_true_positives", "Matched labels per class", [*LABELS, "class"], registry=r
        )
        self.class_predicted = Counter(
            "ciclo_class_predicted",
            "Labelled samples per predicted class",
            [*LABELS, "class"],
            registry=r,
        )
        self.class_actual = Counter(
            "ciclo_class_actual", "Labelled samples per true class", [*LABELS, "class"], registry=r
        )
        self.compared = Counter(
            "ciclo_feedback_compared",
            "Labelled rows that version and other both predicted (through a shared store)",
            [*LABELS, "other"],
            registry=r,
        )
        self.agreed = Counter(
            "ciclo_feedback_agreed",
            "Labelled rows on which version predicted the same class as other",
            [*LABELS, "other"],
            registry=r,
        )
        self.outcomes = {
            o: self.requests.labels(*self.labels, o)
            for o in ("success", "client_error", "server_error")
        }
        self.before_scrape: list[Callable[[], None]] = []
        for outcome in ("matched", "late"):  # present from the start, so rate() sees the first
            self.feedback.labels(*self.labels, outcome)

    def count_labels(self, version: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Matched (actual, predicted) labels of `version`: the version that predicted,
        which is not this pod's when the prediction came from a shared store."""
        labels = (self.labels[0], version)
        self.feedback.labels(*labels, "matched").inc(len(pairs))
        correct = 0
        for actual, predicted in pairs:
            self.confusion.labels(*labels, actual, predicted).inc()
            self.class_actual.labels(*labels, actual).inc()
            self.class_predicted.labels(*labels, predicted).inc()
            if actual == predicted:
                correct += 1
                self.true_positives.labels(*labels, actual).inc()
        self.correct_by.labels(*labels).inc(correct)

    def count_agreement(self, version: str, other: str, rows: Sequence[bool]) -> None:
        """Rows of one labelled request or more that `version` and `other` both predicted:
        whether each pair of predictions agreed."""
        labels = (self.labels[0], version, other)
        self.compared.labels(*labels).inc(len(rows))
        self.agreed.labels(*labels).inc(sum(rows))

    def record(self, seconds: float, outcome: str) -> None:
        """One inference request, over REST or gRPC: its latency and outcome (success,
        client_error or server_error)."""
        self.duration.observe(seconds)
        self.outcomes[outcome].inc()

    def watch(
        self, snapshot: Callable[[], Snapshot], fold: Callable[[], None] | None = None
    ) -> None:
        """The window gauges come from `snapshot`; `fold`, run before each scrape, brings
        counters updated in batches up to date."""
        self.registry.register(WindowCollector(self.labels, snapshot))
        if fold is not None:
            self.before_scrape.append(fold)

    def exposition(self) -> bytes:
        for fold in self.before_scrape:
            fold()
        return generate_latest(self.registry)
