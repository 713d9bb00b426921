"""The shared prediction store's cost (issue 16): `ciclo serve` with the in-memory store
against `--feedback-store` on a local redis-server, then the store's memory per 100,000
pending predictions and the labels per second one pod matches.

    PYTHONPATH=operator:tools .venv/bin/python benchmarks/feedback_store.py

Same model, body, load generator and CPU pinning as benchmarks/serving.py (server on CPU 1,
load generator on CPU 0); redis-server runs on CPU 0 too, beside the load generator, so
the server's core is its own in both configurations. Rounds alternate which goes first;
the table gives medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_serving", HERE / "serving.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_serving"] = bench
spec.loader.exec_module(bench)

PORT, REDIS_PORT = 18950, 18979


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--labels", type=int, default=20_000, help="for the matching rate")
    parser.add_argument("--out", type=Path, default=bench.CACHE / "feedback-store.json")
    args = parser.parse_args()
    args.pin = (os.cpu_count() or 1) >= 2

    bench.build_loadgen()
    work = bench.CACHE / "feedback-store"
    work.mkdir(parents=True, exist_ok=True)
    row = bench.train(work)
    import joblib

    expected = int(joblib.load(work / "model.joblib").predict(row.reshape(1, -1))[0])
    (work / "body-sklearn.json").write_bytes(
        json.dumps(bench.infer_body(row.tolist(), "FP64")).encode()
    )
    subprocess.run(
        [sys.executable, "-m", "ciclo.cli.main", "profile", str(work / "train.csv"), "--target",
         "label", "--model", str(work / "model.joblib"), "--format", "sklearn", "--out",
         str(work / "profile.json")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    store_url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    serve = [sys.executable, "-m", "ciclo.cli.main", "serve", "--model",
             str(work / "model.joblib"), "--format", "sklearn", "--name", bench.NAME,
             "--version", bench.VERSION, "--host", "127.0.0.1", "--grpc-port", "0",
             "--baseline", str(work / "profile.json")]  # fmt: skip
    configs = {"memory": serve, "shared": [*serve, "--feedback-store", store_url]}
    runs: list[dict[str, Any]] = []
    with redis_server(REDIS_PORT, args.pin):
        for n in range(args.rounds):
            print(f"[store] round {n + 1}/{args.rounds}, load average {bench.loadavg()}")
            order = list(configs) if n % 2 == 0 else list(reversed(configs))
            for i, store in enumerate(order):
                port = PORT + 5 * i
                label = "ciclo serve"  # serving.py checks that its monitoring ran
                server = bench.Server(
                    label, "sklearn", [*configs[store], "--port", str(port)],
                    env={"BENCH_PORT": str(port)},
                )  # fmt: skip
                for c, r in bench.serve_and_load(server, work, expected, args).items():
                    runs.append({"round": n, "store": store, **r})
                    print(f"[store]   {store:6} c={c:<3} {r['rps']:8.0f} req/s  "
                          f"p99 {r['p99_ms']:.2f} ms", flush=True)  # fmt: skip
        memory = memory_per_100k(store_url)
        rates = {store: labels_per_second(command, store, args, work) for store, command in
                 configs.items()}  # fmt: skip
    report = {
        "machine": bench.machine(),
        "command": " ".join(sys.argv),
        "runs": runs,
        "bytes_per_100k_pending": memory,
        "labels_per_second": rates,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(runs))
    print(f"[store] memory per 100,000 pending one-row predictions: {memory / 2**20:.1f} MiB "
          f"({memory / 100_000:.0f} bytes each)")  # fmt: skip
    for store, rate in rates.items():
        print(f"[store] labels matched per second by one pod, {store} store: {rate:.0f}")
    print(f"[store] results in {args.out}")
    return 0


class redis_server:
    def __init__(self, port: int, pin: bool) -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        assert binary, "redis-server is missing: make redis"
        self.dir = tempfile.TemporaryDirectory()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--dir", self.dir.name, "--maxmemory", "1gb",
                   "--maxmemory-policy", "volatile-ttl"]  # fmt: skip
        if pin:
            command = ["taskset", "-c", bench.LOADGEN_CPU, *command]
        self.command, self.url = command, f"redis://127.0.0.1:{port}/0"

    def __enter__(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def memory_per_100k(url: str) -> int:
    """INFO memory's used_memory grown by 100,000 one-row predictions, written as a
    serving pod writes them (uuid4 hex ids, the server's own)."""
    from prometheus_client import CollectorRegistry

    from ciclo.serving.store import SharedStore

    client = redis.Redis.from_url(url)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    store = SharedStore(url, "default/bench", "v1", 86_400.0, CollectorRegistry(), ("b", "v1"))
    store.queue_limit = 200_000
    store.start()
    store.put_many((uuid.uuid4().hex, ("2",), store.clock()) for _ in range(100_000))
    store.flush(60)
    assert client.dbsize() == 100_000, client.dbsize()
    used = int(client.info("memory")["used_memory"]) - before
    store.close()
    client.flushall()
    return used


def labels_per_second(
    command: list[str], store: str, args: argparse.Namespace, work: Path
) -> float:
    """`args.labels` one-row predictions, then their labels in requests of 100, from 4
    connections at once: labels matched per second."""
    port = PORT + 20
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        bench.wait_ready(base, proc)
        body = json.loads((work / "body-sklearn.json").read_text())
        with httpx.Client(base_url=base, timeout=30) as client:
            ids = []
            for i in range(args.labels):
                answer = client.post(f"/v2/models/{bench.NAME}/infer", json={**body, "id": f"l{i}"})
                ids.append((answer.json()["id"], answer.json()["outputs"][0]["data"][0]))
        chunks = [ids[i : i + 100] for i in range(0, len(ids), 100)]
        from concurrent.futures import ThreadPoolExecutor

        def send(chunk: list[tuple[str, int]]) -> int:
            with httpx.Client(base_url=base, timeout=30) as client:
                feedback = [{"id": i, "label": p} for i, p in chunk]
                answer = client.post(
                    f"/v2/models/{bench.NAME}/feedback", json={"feedback": feedback}
                )
                return int(answer.json()["matched"])

        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            matched = sum(pool.map(send, chunks))
        elapsed = time.perf_counter() - start
        assert matched == len(ids), (store, matched)
        return matched / elapsed
    finally:
        bench.stop(proc)


def table(runs: list[dict[str, Any]]) -> str:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((int(r["concurrency"]), r["store"]), []).append(r)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p99_ms")}
           for k, v in groups.items()}  # fmt: skip
    lines = [
        "| concurrency | req/s in memory | req/s shared | cost | p99 in memory (ms) "
        "| p99 shared (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (c, store), m in sorted(med.items()):
        if store != "memory":
            continue
        s = med[(c, "shared")]
        lines.append(
            f"| {c} | {m['rps']:.0f} | {s['rps']:.0f} | {1 - s['rps'] / m['rps']:.1%} "
            f"| {m['p99_ms']:.2f} | {s['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
