"""Drift statistics against scipy and hand computation, profiles, and the sliding window."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from ciclo.drift.profile import (
    Profile,
    ProfileError,
    build_profile,
    profile_categorical,
    profile_numeric,
    value_key,
)
from ciclo.drift.statistics import EPSILON, ks_bin_index, psi
from ciclo.drift.table import read_table
from ciclo.drift.window import DriftWindow

RNG = np.random.default_rng(7)


def window_of(columns: dict[str, np.ndarray], window: np.ndarray, **kw: object) -> DriftWindow:
    w = DriftWindow(build_profile(columns, **kw), size=len(window))  # type: ignore[arg-type]
    w.add(window)
    return w


@pytest.mark.parametrize(
    ("reference", "window"),
    [
        (RNG.normal(size=500), RNG.normal(0.3, 1.2, size=200)),
        (RNG.integers(0, 5, size=300).astype(float), RNG.integers(0, 7, size=100).astype(float)),
        (np.array([1.0, 2.0, 2.0, 3.0]), np.array([0.0, 2.0, 2.5, 9.0, 9.0])),
        (RNG.uniform(size=50), RNG.uniform(0.5, 2, size=1000)),
        (np.array([5.0]), np.array([5.0, 5.0, 4.0])),
    ],
)
def test_ks_is_scipys_two_sample_statistic(reference: np.ndarray, window: np.ndarray) -> None:
    w = window_of({"x": reference}, window.reshape(-1, 1))
    ours = w.drift()[0].ks
    assert ours is not None
    assert abs(ours - ks_2samp(reference, window).statistic) < 1e-9


def test_ks_on_a_subsampled_reference_is_exact_for_the_kept_sample() -> None:
    reference = RNG.normal(size=20_000)
    feature = profile_numeric("x", reference)
    repeats = np.round(np.diff([0.0, *feature.support_cdf]) * 5000).astype(int)
    kept = np.repeat(feature.support, repeats)
    window = RNG.normal(0.1, size=300)
    w = window_of({"x": reference}, window.reshape(-1, 1))
    assert abs(w.drift()[0].ks - ks_2samp(kept, window).statistic) < 1e-9  # type: ignore[operator]


def hand_psi(reference: np.ndarray, window: np.ndarray, edges: np.ndarray) -> float:
    """PSI written out: count each value into [e_i-1, e_i) bins by comparison, then sum."""
    bounds = [-math.inf, *edges.tolist(), math.inf]
    total = 0.0
    for lo, hi in itertools.pairwise(bounds):
        r = sum(1 for v in reference if lo <= v < hi) / len(reference)
        a = sum(1 for v in window if lo <= v < hi) / len(window)
        r, a = max(r, EPSILON), max(a, EPSILON)
        total += (a - r) * math.log(a / r)
    return total


def test_psi_agrees_with_the_hand_computation() -> None:
    reference = RNG.normal(size=1000)
    window = RNG.normal(0.5, 1.0, size=400)
    w = window_of({"x": reference}, window.reshape(-1, 1))
    edges = np.asarray(profile_numeric("x", reference).edges)
    assert len(edges) == 9
    assert abs(w.drift()[0].psi - hand_psi(reference, window, edges)) < 1e-9
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_categorical_psi_and_jensen_shannon_with_unseen_categories() -> None:
    reference = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    window = np.array(["a"] * 10 + ["b"] * 10 + ["z"] * 5, dtype=object)
    w = DriftWindow(build_profile({"k": reference}), size=25)
    w.add(window.reshape(-1, 1))
    stats = w.drift()[0]
    ref = np.array([0.5, 0.3, 0.2, 0.0])
    act = np.array([10, 10, 0, 5]) / 25
    hand = sum(
        (max(a, EPSILON) - max(r, EPSILON)) * math.log(max(a, EPSILON) / max(r, EPSILON))
        for r, a in zip(ref, act, strict=True)
    )
    assert abs(stats.psi - hand) < 1e-9
    assert stats.ks is None
    assert stats.js is not None
    assert abs(stats.js - jensenshannon(ref, act, base=2)) < 1e-9


def test_integer_coded_categories_match_floats_from_tensors() -> None:
    w = DriftWindow(build_profile({"k": np.array([0, 1, 1, 2])}, categorical={"k"}), size=4)
    w.add(np.array([[0.0], [1.0], [1.0], [2.0]]))
    assert w.drift()[0].psi == 0.0
    assert w.drift()[0].js == 0.0
    assert [value_key(v) for v in (1, 1.0, np.int64(1), "1", True, 2.5)] == [
        "1",
        "1",
        "1",
        "1",
        "1",
        "2.5",
    ]


def test_a_shifted_feature_crosses_psi_0_2_while_the_others_stay_under_0_1() -> None:
    train = RNG.normal(size=(5000, 4))
    live = RNG.normal(size=(2000, 4))
    live[:, 2] += 1.0  # one standard deviation
    w = DriftWindow(build_profile({f"f{i}": train[:, i] for i in range(4)}), size=2000)
    w.add(live)
    by_name = {d.feature: d.psi for d in w.drift()}
    assert by_name["f2"] > 0.2
    assert all(v < 0.1 for k, v in by_name.items() if k != "f2"), by_name


def test_a_sliding_window_equals_a_fresh_window_on_its_last_rows() -> None:
    reference = RNG.normal(size=(800, 3))
    profile = build_profile({f"f{i}": reference[:, i] for i in range(3)})
    stream = RNG.normal(0.2, size=(1000, 3))
    sliding = DriftWindow(profile, size=300)
    for start in range(0, 1000, 70):  # batches that straddle the ring's end
        sliding.add(stream[start : start + 70])
    fresh = DriftWindow(profile, size=300)
    fresh.add(stream[-300:])
    assert sliding.filled == 300
    assert sliding.drift() == fresh.drift()
    assert (sliding.psi_counts == fresh.psi_counts).all()
    assert (sliding.ks_counts == fresh.ks_counts).all()
    big = DriftWindow(profile, size=300)
    big.add(stream)  # more rows than the window at once: only the newest stay
    assert big.drift() == fresh.drift()
    lazy = DriftWindow(profile, size=300, lazy=True)
    for start in range(0, 1000, 70):
        lazy.add(stream[start : start + 70])
        if start in (140, 560):  # reads now and then; rows that left unread are never binned
            lazy.drift()
    assert lazy.filled == 300 and lazy.pending_rows < 300 + 70
    assert lazy.drift() == fresh.drift()
    assert (lazy.psi_counts == fresh.psi_counts).all() and (lazy.ks_counts == fresh.ks_counts).all()


def test_prediction_drift_is_tracked_with_the_inputs() -> None:
    x = RNG.normal(size=(600, 2))
    predicted = (x[:, 0] > 0).astype(int)
    profile = build_profile({"a": x[:, 0], "b": x[:, 1]}, predictions=predicted)
    w = DriftWindow(profile, size=100)
    live = RNG.normal(size=(100, 2))
    w.add(live, np.ones(100, dtype=int))  # every live prediction is class 1
    stats = w.drift()
    assert [s.feature for s in stats] == ["a", "b", "prediction"]
    assert stats[2].psi > 0.2
    with pytest.raises(ValueError, match="predictions are needed"):
        w.add(live)
    with pytest.raises(ValueError, match="2 features"):
        w.add(np.zeros((3, 5)), np.zeros(3))


def test_an_empty_window_reports_nan_not_zero() -> None:
    w = DriftWindow(build_profile({"x": np.arange(10.0)}), size=5)
    assert math.isnan(w.drift()[0].psi)


def test_profiles_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    profile = build_profile(
        {"x": RNG.normal(size=100), "c": np.array(["u", "v"] * 50, dtype=object)},
        predictions=np.arange(100.0),
        predictions_categorical=False,
    )
    path = tmp_path / "profile.json"
    profile.save(path)
    assert Profile.load(path) == profile
    path.write_text('{"rows": "many"}')
    with pytest.raises(ProfileError, match="is not a ciclo profile"):
        Profile.load(path)
    with pytest.raises(ProfileError, match="cannot read profile"):
        Profile.load(tmp_path / "missing.json")
    with pytest.raises(ProfileError, match="no such column: y"):
        build_profile({"x": np.arange(3.0)}, categorical={"y"})
    assert profile_categorical("c", ["u"]).reference == [1.0, 0.0]


def test_tables_from_csv_and_parquet(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("a,b,colour\n1,2.5,red\n3,,blue\n")
    table = read_table(csv)
    assert list(table) == ["a", "b", "colour"]
    assert table["a"].tolist() == [1.0, 3.0]
    assert math.isnan(table["b"][1])
    assert table["colour"].tolist() == ["red", "blue"]
    (tmp_path / "bad.csv").write_text("a,b\n1\n")
    with pytest.raises(ProfileError, match=r"bad\.csv:2: 1 values, the header has 2"):
        read_table(tmp_path / "bad.csv")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"a": [1.0, 3.0], "flag": [True, False]}), tmp_path / "t.parquet")
    parquet = read_table(tmp_path / "t.parquet")
    assert parquet["a"].tolist() == [1.0, 3.0]
    assert build_profile(parquet).features[1].kind == "categorical"


def test_ks_bins_at_the_edges_of_the_support() -> None:
    support = np.array([1.0, 2.0, 4.0])
    values = np.array([0.5, 1.0, 1.5, 2.0, 4.0, 5.0, np.inf, -np.inf, np.nan])
    # bin 2j+1 is support[j] itself, bin 2j the gap below it; above the largest is 2k
    assert ks_bin_index(values, support).tolist() == [0, 1, 2, 3, 5, 6, 6, 0, 6]
    assert ks_bin_index(values, np.array([])).tolist() == [0] * values.size
