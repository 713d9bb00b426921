"""The shared prediction store's cost (issue 16): `ciclo serve` with the in-memory store
against `--feedback-store` on a local redis-server, then the store's memory per 100,000
pending predictions and the labels per second one pod matches.

    PYTHONPATH=operator:tools .venv/bin/python benchmarks/feedback_store.py

Same model, body, load generator and CPU pinning as benchmarks/serving.py (server on CPU 1,
load generator on CPU 0); redis-server runs on CPU 0 too, beside the load generator, so
the server's core is its own in both configurations. Rounds rotate which goes first;
the table gives medians, and each cost is the median of the rounds' own ratios (a loaded
machine moves both configurations of a round together more than it moves two rounds).

`--before DIR` adds a third configuration, the shared store as an older checkout's code
runs it (DIR holds its `operator/`, e.g. `git archive <commit> operator | tar -x -C DIR`),
to measure a change before and after in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--before", type=Path, help="an older checkout: its shared store too")
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
    envs: dict[str, dict[str, str]] = {}
    if args.before:
        configs["before"] = configs["shared"]
        path = os.pathsep.join(str(args.before.resolve() / d) for d in ("operator", "tools"))
        envs["before"] = {"PYTHONPATH": path}
    runs: list[dict[str, Any]] = []
    with redis_server(REDIS_PORT, args.pin):
        for n in range(args.rounds):
            print(f"[store] round {n + 1}/{args.rounds}, load average {bench.loadavg()}")
            names = list(configs)
            order = names[n % len(names) :] + names[: n % len(names)]
            for i, store in enumerate(order):
                port = PORT + 5 * i
                command = [*configs[store], "--port", str(port)]
                for c, r in serve_and_load(command, envs.get(store, {}), port, work, expected,
                                           args).items():  # fmt: skip
                    runs.append({"round": n, "store": store, **r})
                    print(f"[store]   {store:6} c={c:<3} {r['rps']:8.0f} req/s  "
                          f"p99 {r['p99_ms']:6.2f} ms  CPU {r['cpu_us']:5.0f} us/req  "
                          f"{r['switches']:.2f} switches/req",
                          flush=True)  # fmt: skip
        memory = memory_per_100k(store_url)
        rates = {store: labels_per_second(command, store, args, work) for store, command in
                 configs.items() if store != "before"}  # fmt: skip
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


def serve_and_load(
    command: list[str],
    env: dict[str, str],
    port: int,
    work: Path,
    expected: int,
    args: argparse.Namespace,
) -> dict[int, dict[str, float]]:
    """bench.serve_and_load's runs, and the server process's CPU time and voluntary context
    switches per request (all its threads: the writer's too) over each measured phase; on a shared
    machine they move less than throughput does, and switches count the hand-offs between
    the request's thread and the writer's. Each concurrency's warm-up is a run of
    its own, so the measured phase holds no warm-up."""
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v2/models/{bench.NAME}/infer"
    body = work / "body-sklearn.json"
    if args.pin:
        command = ["taskset", "-c", bench.SERVER_CPU, *command]
    log = (work / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(command, env=dict(os.environ, **env), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        bench.wait_ready(base, proc)
        status, answer = bench.post(url, body.read_bytes())
        if status != 200 or bench.predicted_class(answer) != expected:
            raise RuntimeError(f"the server answered {status}: {answer}")
        results = {}
        for c in args.concurrency:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup, "warmup": 0})
            bench.load(url, body, c, warm)
            cpu, switches = cpu_seconds(proc.pid), context_switches(proc.pid)
            r = bench.load(url, body, c, argparse.Namespace(**{**vars(args), "warmup": 0}))
            r["cpu_us"] = (cpu_seconds(proc.pid) - cpu) / r["requests"] * 1e6
            r["switches"] = (context_switches(proc.pid) - switches) / r["requests"]
            if r["errors"]:
                raise RuntimeError(f"c={c}: {r['status']}")
            results[c] = r
        if not bench.metric(base, "ciclo_drift_window_samples"):  # monitoring really ran
            raise RuntimeError("ciclo serve with a baseline reported no drift window")
        return results
    finally:
        bench.stop(proc)
        log.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary context switches of every thread of a process: each a thread that waited
    (for the GIL, a lock, an event, a socket); the involuntary ones are other processes'
    preemptions, which a shared machine makes many of."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


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
    """Medians per concurrency and store; a cost is the median over rounds of that round's
    throughput against the in-memory store's."""
    groups: dict[tuple[int, str], dict[int, dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((int(r["concurrency"]), r["store"]), {})[int(r["round"])] = r
    stores = [s for s in ("shared", "before") if any(k[1] == s for k in groups)]
    head = ["concurrency", "req/s in memory"]
    for s in stores:
        head += [f"req/s {s}", f"cost {s}"]
    head += ["p99 in memory (ms)", *(f"p99 {s} (ms)" for s in stores)]
    head += ["CPU/req in memory (us)", *(f"CPU/req {s} (us)" for s in stores)]
    head += ["switches/req in memory", *(f"switches/req {s}" for s in stores)]
    lines = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]
    for c in sorted({k[0] for k in groups}):
        memory = groups[(c, "memory")]
        cells = [str(c), f"{statistics.median(r['rps'] for r in memory.values()):.0f}"]
        for s in stores:
            other = groups[(c, s)]
            costs = [1 - other[n]["rps"] / memory[n]["rps"] for n in other if n in memory]
            cells += [
                f"{statistics.median(r['rps'] for r in other.values()):.0f}",
                f"{statistics.median(costs):.1%}",
            ]
        for metric, form in (("p99_ms", "{:.2f}"), ("cpu_us", "{:.0f}"), ("switches", "{:.2f}")):
            for group in (memory, *(groups[(c, s)] for s in stores)):
                cells.append(form.format(statistics.median(r[metric] for r in group.values())))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
