"""Where rule values come from: one small interface, two sources.

- PrometheusSource: instant queries to Prometheus' HTTP API (/api/v1/query), with an
  optional bearer token or basic auth (the controller reads the Secret and passes its
  contents in: this package never talks to the Kubernetes API).
- PodsSource: for clusters without Prometheus, the serving pods' own /metrics (the
  controller lists the Ready pods); each pod's windowed gauges are combined, weighted by
  the samples behind them.

Both answer a Query with a Reading (evaluation.py); a failed request is a Reading with
an error, which evaluation never counts as a breach.
"""

from __future__ import annotations

import base64
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

from ciclo.monitoring import templates
from ciclo.monitoring.evaluation import Reading

TIMEOUT = 5.0


@dataclass(frozen=True)
class Query:
    """One rule's question about one version of a model."""

    namespace: str
    model: str
    version: str
    window: str
    metric: str | None = None
    promql: str | None = None
    feature: str | None = None
    other: str | None = None
    """For metric "agreement" (not a rule's): the version `version` is compared with."""

    def context(self) -> templates.Context:
        return templates.Context(
            self.namespace, self.model, self.version, self.window, self.feature, self.other
        )


class MetricSource(Protocol):
    def read(self, query: Query) -> Reading: ...


@dataclass(frozen=True)
class Credentials:
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None

    def header(self) -> str | None:
        if self.bearer_token:
            return f"Bearer {self.bearer_token.strip()}"
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return f"Basic {base64.b64encode(raw).decode()}"
        return None


class QueryError(Exception):
    pass


