"""The CPU a request pays for the shared prediction store, without HTTP around it:
Monitor.observe (what `ciclo serve` does per answered request) at a paced rate, as a
one-request-at-a-time client drives it, with the store's writer thread running, against
the in-memory store; process CPU time (every thread's) per request.

    PYTHONPATH=operator .venv/bin/python benchmarks/feedback_store_cost.py [--rate 1000]

Starts a redis-server of its own (`make redis`). Pinned to one CPU (when there are two),
like the server in benchmarks/feedback_store.py. CPU time moves much less with other
load on the machine than throughput does, so this tells a change's cost apart on a busy
machine: run it with the PYTHONPATH of each checkout to compare them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import numpy as np
import redis

from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor
from ciclo.serving.store import SharedStore

PORT = 18991


def cost(url: str | None, rate: float, seconds: float) -> float:
    """Process CPU microseconds per observed request: in memory when `url` is None."""
    metrics = RuntimeMetrics("bench", "v1")
    store = SharedStore(url, "b/x", "v1", 3600.0, metrics.registry, metrics.labels) if url else None
    monitor = Monitor(metrics, True, store=store, classes=["0", "1", "2"])
    if store is not None:
        store.before_write = monitor.fold
        store.start()
    row, predicted = np.zeros((1, 20)), np.array([1])
    n = int(rate * seconds)
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(n):
        monitor.observe(uuid.uuid4().hex, row, predicted)
        if monitor.due:  # as the inference thread does
            monitor.fold()
        idle = start + (i + 1) / rate - time.perf_counter()
        if idle > 0:  # the client waits between requests: the writer's moment
            time.sleep(idle)
    if store is not None:
        store.flush(10)
    used = time.process_time() - cpu
    if store is not None:
        store.close()
    return used / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="requests per second")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    assert binary, "redis-server is missing: make redis"
    url = f"redis://127.0.0.1:{PORT}/0"
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [binary, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
            for n in range(args.rounds):
                memory, shared = (
                    cost(None, args.rate, args.seconds),
                    cost(url, args.rate, args.seconds),
                )
                print(
                    f"round {n + 1}: in memory {memory:.0f} us/request, shared {shared:.0f} "
                    f"us/request: the shared store adds {shared - memory:.0f}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
