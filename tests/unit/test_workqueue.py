"""The reconcile work queue: coalescing, one worker per key at a time, retry after failure."""

from __future__ import annotations

import threading
import time

from ciclo.controllers.workqueue import WorkQueue


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_keys_added_while_waiting_coalesce():
    gate = threading.Event()
    done: list[str] = []

    def work(key: str) -> None:
        if key == "block":
            gate.wait()
        done.append(key)

    queue = WorkQueue(work, workers=1)
    queue.add("block")
    wait_until(lambda: queue.pending() == 1)
    for _ in range(5):
        queue.add("m")
    gate.set()
    wait_until(lambda: queue.pending() == 0)
    assert done == ["block", "m"]


def test_a_key_added_while_active_runs_again_after_never_concurrently():
    running = threading.Event()
    release = threading.Event()
    active = 0
    most = 0
    runs = 0
    lock = threading.Lock()

    def work(key: str) -> None:
        nonlocal active, most, runs
        with lock:
            active += 1
            most = max(most, active)
            runs += 1
        if runs == 1:
            running.set()
            release.wait()
        with lock:
            active -= 1

    queue = WorkQueue(work, workers=4)
    queue.add("m")
    running.wait(5)
    queue.add("m")
    queue.add("m")
    release.set()
    wait_until(lambda: queue.pending() == 0 and runs == 2)
    assert runs == 2 and most == 1


def test_failed_work_comes_back_after_a_growing_back_off_and_a_requeue_after_its_delay():
    """The delays are seen through the queue's `later`, so nothing waits for them."""
    attempts: list[str] = []
    delays: list[float] = []
    outcomes = [RuntimeError("API server unavailable")] * 3 + [7.5, None]

    def work(key: str) -> float | None:
        attempts.append(key)
        outcome = outcomes[len(attempts) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def later(delay: float, then) -> None:
        delays.append(delay)
        then()  # at once: the next attempt

    queue = WorkQueue(work, workers=1, later=later)
    queue.add("m")
    wait_until(lambda: len(attempts) == 5 and queue.pending() == 0)
    assert delays == [1.0, 2.0, 4.0, 7.5], "1, 2, 4 s after failures; the work's own delay"