@dataclass
class PrometheusSource:
    url: str
    credentials: Credentials = field(default_factory=Credentials)
    timeout: float = TIMEOUT

    def instant(self, promql: str) -> float | None:
        """The single value of an instant query; None when the result is empty."""
        target = f"{self.url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        request = urllib.request.Request(target, headers={"Accept": "application/json"})
        header = self.credentials.header()
        if header:
            request.add_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise QueryError(f"prometheus answered {e.code}: {detail}") from e
        except (OSError, ValueError) as e:
            raise QueryError(f"prometheus unreachable at {self.url}: {e}") from e
        if body.get("status") != "success":
            raise QueryError(f"prometheus: {body.get('error', 'query failed')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        result = data["result"]
        if not result:
            return None
        if len(result) > 1:
            raise QueryError(f"the query returned {len(result)} series, not one: {promql}")
        return float(result[0]["value"][1])

    def read(self, query: Query) -> Reading:
        try:
            value_q, samples_q = templates.queries(query.metric, query.promql, query.context())
            value = self.instant(value_q)
            samples = self.instant(samples_q) if samples_q else None
        except (QueryError, ValueError) as e:
            return Reading(error=str(e))
        if samples is not None and math.isfinite(samples):
            return Reading(value, round(samples))
        return Reading(value, None)


# The runtime's gauges behind each built-in metric, and the gauge counting their samples.
_QUALITY = {
    "accuracy": "ciclo_window_accuracy",
    "precision": "ciclo_window_precision",
    "recall": "ciclo_window_recall",
    "f1": "ciclo_window_f1",
}
# CBPE's estimates (docs/cbpe.md), weighted by the predictions each pod estimated from.
_ESTIMATED = {
    "estimated_accuracy": "ciclo_estimated_accuracy",
    "estimated_f1": "ciclo_estimated_f1",
}
_DRIFT = {
    "feature_drift_psi": "ciclo_drift_psi",
    "feature_drift_ks": "ciclo_drift_ks",
    "prediction_drift_psi": "ciclo_prediction_drift_psi",
}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _weighted(pairs: Iterable[tuple[float, float]]) -> tuple[float | None, int]:
    """The mean of values weighted by their sample counts, and the total count."""
    total = 0.0
    acc = 0.0
    for value, weight in pairs:
        if math.isfinite(value) and weight > 0:
            acc += value * weight
            total += weight
    return (acc / total if total else None), round(total)


def _histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts (linear in a bucket)."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    rank = q * buckets[edges[-1]]
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower
            return lower + (edge - lower) * (
                (rank - below) / (count - below) if count > below else 0
            )
        lower, below = edge, count
    return None


def combine(
    metric: str, feature: str | None, pods: Sequence[list[Sample]], other: str | None = None
) -> Reading:
    """One reading from several pods' /metrics, each pod weighted by its samples.

    Quality and drift come from the runtime's windowed gauges; error rate and latency
    from its counters since each pod started (pods have no history to take a window of).
    Agreement, with `other`, from the agreement window gauges of that pair."""
    if metric == "agreement":
        if other is None:
            return Reading(error="agreement compares two versions: give the other")
        pairs = []
        for samples in pods:
            mine = [s for s in samples if s.labels.get("other") == other]
            share = next((s.value for s in mine if s.name == "ciclo_window_agreement"), math.nan)
            rows = next((s.value for s in mine if s.name == "ciclo_window_agreement_samples"), 0.0)
            pairs.append((share, rows))
        mean, count = _weighted(pairs)
        return Reading(mean, count)
    if metric in _QUALITY or metric in _ESTIMATED:
        name, counted = (
            (_QUALITY[metric], "ciclo_window_labelled_samples")
            if metric in _QUALITY
            else (_ESTIMATED[metric], "ciclo_estimation_window_samples")
        )
        pairs = []
        for samples in pods:
            gauge = next((s.value for s in samples if s.name == name), math.nan)
            weight = next((s.value for s in samples if s.name == counted), 0.0)
            pairs.append((gauge, weight))
        mean, count = _weighted(pairs)
        return Reading(mean, count)
    if metric in _DRIFT:
        name = _DRIFT[metric]
        per_feature: dict[str, list[tuple[float, float]]] = {}
        total = 0.0
        for samples in pods:
            weight = next((s.value for s in samples if s.name == "ciclo_drift_window_samples"), 0.0)
            total += weight
            for s in samples:
                if s.name == name and (feature is None or s.labels.get("feature") == feature):
                    per_feature.setdefault(s.labels.get("feature", ""), []).append(
                        (s.value, weight)
                    )
        values = [v for v in (_weighted(p)[0] for p in per_feature.values()) if v is not None]
        return Reading(max(values) if values else None, round(total))
    if metric == "error_rate":
        errors = total = 0.0
        for samples in pods:
            for s in samples:
                if s.name == "ciclo_requests_total":
                    total += s.value
                    errors += s.value if s.labels.get("outcome") == "server_error" else 0.0
        return Reading(errors / total if total else None, round(total))
    if metric == "latency_p99":
        buckets: dict[float, float] = {}
        for samples in pods:
            for s in samples:
                if s.name == "ciclo_request_duration_seconds_bucket":
                    edge = float(s.labels["le"])
                    buckets[edge] = buckets.get(edge, 0.0) + s.value
        count = round(buckets.get(math.inf, 0.0))
        return Reading(_histogram_quantile(0.99, buckets), count)
    return Reading(error=f"the pods source has no metric {metric!r}")


@dataclass
class PodsSource:
    """The Ready pods of the version being asked about: version -> their /metrics URLs."""

    targets: dict[str, list[str]]
    timeout: float = TIMEOUT

    def scrape(self, url: str) -> list[Sample]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return parse(response.read().decode())
        except (OSError, ValueError) as e:
            raise QueryError(f"scraping {url}: {e}") from e

    def read(self, query: Query) -> Reading:
        if query.promql is not None or query.metric is None:
            return Reading(error="the pods source answers built-in metrics only, not PromQL")
        urls = self.targets.get(query.version, [])
        if query.metric in _QUALITY or query.metric == "agreement":
            # with a shared prediction store any pod of the Model may count a version's
            # labels (each under the version that predicted): read every pod
            urls = [url for version_urls in self.targets.values() for url in version_urls]
        if not urls:
            return Reading()  # no Ready pod: nothing to read, NoData
        try:
            with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
                pods = list(pool.map(self.scrape, urls))
        except QueryError as e:
            return Reading(error=str(e))
        labelled = [
            [
                s
                for s in samples
                if s.labels.get("model", query.model) == query.model
                and s.labels.get("version", query.version) == query.version
            ]
            for samples in pods
        ]
        return combine(query.metric, query.feature, labelled, query.other)
