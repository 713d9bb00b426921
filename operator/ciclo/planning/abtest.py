"""The end of an A/B test: which version's accuracy is higher, by how much, and whether
chance explains it. Pure: counts of correct predictions in, a verdict out.

Both versions are judged on the same labels through the shared prediction store, each
prediction counted for the version that made it (docs/serving.md), so each side is a
proportion of correct predictions and the two-proportion z-test applies; the bootstrap
resamples the two sides instead, for those who prefer no normal approximation.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ciclo.api.model import Model
from ciclo.api.rollout import ABTestArm, ABTestResult
from ciclo.monitoring.evaluation import Reading, seconds
from ciclo.planning.rollout import running


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
    # Never 0: `rounds` resamples cannot show a p-value below 1/rounds.
    p = max(1 / rounds, min(1.0, 2 * min(below, above)))
    return Verdict(_winner(champion, candidate, effect, p, alpha), effect, p, effect)


def window(model: Model, now: dt.datetime) -> str | None:
    """The query window of a running A/B test that has no verdict yet: from its start to
    now (a duration such as 95s), or None when no such test runs."""
    canary, ab = model.status.canary, model.spec.rollout.abtest
    if canary is None or ab is None or not running(canary) or canary.strategy != "abtest":
        return None
    verdict = model.status.abtest
    if verdict is not None and (verdict.version, verdict.since) == (canary.version, canary.since):
        return None
    return f"{max(1, math.ceil((now - canary.since).total_seconds()))}s"


def arm(version: str, reading: Reading) -> Arm | None:
    """A version's labelled predictions from an accuracy reading (a proportion and its
    sample count), or None when the source had none."""
    if reading.error is not None or reading.value is None or not reading.samples:
        return None
    return Arm(version, round(reading.value * reading.samples), reading.samples)


def conclude(model: Model, readings: dict[str, Reading], now: dt.datetime) -> ABTestResult | None:
    """The verdict of the running A/B test once its duration has passed or both versions
    have its sample size of labelled predictions; None while it goes on."""
    canary, ab = model.status.canary, model.spec.rollout.abtest
    if window(model, now) is None or canary is None or ab is None:
        return None
    champion = arm(canary.champion, readings.get(canary.champion, Reading()))
    candidate = arm(canary.version, readings.get(canary.version, Reading()))
    elapsed = (now - canary.since).total_seconds()
    timed_out = ab.duration is not None and elapsed >= seconds(ab.duration)
    sampled = (
        ab.sample_size is not None
        and champion is not None
        and candidate is not None
        and min(champion.total, candidate.total) >= ab.sample_size
    )
    if not (timed_out or sampled):
        return None
    champion = champion or Arm(canary.champion, 0, 0)
    candidate = candidate or Arm(canary.version, 0, 0)
    test = ztest if ab.test == "ztest" else bootstrap
    verdict = test(champion, candidate, ab.alpha)
    return ABTestResult(
        version=canary.version,
        champion=canary.champion,
        since=canary.since,
        test=ab.test,
        winner=verdict.winner,
        effect=verdict.effect,
        p_value=min(1.0, max(0.0, verdict.p_value)),
        arms=[
            ABTestArm(version=a.version, correct=a.correct, total=a.total)
            for a in (champion, candidate)
        ],
        message=verdict.message(champion, candidate, ab.alpha),
        at=now,
    )
