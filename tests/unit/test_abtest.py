"""The A/B test's verdict: a known effect names the better version with p < 0.05; two
identical versions name none."""

from __future__ import annotations

import numpy as np
import pytest

from ciclo.planning.abtest import Arm, bootstrap, ztest

TESTS = [ztest, bootstrap]


@pytest.mark.parametrize("test", TESTS)
def test_a_known_effect_names_the_better_version(test):
    champion, candidate = Arm("v1", 800, 1000), Arm("v2", 880, 1000)
    verdict = test(champion, candidate)
    assert verdict.winner == "v2" and verdict.p_value < 0.05
    assert verdict.effect == pytest.approx(0.08)
    worse = test(candidate, champion)
    assert worse.winner == "v2" and worse.effect == pytest.approx(-0.08)


@pytest.mark.parametrize("test", TESTS)
def test_identical_versions_name_none(test):
    verdict = test(Arm("v1", 850, 1000), Arm("v2", 850, 1000))
    assert verdict.winner is None and verdict.p_value > 0.5


def test_ztest_matches_the_textbook_value():
    # 45/100 vs 60/100: pooled 0.525, z = 0.15 / sqrt(0.525*0.475*0.02) = 2.1243
    verdict = ztest(Arm("a", 45, 100), Arm("b", 60, 100))
    assert verdict.statistic == pytest.approx(2.1243, abs=1e-3)
    assert verdict.p_value == pytest.approx(0.0336, abs=1e-3)


def test_no_labels_or_all_correct_name_none():
    assert ztest(Arm("a", 0, 0), Arm("b", 0, 0)).winner is None
    assert ztest(Arm("a", 50, 50), Arm("b", 50, 50)).winner is None


def test_identical_versions_rarely_name_a_winner():
    """Under no effect the z-test's false positives stay near alpha (sampled outcomes)."""
    rng = np.random.default_rng(7)
    wins = sum(
        ztest(
            Arm("a", int(rng.binomial(500, 0.85)), 500), Arm("b", int(rng.binomial(500, 0.85)), 500)
        ).winner
        is not None
        for _ in range(400)
    )
    assert wins / 400 < 0.1
