"""Agreement between versions on the same labelled requests (a shadow and its champion):
the monitor's windows and counters, their series on /metrics, and the sources' reading."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

import pytest

from ciclo.monitoring import templates
from ciclo.monitoring.sources import PodsSource, PrometheusSource, Query, Sample, combine, parse
from ciclo.serving.feedback import Agreement, AgreementWindow, Label
from ciclo.serving.metrics import RuntimeMetrics, Snapshot
from ciclo.serving.monitor import AGREEMENT_PAIRS, OTHER_VERSIONS, Monitor, Settings
from ciclo.serving.store import Entry, Item

CLASSES = ["0", "1", "2"]


class FakeStore:
    """A shared store in memory: entries with any versions' predictions, as several pods
    (a champion and its shadow) would have written them."""

    remote: ClassVar[bool] = True

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries = entries or {}

    @property
    def clock(self) -> Callable[[], float]:
        return time.monotonic

    def put_many(self, items: Iterable[Item]) -> None:
        raise AssertionError("these tests put entries by hand")

    def lookup(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        return {i: dict(self.entries[i]) for i in request_ids if i in self.entries}

    def claim(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        return {i: self.entries.pop(i) for i in request_ids if i in self.entries}

    def flush(self, timeout: float) -> None:
        pass

    def notify(self) -> None:
        pass


def monitor(entries: dict[str, Entry], window: int = 1000) -> tuple[Monitor, RuntimeMetrics]:
    metrics = RuntimeMetrics("iris", "v1")
    settings = Settings(quality_window=window)
    store = FakeStore(entries)
    return Monitor(metrics, True, settings=settings, classes=CLASSES, store=store), metrics


def shadowed() -> tuple[dict[str, Entry], list[Label]]:
    """5 requests of 2 rows that v1 (champion) and v2 (shadow) both answered: 7 of the 10
    rows alike."""
    v1 = [("0", "1"), ("2", "2"), ("1", "0"), ("0", "0"), ("1", "2")]
    v2 = [("0", "1"), ("2", "1"), ("1", "0"), ("0", "2"), ("1", "0")]
    entries = {f"r{i}": {"v1": a, "v2": b} for i, (a, b) in enumerate(zip(v1, v2, strict=True))}
    return entries, [Label(f"r{i}", ["0", "1"]) for i in range(5)]


def series(metrics: RuntimeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in parse(metrics.exposition().decode())
    }


def pair(version: str, other: str) -> tuple[tuple[str, str], ...]:
    return (("model", "iris"), ("other", other), ("version", version))


def test_a_shared_entry_counts_agreement_both_ways() -> None:
    entries, labels = shadowed()
    m, metrics = monitor(entries)
    assert m.feedback(labels) == (10, 0)
    for version, other in (("v1", "v2"), ("v2", "v1")):
        assert m.agreement[(version, other)].agreement() == Agreement(0.7, 10)
    got = series(metrics)
    for version, other in (("v1", "v2"), ("v2", "v1")):
        assert got[("ciclo_window_agreement", pair(version, other))] == pytest.approx(0.7)
        assert got[("ciclo_window_agreement_samples", pair(version, other))] == 10
        assert got[("ciclo_feedback_compared_total", pair(version, other))] == 10
        assert got[("ciclo_feedback_agreed_total", pair(version, other))] == 7
    # each version's quality still counts for it alone
    assert got[("ciclo_window_labelled_samples", (("model", "iris"), ("version", "v2")))] == 10


def test_agreement_windows_keep_the_last_rows_and_counters_keep_all() -> None:
    entries, labels = shadowed()
    m, metrics = monitor(entries, window=4)
    m.feedback(labels)
    # the last 4 rows: r3 (0/0 vs 0/2) and r4 (1/2 vs 1/0): one alike in each
    assert m.agreement[("v2", "v1")].agreement() == Agreement(0.5, 4)
    assert series(metrics)[("ciclo_feedback_agreed_total", pair("v2", "v1"))] == 7


def test_an_entry_of_one_version_or_a_late_label_compares_nothing() -> None:
    m, metrics = monitor({"r1": {"v1": ("0", "1")}, "r2": {"v2": ("1",)}})
    assert m.feedback([Label("r1", ["0", "0"]), Label("r2", ["1"]), Label("r9", ["1"])]) == (3, 1)
    assert m.agreement == {}
    names = {name for name, _ in series(metrics)}
    assert not names & {
        "ciclo_window_agreement",
        "ciclo_window_agreement_samples",
        "ciclo_feedback_compared_total",
        "ciclo_feedback_agreed_total",
    }


def test_the_pairs_of_versions_are_bounded() -> None:
    versions = [f"v{i}" for i in range(1, OTHER_VERSIONS + 2)]  # this pod's and 16 others
    m, metrics = monitor({"r1": {v: ("0",) for v in versions}})
    assert m.feedback([Label("r1", ["0"])]) == (1, 0)
    assert len(m.agreement) == AGREEMENT_PAIRS < len(versions) * (len(versions) - 1)
    got = series(metrics)
    for name in ("ciclo_window_agreement", "ciclo_feedback_compared_total"):
        assert sum(n == name for n, _ in got) == AGREEMENT_PAIRS
    # a counted pair keeps counting; a new one is still left out
    known = next(iter(m.agreement))
    fresh = next((a, b) for a in versions for b in versions if a != b and (a, b) not in m.agreement)
    store = m.store
    assert isinstance(store, FakeStore)
    store.entries.update({"r2": dict.fromkeys(known, ("1",)), "r3": dict.fromkeys(fresh, ("1",))})
    assert m.feedback([Label("r2", ["1"]), Label("r3", ["1"])]) == (2, 0)
    assert m.agreement[known].agreement() == Agreement(1.0, 2)
    assert fresh not in m.agreement and len(m.agreement) == AGREEMENT_PAIRS


def test_the_other_versions_are_bounded_within_one_feedback_call() -> None:
    """Entries of one call, each with a new version: no more windows than the bound."""
    extra = OTHER_VERSIONS + 4
    m, _ = monitor({f"r{i}": {"v1": ("0",), f"w{i}": ("0",)} for i in range(extra)})
    matched, late = m.feedback([Label(f"r{i}", ["0"]) for i in range(extra)])
    assert len(m.windows) == 1 + OTHER_VERSIONS
    assert (matched, late) == (extra, 0)  # v1's prediction counts in every entry


def test_the_window_counts_agreeing_rows() -> None:
    window = AgreementWindow(3)
    assert window.agreement().samples == 0
    for agreed in (True, False, True, True):
        window.add(agreed)
    assert window.agreement() == Agreement(2 / 3, 3)


def exposition(agreement: dict[tuple[str, str], Agreement], version: str = "v1") -> list[Sample]:
    """A pod's /metrics with these agreement windows."""
    metrics = RuntimeMetrics("iris", version)
    metrics.watch(lambda: Snapshot(None, None, None, 0, agreement=agreement))
    return parse(metrics.exposition().decode())


