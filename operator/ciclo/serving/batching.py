"""Requests go to the inference thread in trips: whatever queued while it was busy goes next.

One trip runs at a time, on one thread, in arrival order; a lone request waits
for nothing, and a burst shares one hand-off to the thread (a hand-off is two
context switches and a fight for the GIL, which is most of a small model's tail
when each request makes its own). `run` decides what a trip is: each request
predicted on its own, or all of them in one predict call (adaptive batching).
An optional delay waits a little longer for more when a trip is not yet full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Item(Generic[T]):
    matrix: np.ndarray
    future: asyncio.Future[T]
    since: float


@dataclass
class Batcher(Generic[T]):
    """`run(matrices)` gets each request's matrix and returns one result per request."""

    run: Callable[[list[np.ndarray]], list[T]]
    max_rows: int
    max_delay: float = 0.0
    executor: Executor | None = None  # None: the event loop's default
    waiting: deque[_Item[T]] = field(default_factory=deque)
    alone: deque[_Item[T]] = field(default_factory=deque)  # retried one by one
    waiting_rows: int = 0
    busy: bool = False
    timer: asyncio.TimerHandle | None = None

    async def submit(self, matrix: np.ndarray) -> T:
        loop = asyncio.get_running_loop()
        if not (self.busy or self.waiting or self.alone or self.max_delay > 0):
            # alone and idle: straight to the thread, without a queue's extra future
            self.busy = True
            try:
                return (await loop.run_in_executor(self.executor, self.run, [matrix]))[0]
            finally:
                self.busy = False
                self._next()
        future: asyncio.Future[T] = loop.create_future()
        item = _Item(matrix, future, loop.time())
        self.waiting.append(item)
        self.waiting_rows += len(matrix)
        self._next()
        return await future

    def _next(self) -> None:
        """Start a trip unless one runs: now when full or without a delay, else when the
        oldest waiting request has waited max_delay."""
        if self.busy or not (self.waiting or self.alone):
            return
        loop = asyncio.get_running_loop()
        if not self.alone and self.max_delay > 0 and self.waiting_rows < self.max_rows:
            wait = self.waiting[0].since + self.max_delay - loop.time()
            if wait > 0:
                if self.timer is None:
                    self.timer = loop.call_later(wait, self._timeout)
                return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.alone:
            batch = [self.alone.popleft()]
        else:
            batch, rows = [], 0
            while self.waiting and rows < self.max_rows:
                batch.append(self.waiting.popleft())
                rows += len(batch[-1].matrix)
            self.waiting_rows -= rows
        self.busy = True
        trip = loop.run_in_executor(self.executor, self.run, [i.matrix for i in batch])
        trip.add_done_callback(lambda done: self._done(batch, done))

    def _timeout(self) -> None:
        self.timer = None
        self._next()

    def _done(self, batch: list[_Item[T]], trip: asyncio.Future[list[T]]) -> None:
        self.busy = False
        error = None if trip.cancelled() else trip.exception()
        if trip.cancelled() or error is not None:
            if len(batch) == 1:
                _settle(batch[0], error)
            else:  # one bad request must not fail the others: each on its own
                self.alone.extend(batch)
        else:
            for item, result in zip(batch, trip.result(), strict=True):
                if not item.future.done():  # a client that went away leaves a cancelled future
                    item.future.set_result(result)
        self._next()


def _settle(item: _Item[T], error: BaseException | None) -> None:
    if item.future.done():
        return
    if error is None:
        item.future.cancel()
    else:
        item.future.set_exception(error)
