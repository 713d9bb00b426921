"""Where predictions wait for their labels: one interface, two stores.

- feedback.PredictionStore: this process's memory, the default; right for one replica,
  since only the pod that made a prediction can match its label, and a restart loses it.
- SharedStore: Valkey or Redis, written by every pod of a Model, so a label sent through
  the Service finds its prediction whichever pod or version made it, and survives a
  rollout, a restart or a scale-down.

An entry of the shared store is a hash per request id, `ciclo:<prefix>:<id>`: one field
per version that predicted for that id (shadow predictions included), whose value is that
version's predicted class keys in row order (a JSON list). It expires `max_age` seconds
after the prediction; the server's maxmemory and eviction policy bound it besides
(docs/serving.md).

Writes never touch the request path: a request only reads a flag (notify), put_many()
only appends to a bounded queue, and a writer thread folds and sends what is queued in
batches, one round trip each (a script call), at most every LINGER seconds: waking it
per request cost a one-request load a quarter of its throughput (GIL hand-offs, a fold
and a round trip per request; docs/benchmarks.md). A prediction thus reaches the store
within about LINGER of its answer; a flush (feedback on this pod) does not wait for it.
When the store is down or slow the queue fills, and what does not fit is dropped and
counted as unrecorded (its label will be late); inference neither fails nor waits. The
client reconnects by itself on each attempt, with a back-off between failed ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, Protocol

import orjson
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.backoff import NoBackoff
from redis.retry import Retry

Entry = dict[str, tuple[str, ...]]
"""What a store holds for one request id: each version that predicted -> its class keys."""
Item = tuple[str, tuple[str, ...], float]
"""(request id, class keys in row order, when it was answered on the store's clock)."""

QUEUE_LIMIT = 10_000
"""Predictions waiting for the writer at most; beyond it they are dropped as unrecorded."""
BATCH = 500
"""Predictions per write (one script call: HSET and PEXPIRE each, on the server)."""
LINGER = 0.05
"""Seconds the writer gathers predictions after the first one before it folds and writes
them, unless a flush is waiting for them."""
PUT = """
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], ARGV[2 * i])
  redis.call('PEXPIRE', key, ARGV[2 * i + 1])
end
return #KEYS
"""
"""A batch's writes (EVALSHA): KEYS the entries; ARGV the version, then each entry's class
keys (JSON) and milliseconds to live."""
TIMEOUT = 1.0
"""Seconds a connect or a command to the shared store may take before it counts as down."""
FLUSH_TIMEOUT = 1.0
"""Seconds feedback waits for this pod's queued predictions to be written before matching."""
BACKOFF = (0.1, 2.0)
"""First and longest wait between attempts while the store is down, seconds."""
log = logging.getLogger("ciclo.serve")


class StoreUnavailable(Exception):
    """The shared store could not be read: feedback answers 503, and the client may retry."""


class Store(Protocol):
    """What the monitor needs of a prediction store."""

    remote: ClassVar[bool]
    """Its calls do network I/O: run them off the event loop."""

    @property
    def clock(self) -> Callable[[], float]:
        """What stamps a prediction's time (its age counts from there)."""

    def put_many(self, items: Iterable[Item]) -> None:
        """Keep this version's predictions."""

    def lookup(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        """What is held for these ids, leaving it there (ids with nothing are absent)."""

    def claim(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        """What is held for these ids, removed at once: a later label for them is late."""

    def flush(self, timeout: float) -> None:
        """Wait until what was put before now is stored, or `timeout` seconds."""

    def notify(self) -> None:
        """A prediction was answered (called per request: must cost next to nothing)."""


class SharedStore:
    """A prediction store in Valkey or Redis, shared by every pod of a Model."""

    remote: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        prefix: str,
        version: str,
        max_age: float,
        registry: CollectorRegistry,
        labels: tuple[str, str],
        queue_limit: int = QUEUE_LIMIT,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # no retries inside the client: the writer's loop retries, with a back-off, and a
        # feedback request answers 503 at once rather than hang
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        # one call a batch: redis-py's pipeline spent ~30 us of the pod's CPU per
        # prediction packing two commands and parsing two answers; a script call, ~4
        self.put_script = self.client.register_script(PUT)
        self.prefix = f"ciclo:{prefix}:".encode()
        self.version = version.encode()
        self.max_age = max_age
        self.queue_limit = queue_limit
        self.clock = clock
        self.queue: deque[Item] = deque()
        self.lock = threading.Condition()
        self.queued = 0  # predictions ever queued (dropped ones are never queued)
        self.done = 0  # of those, written or given up on
        self.wake = threading.Event()  # something was answered or queued
        self.hurry = threading.Event()  # a flush waits: write without lingering
        self.stopping = threading.Event()
        self.before_write: Callable[[], None] | None = None
        """Run by the writer before each round (the monitor's fold, which puts here)."""
        self.recorded = Counter(
            "ciclo_feedback_store_recorded",
            "Predictions written to the shared prediction store",
            ["model", "version"],
            registry=registry,
        ).labels(*labels)
        self.unrecorded = Counter(
            "ciclo_feedback_store_unrecorded",
            "Predictions not written to the shared store (it was down, or the queue was "
            "full): their labels will be late",
            ["model", "version"],
            registry=registry,
        ).labels(*labels)
        self.up = Gauge(
            "ciclo_feedback_store_up",
            "1 while the shared prediction store answers, 0 after a failed write or read",
            ["model", "version"],
            registry=registry,
        ).labels(*labels)
        self._available(True)
        Gauge(
            "ciclo_feedback_store_queue",
            "Predictions waiting to be written to the shared store",
            ["model", "version"],
            registry=registry,
        ).labels(*labels).set_function(lambda: len(self.queue))
        self.thread = threading.Thread(target=self._run, name="prediction-store", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the writer."""
        self.flush(timeout)
        self.stopping.set()
        self.hurry.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.client.close()

    def notify(self) -> None:
        """A prediction was answered: wake the writer, which folds and writes it. Per
        request this is an attribute read: once the writer is awake (lingering), the flag
        stays set until it folds."""
        if not self.wake.is_set():
            self.wake.set()

    def put_many(self, items: Iterable[Item]) -> None:
        """Queue predictions for the writer: O(1) each, no I/O; beyond the queue's limit
        they are dropped and counted as unrecorded."""
        dropped = 0
        with self.lock:
            room = self.queue_limit - len(self.queue)
            for item in items:
                if room > 0:
                    self.queue.append(item)
                    self.queued += 1
                    room -= 1
                else:
                    dropped += 1
        if dropped:
            self.unrecorded.inc(dropped)
        if not self.wake.is_set():
            self.wake.set()

    def flush(self, timeout: float) -> None:
        if self.before_write is not None:
            self.before_write()
        with self.lock:
            target = self.queued
            self.hurry.set()
            self.wake.set()
            self.lock.wait_for(lambda: self.done >= target, timeout)

    def lookup(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        pipe = self.client.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hgetall(self._key(request_id))
        return self._entries(request_ids, self._execute(pipe))

    def claim(self, request_ids: Sequence[str]) -> dict[str, Entry]:
        # MULTI/EXEC: read and delete at once, so two pods given the same label (a retry,
        # a duplicate) count it once between them
        pipe = self.client.pipeline(transaction=True)
        for request_id in request_ids:
            pipe.hgetall(self._key(request_id))
            pipe.delete(self._key(request_id))
        return self._entries(request_ids, self._execute(pipe)[::2])

    def _key(self, request_id: str) -> bytes:
        return self.prefix + request_id.encode()

    def _execute(self, pipe: redis.client.Pipeline) -> list[object]:
        try:
            results: list[object] = pipe.execute()
        except redis.RedisError as e:
            self._available(False)
            raise StoreUnavailable(f"the shared prediction store is unreachable: {e}") from None
        self._available(True)
        return results

    def _available(self, up: bool) -> None:
        self.available = up
        self.up.set(int(up))

    @staticmethod
    def _entries(request_ids: Sequence[str], found: list[object]) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        for request_id, fields in zip(request_ids, found, strict=True):
            if isinstance(fields, dict) and fields:
                out[request_id] = {
                    version.decode(): tuple(orjson.loads(keys)) for version, keys in fields.items()
                }
        return out

    def _run(self) -> None:
        wait = BACKOFF[0]
        while not self.stopping.is_set():
            self.wake.wait()
            self.hurry.wait(LINGER)  # gather more predictions per fold and per write
            self.hurry.clear()
            self.wake.clear()
            if self.before_write is not None:
                try:
                    self.before_write()
                except Exception:  # a fold that failed must not stop the writer
                    log.exception("folding predictions for the shared store failed")
            while True:
                with self.lock:
                    batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
                if not batch:
                    break
                written = self._write(batch)
                with self.lock:
                    self.done += len(batch)
                    self.lock.notify_all()
                if written:
                    wait = BACKOFF[0]
                    continue
                # down: the next attempt reconnects; meanwhile the queue fills, then drops
                if self.stopping.wait(wait):
                    return
                wait = min(wait * 2, BACKOFF[1])

    def _write(self, batch: list[Item]) -> bool:
        now, keys = self.clock(), list[bytes]()
        args: list[bytes | int] = [self.version]
        for request_id, predicted, stamp in batch:
            ttl = int((self.max_age - (now - stamp)) * 1000)
            if ttl <= 0:  # aged out while it waited
                continue
            keys.append(self._key(request_id))
            args += (orjson.dumps(predicted), ttl)
        try:
            if keys:
                self.put_script(keys=keys, args=args)
        except redis.RedisError as e:
            if self.available:  # the first failure of an outage only
                log.warning("the shared prediction store is down (%s); predictions are dropped", e)
            self._available(False)
            self.unrecorded.inc(len(batch))
            return False
        if not self.available:
            log.warning("the shared prediction store is back")
        self._available(True)
        self.recorded.inc(len(keys))
        self.unrecorded.inc(len(batch) - len(keys))
        return True