def test_pods_combine_agreement_weighted_by_rows() -> None:
    a = exposition({("v2", "v1"): Agreement(0.9, 300), ("v2", "v3"): Agreement(0.1, 50)})
    b = exposition({("v2", "v1"): Agreement(0.5, 100)}, version="v2")
    reading = combine("agreement", None, [a, b], other="v1")
    assert reading.value == pytest.approx((0.9 * 300 + 0.5 * 100) / 400)
    assert reading.samples == 400
    none = combine("agreement", None, [a, b], other="v9")
    assert (none.value, none.samples, none.error) == (None, 0, None)
    assert combine("agreement", None, [a], other=None).error is not None


class Scraped(PodsSource):
    """The pods source over expositions in hand rather than over HTTP."""

    def __init__(self, pods: dict[str, dict[str, list[Sample]]]) -> None:
        super().__init__({version: list(urls) for version, urls in pods.items()})
        self.pages = {url: page for urls in pods.values() for url, page in urls.items()}

    def scrape(self, url: str) -> list[Sample]:
        return self.pages[url]


def test_the_pods_source_reads_agreement_from_every_pod_of_the_model() -> None:
    # the label reached either pod: each counted the pair both ways, under `version`
    champion = exposition({("v2", "v1"): Agreement(0.8, 30), ("v1", "v2"): Agreement(0.8, 30)})
    shadow = exposition(
        {("v2", "v1"): Agreement(0.6, 10), ("v1", "v2"): Agreement(0.6, 10)}, version="v2"
    )
    source = Scraped({"v1": {"a": champion}, "v2": {"b": shadow}})
    reading = source.read(Query("ns", "iris", "v2", "1h", metric="agreement", other="v1"))
    assert reading.value == pytest.approx((0.8 * 30 + 0.6 * 10) / 40)
    assert reading.samples == 40
    other_model = source.read(Query("ns", "wine", "v2", "1h", metric="agreement", other="v1"))
    assert (other_model.value, other_model.samples) == (None, 0)


def test_agreement_in_promql_is_agreed_over_compared_rows() -> None:
    ctx = templates.Context("prod", "iris", "v2", "10m", other="v1")
    value, samples = templates.queries("agreement", None, ctx)
    selector = 'namespace="prod",model="iris",version="v2",other="v1"'
    assert value == (
        f"sum (increase(ciclo_feedback_agreed_total{{{selector}}}[10m])) / "
        f"sum (increase(ciclo_feedback_compared_total{{{selector}}}[10m]))"
    )
    assert samples == value.split(" / ")[1]
    query = Query("prod", "iris", "v2", "10m", metric="agreement", other="v1")
    assert templates.queries("agreement", None, query.context()) == (value, samples)
    with pytest.raises(ValueError, match="give the other"):
        templates.queries("agreement", None, templates.Context("prod", "iris", "v2", "10m"))
    # without the other version the Prometheus source answers an error, before any request
    unreachable = PrometheusSource("http://127.0.0.1:9")
    missing = unreachable.read(Query("prod", "iris", "v2", "10m", metric="agreement"))
    assert missing.error is not None and "give the other" in missing.error


def test_agreement_is_not_a_rules_metric() -> None:
    from typing import get_args

    from ciclo.api.monitorpolicy import Metric

    assert "agreement" not in get_args(Metric)
    assert "agreement" not in templates.VALUES
