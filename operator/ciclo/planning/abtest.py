"""The end of an A/B test: which version's accuracy is higher, by how much, and whether
chance explains it. Pure: counts of correct predictions in, a verdict out.

Both versions are judged on the same labels through the shared prediction store, each
prediction counted for the version that made it (docs/serving.md), so each side is a
proportion of correct predictions and the two-proportion z-test applies; the bootstrap
resamples the two sides instead, for those who prefer no normal approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Arm:
    """One version's labelled predictions: how many, how many correct."""

    version: str
    correct: int
    total: int

    @property
    def rate(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class Verdict:
    winner: str | None
    """The better version, or None when p >= alpha (no difference shown)."""
    effect: float
    """Candidate's accuracy minus champion's (absolute)."""
    p_value: float
    statistic: float
    """z for the z-test; the observed difference for the bootstrap."""

    def message(self, champion: Arm, candidate: Arm, alpha: float) -> str:
        named = f"{self.winner} wins" if self.winner else "no winner"
        return (
            f"{named}: accuracy {candidate.version} {candidate.rate:.3f} (n={candidate.total}) "
            f"vs {champion.version} {champion.rate:.3f} (n={champion.total}), "
            f"effect {self.effect:+.3f}, p={self.p_value:.3g} (alpha {alpha:g})"
        )


def _winner(champion: Arm, candidate: Arm, effect: float, p: float, alpha: float) -> str | None:
    if p >= alpha or effect == 0:
        return None
    return candidate.version if effect > 0 else champion.version


def ztest(champion: Arm, candidate: Arm, alpha: float = 0.05) -> Verdict:
    """Two-sided two-proportion z-test with the pooled proportion."""
    if champion.total == 0 or candidate.total == 0:
        return Verdict(None, 0.0, 1.0, 0.0)
    effect = candidate.rate - champion.rate
    pooled = (champion.correct + candidate.correct) / (champion.total + candidate.total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / champion.total + 1 / candidate.total))
    if se == 0:
        # Both sides all right (or all wrong): identical, whatever the sample.
        return Verdict(None, effect, 1.0, 0.0)
    z = effect / se
    p = float(2 * stats.norm.sf(abs(z)))
    return Verdict(_winner(champion, candidate, effect, p, alpha), effect, p, z)


def bootstrap(
    champion: Arm, candidate: Arm, alpha: float = 0.05, rounds: int = 10_000, seed: int = 0
) -> Verdict:
    """Two-sided bootstrap of the difference in accuracy: how often the resampled
    difference lands on the other side of zero. Seeded, so a replan gives the same verdict."""
    if champion.total == 0 or candidate.total == 0:
        return Verdict(None, 0.0, 1.0, 0.0)
    rng = np.random.default_rng(seed)
    a = rng.binomial(champion.total, champion.rate, rounds) / champion.total
    b = rng.binomial(candidate.total, candidate.rate, rounds) / candidate.total
    diff = b - a
    effect = candidate.rate - champion.rate
    below, above = float(np.mean(diff <= 0)), float(np.mean(diff >= 0))
    p = min(1.0, 2 * min(below, above))
    return Verdict(_winner(champion, candidate, effect, p, alpha), effect, p, effect)
