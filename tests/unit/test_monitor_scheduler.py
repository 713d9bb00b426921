"""The MonitorPolicy scheduler: which runs are due when (on an injected clock, so nothing
waits), the lag and duration metrics on the operator's registry, the retry back-off, and
one real asyncio loop that runs policies on a thread pool."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import generate_latest

from ciclo.controllers.metrics import REGISTRY
from ciclo.controllers.scheduler import Key, Scheduler


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scheduled(clock: Clock, run=lambda key: None, jitter=lambda interval: 0.0) -> Scheduler:  # type: ignore[no-untyped-def]
    return Scheduler(run, workers=1, clock=clock, jitter=jitter)


def test_each_policy_is_due_every_interval_from_its_jittered_first_run() -> None:
    clock = Clock()
    scheduler = scheduled(clock, jitter=lambda interval: interval / 2)
    scheduler._upsert(("ns", "a"), 10.0)
    scheduler._upsert(("ns", "b"), 4.0)
    assert scheduler.take(clock.now) == []
    assert scheduler.next_in() == 2.0  # b's first run, half an interval on
    seen: list[tuple[Key, float]] = []
    for step in range(1, 16):
        clock.now = 1000.0 + step
        for key, due in scheduler.take(clock.now):
            seen.append((key, due - 1000.0))
            scheduler.running.discard(key)  # the run is over
    assert [d for k, d in seen if k == ("ns", "b")] == [2.0, 6.0, 10.0, 14.0]
    assert [d for k, d in seen if k == ("ns", "a")] == [5.0, 15.0]


def test_missed_turns_are_skipped_not_queued_and_a_running_policy_skips_its_turn() -> None:
    clock = Clock()
    scheduler = scheduled(clock)
    scheduler._upsert(("ns", "a"), 1.0)
    assert scheduler.take(clock.now) == [(("ns", "a"), 1000.0)]
    skipped = sample("ciclo_monitor_evaluations_total", result="skipped")
    clock.now += 1.0
    assert scheduler.take(clock.now) == [], "still running: the turn is skipped"
    assert sample("ciclo_monitor_evaluations_total", result="skipped") - skipped == 1
    scheduler.running.clear()
    clock.now += 5.5  # five turns missed while the loop was busy
    assert scheduler.take(clock.now) == [(("ns", "a"), 1002.0)]
    assert scheduler.due[("ns", "a")] == 1007.0, "the next turn after now, not a backlog"


def test_a_changed_interval_takes_effect_and_a_removed_policy_runs_no_more() -> None:
    clock = Clock()
    scheduler = scheduled(clock)
    scheduler._upsert(("ns", "a"), 60.0)
    scheduler.take(clock.now)
    scheduler.running.clear()
    scheduler._upsert(("ns", "a"), 5.0)  # sooner: due within the new interval
    assert scheduler.due[("ns", "a")] == 1005.0
    scheduler._remove(("ns", "a"))
    clock.now += 100
    assert scheduler.take(clock.now) == []


def test_the_lag_counts_the_wait_for_a_worker_and_the_duration_is_measured() -> None:
    clock = Clock()

    def run(key: Key) -> None:
        clock.now += 0.25  # the evaluation's own time

    scheduler = scheduled(clock, run=run)
    count = sample("ciclo_monitor_evaluation_lag_seconds_count")
    total = sample("ciclo_monitor_evaluation_lag_seconds_sum")
    durations = sample("ciclo_monitor_evaluation_duration_seconds_sum")
    clock.now = 1000.3  # due at 1000.0, started 0.3 s late
    assert scheduler.evaluate(("ns", "a"), 1000.0) is None
    assert sample("ciclo_monitor_evaluation_lag_seconds_count") - count == 1
    assert sample("ciclo_monitor_evaluation_lag_seconds_sum") - total == pytest.approx(0.3)
    assert sample("ciclo_monitor_evaluation_duration_seconds_sum") - durations == pytest.approx(
        0.25
    )
    text = generate_latest(REGISTRY).decode()
    assert "ciclo_monitor_evaluation_lag_seconds_bucket{le=" in text


def test_a_failing_evaluation_is_retried_sooner_backing_off_up_to_the_interval() -> None:
    clock = Clock()

    def run(key: Key) -> None:
        raise RuntimeError("the API server said no")

    scheduler = scheduled(clock, run=run)
    scheduler._upsert(("ns", "a"), 5.0)
    assert scheduler.take(clock.now) == [(("ns", "a"), clock.now)]  # next turn in 5 s
    errors = sample("ciclo_monitor_evaluations_total", result="error")
    retries = [scheduler.evaluate(("ns", "a"), clock.now) for _ in range(5)]
    assert [r - clock.now for r in retries if r is not None] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert sample("ciclo_monitor_evaluations_total", result="error") - errors == 5
    scheduler.retry(("ns", "a"), clock.now + 1.0)
    assert scheduler.due[("ns", "a")] == clock.now + 1.0, "sooner than the next turn"
    scheduler.retry(("ns", "a"), clock.now + 50.0)
    assert scheduler.due[("ns", "a")] == clock.now + 1.0, "never later than it"


def test_the_loop_runs_every_policy_again_and_again_on_the_pool() -> None:
    """The real loop and thread pool: each of five policies runs three times."""
    runs: dict[Key, int] = {}
    lock = threading.Lock()
    done = threading.Event()
    keys = [("ns", f"p{i}") for i in range(5)]

    def run(key: Key) -> None:
        with lock:
            runs[key] = runs.get(key, 0) + 1
            if len(runs) == len(keys) and min(runs.values()) >= 3:
                done.set()

    scheduler = Scheduler(run, workers=2)
    ok = sample("ciclo_monitor_evaluations_total", result="ok")

    async def main() -> None:
        task = asyncio.create_task(scheduler.serve())
        await asyncio.sleep(0)
        for key in keys:
            scheduler.upsert(key, 0.05)
        await asyncio.get_running_loop().run_in_executor(None, done.wait, 30)
        task.cancel()

    asyncio.run(main())
    scheduler.pool.shutdown(wait=True)
    assert done.is_set(), runs
    assert sample("ciclo_monitor_evaluations_total", result="ok") - ok == sum(runs.values())
