"""The end of a shadow: whether the candidate, answering a copy of every request with its
answers discarded, did as well as the champion on the same labels, agreed with it often
enough and was not too slow. Pure: readings in, a verdict out.

Both versions predicted for the same request ids, so the shared prediction store holds
both predictions under each id and a label counts for each (docs/serving.md); the
agreement is counted by the serving pods on those labelled rows.
"""

from __future__ import annotations

import datetime as dt
import math

from ciclo.api.model import Model
from ciclo.api.rollout import Shadow, ShadowResult
from ciclo.monitoring.evaluation import Reading, seconds
from ciclo.planning.rollout import running


def window(model: Model, now: dt.datetime) -> str | None:
    """The query window of a running shadow whose duration has passed and that has no
    verdict yet: from its start to now (such as 605s); None otherwise."""
    canary, shadow = model.status.canary, model.spec.rollout.shadow or Shadow()
    if canary is None or not running(canary) or canary.strategy != "shadow":
        return None
    verdict = model.status.shadow
    if verdict is not None and (verdict.version, verdict.since) == (canary.version, canary.since):
        return None
    elapsed = (now - canary.since).total_seconds()
    if elapsed < seconds(shadow.duration):
        return None
    return f"{max(1, math.ceil(elapsed))}s"


def _value(reading: Reading | None) -> float | None:
    if reading is None or reading.error is not None or reading.value is None:
        return None
    return reading.value if math.isfinite(reading.value) else None


def conclude(
    model: Model,
    accuracy: dict[str, Reading],
    agreement: Reading,
    latency: dict[str, Reading],
    now: dt.datetime,
) -> ShadowResult | None:
    """The verdict of the running shadow once its duration has passed (`window`), from
    each version's accuracy and p99 latency (seconds) and the candidate's agreement with
    the champion; None while it goes on. Promoted only if every comparison passes: too
    few labels is a failure, since nothing shows the candidate is as good."""
    canary, rule = model.status.canary, model.spec.rollout.shadow or Shadow()
    if window(model, now) is None or canary is None:
        return None
    champion, candidate = canary.champion, canary.version
    mine, theirs = _value(accuracy.get(candidate)), _value(accuracy.get(champion))
    samples = min(
        int(accuracy[v].samples or 0) if v in accuracy else 0 for v in (candidate, champion)
    )
    agreed = _value(agreement)
    slow, fast = _value(latency.get(candidate)), _value(latency.get(champion))
    failed = []
    if mine is None or theirs is None or samples < rule.min_samples:
        failed.append(f"{samples} labelled predictions per version, minSamples {rule.min_samples}")
    elif mine < theirs - rule.max_accuracy_drop:
        failed.append(
            f"accuracy {mine:.3f} < {champion}'s {theirs:.3f} - maxAccuracyDrop "
            f"{rule.max_accuracy_drop:g}"
        )
    if agreed is None:
        failed.append("no labelled rows compared with the champion")
    elif 1 - agreed > rule.max_disagreement:
        failed.append(f"disagreement {1 - agreed:.3f} > maxDisagreement {rule.max_disagreement:g}")
    ratio = rule.max_latency_ratio
    if ratio is not None and slow is not None and fast and slow / fast > ratio:
        failed.append(
            f"p99 latency {slow * 1000:.1f} ms > {ratio:g} x {champion}'s {fast * 1000:.1f} ms"
        )
    shown = (
        f"accuracy {candidate} {_show(mine)} vs {champion} {_show(theirs)} (n={samples}), "
        f"agreement {_show(agreed)}, p99 {_ms(slow)} vs {_ms(fast)}"
    )
    message = (
        f"shadow of {candidate} failed: {'; '.join(failed)} ({shown})"
        if failed
        else f"shadow of {candidate} passed: {shown}"
    )
    return ShadowResult(
        version=candidate,
        champion=champion,
        since=canary.since,
        promote=not failed,
        accuracy=mine,
        champion_accuracy=theirs,
        samples=samples,
        agreement=agreed,
        latency_p99=slow,
        champion_latency_p99=fast,
        failed=failed,
        message=message,
        at=now,
    )


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"
