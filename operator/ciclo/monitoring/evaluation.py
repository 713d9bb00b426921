"""Judging one rule: pure functions from a reading and the last status to the next status.

Fail safe: a reading without a value, with too few samples, or that failed is NoData
or Error, never a breach, and leaves the breach count where it was; only an Ok
reading (a recovery) resets it. A rule acts once its count reaches failureThreshold.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

from ciclo.api.monitorpolicy import Rule, RuleState, RuleStatus

# Built-in metrics where lower is better: a baseline allows them to rise, not drop.
LOWER_IS_BETTER = frozenset(
    {
        "error_rate",
        "latency_p99",
        "feature_drift_psi",
        "feature_drift_ks",
        "prediction_drift_psi",
    }
)


@dataclass(frozen=True)
class Reading:
    """What a source answered for one rule: a value, how many samples it rests on, or an error."""

    value: float | None = None
    samples: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Bounds:
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)

    def breached_by(self, value: float) -> bool:
        return (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        )


def bounds(rule: Rule, baseline: float | None) -> Bounds | None:
    """The rule's limits, the baseline's allowed drop included; None when the baseline is
    needed but unknown (then the rule has no data to judge by)."""
    low, high = rule.min, rule.max
    if rule.baseline is not None:
        if baseline is None or not math.isfinite(baseline):
            return None
        allowed = rule.baseline.max_drop * (abs(baseline) if rule.baseline.relative else 1.0)
        if rule.metric in LOWER_IS_BETTER:
            limit = baseline + allowed
            high = limit if high is None else min(high, limit)
        else:
            limit = baseline - allowed
            low = limit if low is None else max(low, limit)
    return Bounds(low, high)


@dataclass(frozen=True)
class Verdict:
    status: RuleStatus
    act: bool
    """The breach count has reached failureThreshold: the rule's action is due."""


def evaluate(
    rule: Rule,
    reading: Reading,
    previous: RuleStatus | None,
    version: str | None,
    now: dt.datetime,
    baseline: float | None = None,
) -> Verdict:
    """The rule's next status from its reading and its last status (for the same version)."""
    if previous is not None and previous.version != version:
        previous = None  # another version serves now: its record starts afresh
    count = previous.consecutive_breaches if previous else 0
    since = previous.breaching_since if previous else None
    limits = bounds(rule, baseline)
    threshold = limits.describe() if limits else "baseline unknown"

    def result(state: RuleState, message: str, count: int, since: dt.datetime | None) -> Verdict:
        value = (
            reading.value if reading.value is not None and math.isfinite(reading.value) else None
        )
        status = RuleStatus(
            name=rule.name,
            state=state,
            version=version,
            value=value,
            threshold=threshold,
            samples=reading.samples,
            consecutive_breaches=count,
            breaching_since=since,
            message=message,
            last_evaluated=now,
        )
        return Verdict(status, state == "Breaching" and count >= rule.failure_threshold)

    if version is None:
        return result("NoData", "the model serves no version", count, since)
    if reading.error is not None:
        return result("Error", reading.error, count, since)
    if reading.value is None or not math.isfinite(reading.value):
        return result("NoData", "no value in the window", count, since)
    if rule.min_samples and (reading.samples or 0) < rule.min_samples:
        return result(
            "NoData",
            f"{reading.samples or 0} samples, fewer than minSamples {rule.min_samples}",
            count,
            since,
        )
    if limits is None:
        return result("NoData", "the baseline value is unknown", count, since)
    if not limits.breached_by(reading.value):
        return result("Ok", f"{reading.value:g} within {threshold}", 0, None)
    count += 1
    since = since or now
    return result(
        "Breaching",
        f"{reading.value:g} outside {threshold} ({count}/{rule.failure_threshold})",
        count,
        since,
    )


def action_id(rule: str, version: str, since: dt.datetime | None) -> str:
    """Names one episode of breaches of one rule on one version: its action is taken once."""
    stamp = since.strftime("%Y%m%dT%H%M%SZ") if since else "-"
    return f"{rule}/{version}/{stamp}"


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: str) -> float:
    """A Kubernetes-style duration (30s, 1m30s, 500ms) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)
