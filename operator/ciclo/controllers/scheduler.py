"""When each MonitorPolicy is evaluated: one asyncio loop keeps every policy's next due
time (a watch event adds, changes or drops a policy; no kopf timers, so kopf writes
nothing on the object).

A policy's first run is jittered over one interval so that many policies spread out;
after that it runs every interval measured from start to start, so the evaluation's own
duration is not added. Evaluations run on a thread pool of their own, never on the event
loop, and one policy never runs twice at once: a run still going when the next is due
skips that turn. One that raises is tried again sooner, backing off.

The clock and the jitter are parameters, so that `take` (which runs are due at a given
time) is tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter, Histogram

from ciclo.controllers import logs
from ciclo.controllers.metrics import REGISTRY

log = logging.getLogger(__name__)

EVALUATIONS = Counter(
    "ciclo_monitor_evaluations",
    "MonitorPolicy evaluations by result",
    ["result"],
    registry=REGISTRY,
)
LAG = Histogram(
    "ciclo_monitor_evaluation_lag_seconds",
    "How late an evaluation started (on its worker thread) after its scheduled time",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
EVALUATION_SECONDS = Histogram(
    "ciclo_monitor_evaluation_duration_seconds",
    "One policy's evaluation",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)

Key = tuple[str, str]


def spread(interval: float) -> float:
    """A new policy's first run, somewhere in its first interval."""
    return random.uniform(0, interval)


class Scheduler:
    """Every policy's next due time; runs each on a thread pool every interval."""

    def __init__(
        self,
        run: Callable[[Key], None],
        workers: int,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] = spread,
    ) -> None:
        self.run = run
        self.clock = clock
        self.jitter = jitter
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="monitor")
        self.intervals: dict[Key, float] = {}
        self.due: dict[Key, float] = {}
        self.heap: list[tuple[float, Key]] = []
        self.running: set[Key] = set()
        self.failures: dict[Key, int] = {}
        self.wake: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def upsert(self, key: Key, interval: float) -> None:
        """Called from kopf's handler threads: hand over to the loop."""
        if self.intervals.get(key) == interval:
            return
        if self.loop is None:
            raise RuntimeError("the scheduler has not started")
        self.loop.call_soon_threadsafe(self._upsert, key, interval)

    def remove(self, key: Key) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._remove, key)

    def _upsert(self, key: Key, interval: float) -> None:
        first = key not in self.intervals
        self.intervals[key] = interval
        now = self.clock()
        due = now + self.jitter(interval) if first else min(self.due[key], now + interval)
        self.due[key] = due
        heapq.heappush(self.heap, (due, key))
        if self.wake:
            self.wake.set()

    def _remove(self, key: Key) -> None:
        self.intervals.pop(key, None)
        self.due.pop(key, None)

    def take(self, now: float) -> list[tuple[Key, float]]:
        """The runs due by `now` with their due times, each rescheduled one interval on
        (missed turns are skipped, not queued up); a policy still running skips its turn."""
        out = []
        while self.heap and self.heap[0][0] <= now:
            due, key = heapq.heappop(self.heap)
            if self.due.get(key) != due:
                continue  # stale entry: removed or rescheduled
            interval = self.intervals[key]
            following = due + interval
            while following <= now:
                following += interval
            self.due[key] = following
            heapq.heappush(self.heap, (following, key))
            if key in self.running:
                EVALUATIONS.labels("skipped").inc()
                continue
            self.running.add(key)
            out.append((key, due))
        return out

    def next_in(self) -> float:
        """Seconds until the next run is due."""
        return max(self.heap[0][0] - self.clock(), 0.0) if self.heap else 3600.0

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        while True:
            for key, due in self.take(self.clock()):
                future = self.loop.run_in_executor(self.pool, self._run, key, due)
                future.add_done_callback(lambda _, k=key: self.running.discard(k))  # type: ignore[misc]
            timeout = self.next_in()
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)

    def _run(self, key: Key, due: float) -> None:
        with logs.about(*key, kind="MonitorPolicy"):
            retry = self.evaluate(key, due)
        if retry is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.retry, key, retry)

    def evaluate(self, key: Key, due: float) -> float | None:
        """One run; when it raised, the time to try again: sooner than the interval,
        backing off 1, 2, 4 ... s, never later than it."""
        start = self.clock()
        LAG.observe(start - due)  # the loop's delay and the wait for a free worker
        try:
            self.run(key)
            EVALUATIONS.labels("ok").inc()
            self.failures.pop(key, None)
            return None
        except Exception:
            EVALUATIONS.labels("error").inc()
            n = self.failures[key] = self.failures.get(key, 0) + 1
            delay = min(2.0 ** (n - 1), self.intervals.get(key, 60.0))
            log.exception("monitorpolicy %s/%s; again in %.0f s", *key, delay)
            return self.clock() + delay
        finally:
            EVALUATION_SECONDS.observe(self.clock() - start)

    def retry(self, key: Key, when: float) -> None:
        if key in self.due and when < self.due[key]:
            self.due[key] = when
            heapq.heappush(self.heap, (when, key))
            if self.wake:
                self.wake.set()
