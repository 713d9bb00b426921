"""A work queue in the manner of client-go's: triggers for one key coalesce.

A key added while it waits is not added twice; a key added while it is being
worked on is worked on once more afterwards, never concurrently; a key whose
work failed comes back after a back-off. Under load, bursts of watch events for
one Model collapse into one reconcile. (No library offers this for threads:
kopf serialises per object, but our triggers come from several kinds.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ciclo.controllers import logs

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


def _timer(delay: float, then: Callable[[], None]) -> None:
    timer = threading.Timer(delay, then)
    timer.daemon = True
    timer.start()


class WorkQueue(Generic[K]):
    """`later(delay, then)` runs `then` after `delay` seconds (a thread timer; a test passes
    its own, to see the delays without waiting for them)."""

    def __init__(
        self,
        work: Callable[[K], float | None],
        workers: int,
        *,
        max_backoff: float = 60.0,
        later: Callable[[float, Callable[[], None]], None] = _timer,
    ) -> None:
        self._work = work
        self._max_backoff = max_backoff
        self._later = later
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._waiting: set[K] = set()
        self._active: set[K] = set()
        self._again: set[K] = set()
        self._failures: dict[K, int] = {}
        self._threads = [
            threading.Thread(target=self._run, name=f"reconcile-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def add(self, key: K) -> None:
        with self._cond:
            if key in self._active:
                self._again.add(key)
            elif key not in self._waiting:
                self._waiting.add(key)
                self._queue.append(key)
                self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._active)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                key = self._queue.popleft()
                self._waiting.discard(key)
                self._active.add(key)
            retry = None
            with _about(key):
                try:
                    retry = self._work(key)
                    self._failures.pop(key, None)
                except Exception:
                    n = self._failures.get(key, 0) + 1
                    self._failures[key] = n
                    retry = min(2.0 ** (n - 1), self._max_backoff)
                    log.exception("%s failed; again in %.0f s", key, retry)
            with self._cond:
                self._active.discard(key)
                again = key in self._again
                self._again.discard(key)
            if again:
                self.add(key)
            elif retry is not None:
                self._later(retry, functools.partial(self.add, key))


def _about(key: Hashable) -> contextlib.AbstractContextManager[None]:
    """A (namespace, name) key names the object its work's log lines are about."""
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
        return logs.about(key[0], key[1])
    return contextlib.nullcontext()


class Relevance:
    """Remembers, per object, the parts of it that can change a plan.

    A watch event whose relevant parts are what they were (an echo of our own
    status write, a Deployment status step that changes no ready count) need not
    queue anything; the resync covers anything this lets through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Hashable, Hashable] = {}

    def changed(self, key: Hashable, fingerprint: Hashable) -> bool:
        with self._lock:
            if self._seen.get(key) == fingerprint:
                return False
            self._seen[key] = fingerprint
            return True

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._seen.pop(key, None)
