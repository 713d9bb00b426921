"""The MonitorPolicy scheduler's lag metric: measured when a worker starts the evaluation,
so a wait for a free worker counts, and exported on the operator's registry."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from prometheus_client import generate_latest

from ciclo.controllers import monitorpolicy
from ciclo.controllers.metrics import REGISTRY
from ciclo.controllers.monitorpolicy import Key, Scheduler


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run_scheduler(scheduler: Scheduler, keys: list[Key], interval: float, seconds: float) -> None:
    async def main() -> None:
        task = asyncio.create_task(scheduler.serve())
        await asyncio.sleep(0)
        for key in keys:
            scheduler.upsert(key, interval)
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(main())
    scheduler.pool.shutdown(wait=True)


def test_waiting_for_a_worker_counts_as_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitorpolicy.random, "uniform", lambda a, b: a)  # both due at once
    starts: list[float] = []
    lock = threading.Lock()

    def run(key: Key) -> None:
        with lock:
            starts.append(time.monotonic())
        time.sleep(0.2)

    count = sample("ciclo_monitor_evaluation_lag_seconds_count")
    total = sample("ciclo_monitor_evaluation_lag_seconds_sum")
    # one worker, two policies due together; the interval is long enough for one turn each
    run_scheduler(Scheduler(run, workers=1), [("ns", "a"), ("ns", "b")], 5.0, 0.5)
    assert len(starts) == 2
    assert sample("ciclo_monitor_evaluation_lag_seconds_count") - count == 2
    lags = sample("ciclo_monitor_evaluation_lag_seconds_sum") - total
    assert 0.2 <= lags < 0.35, "the second policy waited for the first's 0.2 s"
    assert sample("ciclo_monitor_evaluation_lag_seconds_bucket", le="0.5") >= 2


def test_an_idle_scheduler_runs_every_interval_with_little_lag() -> None:
    runs: list[Key] = []
    count = sample("ciclo_monitor_evaluation_lag_seconds_count")
    total = sample("ciclo_monitor_evaluation_lag_seconds_sum")
    ok = sample("ciclo_monitor_evaluations_total", result="ok")
    keys = [("ns", f"p{i}") for i in range(5)]
    run_scheduler(Scheduler(runs.append, workers=2), keys, 0.2, 1.1)
    # first runs jittered over one interval, then every 0.2 s: 5 or 6 turns each
    assert 25 <= len(runs) <= 30, len(runs)
    assert sample("ciclo_monitor_evaluations_total", result="ok") - ok == len(runs)
    observed = sample("ciclo_monitor_evaluation_lag_seconds_count") - count
    assert observed == len(runs)
    mean = (sample("ciclo_monitor_evaluation_lag_seconds_sum") - total) / observed
    assert 0 <= mean < 0.05, mean
    text = generate_latest(REGISTRY).decode()
    assert "ciclo_monitor_evaluation_lag_seconds_bucket{le=" in text
    assert "ciclo_monitor_evaluation_duration_seconds_count" in text


def test_a_run_still_going_skips_its_next_turn_and_says_so() -> None:
    runs: list[Key] = []

    def run(key: Key) -> None:
        runs.append(key)
        time.sleep(0.9)

    skipped = sample("ciclo_monitor_evaluations_total", result="skipped")
    run_scheduler(Scheduler(run, workers=2), [("ns", "slow")], 0.1, 0.75)
    assert runs == [("ns", "slow")]
    assert sample("ciclo_monitor_evaluations_total", result="skipped") - skipped >= 4
