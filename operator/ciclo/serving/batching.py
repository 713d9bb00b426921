"""Adaptive batching: requests that arrive while the model is busy are run together.

One batch runs at a time; whatever queued meanwhile (up to max_rows) forms the
next, so a lone request waits for nothing and a burst shares one predict call.
An optional delay waits a little longer for more when a batch is not yet full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Item(Generic[T]):
    matrix: np.ndarray
    future: asyncio.Future[T]


@dataclass
class Batcher(Generic[T]):
    """`run(matrices)` gets each request's matrix and returns one result per request."""

    run: Callable[[list[np.ndarray]], list[T]]
    max_rows: int
    max_delay: float = 0.0
    queue: asyncio.Queue[_Item[T]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def submit(self, matrix: np.ndarray) -> T:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(matrix, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            rows = batch[0].matrix.shape[0]
            deadline = loop.time() + self.max_delay
            while rows < self.max_rows:
                if self.queue.empty():
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), timeout)
                    except TimeoutError:
                        break
                else:
                    item = self.queue.get_nowait()
                batch.append(item)
                rows += item.matrix.shape[0]
            await self._run(batch)

    async def _run(self, batch: list[_Item[T]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(None, self.run, [i.matrix for i in batch])
        except Exception as e:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(e)
                return
            for item in batch:  # one bad request must not fail the others: each on its own
                await self._run([item])
            return
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():  # a client that went away leaves a cancelled future
                item.future.set_result(result)
