"""Monitoring loop at scale: N MonitorPolicies at a 10 s interval on one operator.

    PYTHONPATH=tools .venv/bin/python benchmarks/policy_scale.py --sizes 500

Takes the machine's cluster lock itself (as the test suite and the demo do: do not wrap
it in `flock`, which would hold the same lock and wait forever), starts a fresh
local cluster, a Prometheus of its own on a free port (it scrapes the operator, so it
holds some data; the policies' queries name series that do not exist and come back
empty, which still runs every step of an evaluation: two reads and a list from the
API server, two instant queries a rule, the verdicts, the status write), and runs
`ciclo run` as a subprocess. In a fresh namespace: N ModelVersions and N Models on
KWOK nodes, waited for until every Model is Ready (a policy queries only for a Model
with a serving version), then N MonitorPolicies of two rules each. Once every policy
has been evaluated once, it measures for --duration seconds: the lag of each
evaluation (the time its worker started it minus its scheduled time, from the
operator's ciclo_monitor_evaluation_lag_seconds histogram), the evaluations done
against the N / interval expected, the operator's CPU (utime + stime from
/proc/<pid>/stat over the period) and peak RSS, and what the evaluations cost the API
server and Prometheus. Prints a table, writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from common import apply, cluster_lock, items, models, peak_rss_mb, ready_models
from localcluster import launcher
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parent.parent
METRICS_PORT = 18110
HEALTH_PORT = 18111
INTERVAL = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- manifests


def policies(n: int, namespace: str, prometheus_url: str) -> dict[str, object]:
    items: list[dict[str, object]] = []
    for i in range(n):
        name = f"m{i:04d}"
        items.append(
            {
                "apiVersion": "ciclo.dev/v1alpha1",
                "kind": "MonitorPolicy",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "modelRef": {"name": name},
                    "interval": f"{INTERVAL:g}s",
                    "source": {"type": "prometheus", "prometheus": {"url": prometheus_url}},
                    "rules": [
                        {
                            "name": "accuracy",
                            "metric": "accuracy",
                            "window": "5m",
                            "min": 0.85,
                            "minSamples": 100,
                            "failureThreshold": 3,
                            "action": "rollback",
                        },
                        {
                            "name": "latency",
                            "metric": "latency_p99",
                            "window": "5m",
                            "max": 0.5,
                            "action": "alert",
                        },
                    ],
                },
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


# ---------------------------------------------------------------- measuring


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def buckets(samples: Samples, name: str) -> dict[float, float]:
    return {float(dict(ls)["le"]): v for (n, ls), v in samples.items() if n == f"{name}_bucket"}


def quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear inside the bucket the rank falls in."""
    bounds = sorted(cumulative)
    count = cumulative[math.inf]
    if count <= 0:
        return math.nan
    rank = q * count
    lower, below = 0.0, 0.0
    for upper in bounds:
        if cumulative[upper] >= rank:
            if upper == math.inf:
                return lower  # above the largest finite bucket: its bound is all we know
            inside = cumulative[upper] - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cumulative[upper]
    return lower


def delta_buckets(before: Samples, after: Samples, name: str) -> dict[float, float]:
    b, a = buckets(before, name), buckets(after, name)
    return {le: a[le] - b.get(le, 0.0) for le in a}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def pids_named(*names: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def evaluated_policies(paths: Paths, kubeconfig: Path, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in items(paths, kubeconfig, "monitorpolicies", namespace)
        if p.get("status", {}).get("lastEvaluationTime")
    ]


def wait(what: str, check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(2)
    return time.monotonic() - start


# ---------------------------------------------------------------- the run


@dataclass
class Result:
    policies: int
    interval_s: float
    measured_s: float
    models_ready_s: float
    first_round_s: float
    evaluations: int
    evaluations_per_s: float
    expected_per_s: float
    skipped: int
    errors: int
    lag_p50_s: float
    lag_p99_s: float
    lag_mean_s: float
    lag_max_bucket_s: float
    duration_p50_s: float
    duration_p99_s: float
    duration_mean_s: float
    operator_cpu_cores: float
    operator_peak_rss_mb: float
    control_plane_cpu_cores: float
    prometheus_cpu_cores: float
    api_writes_per_evaluation: float
    api_reads_per_evaluation: float
    prometheus_queries_per_evaluation: float
    rule_states: dict[str, int]


def run(
    n: int,
    duration: float,
    paths: Paths,
    kubeconfig: Path,
    operator: int,
    prometheus: tuple[int, str],
) -> Result:
    namespace = f"policy-bench-{n}"
    launcher.kubectl(paths, kubeconfig, "create", "namespace", namespace)
    operator_url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    prom_pid, prom_url = prometheus

    start = time.monotonic()
    apply(paths, kubeconfig, models(n, namespace, {"accuracy": 0.93}))
    wait("every Model Ready", lambda: ready_models(paths, kubeconfig, namespace) >= n, 900)
    models_ready = time.monotonic() - start
    print(f"  {n} Models Ready in {models_ready:.1f} s", flush=True)

    start = time.monotonic()
    apply(paths, kubeconfig, policies(n, namespace, prom_url))
    wait(
        "every policy evaluated once",
        lambda: len(evaluated_policies(paths, kubeconfig, namespace)) >= n,
        300,
    )
    first_round = time.monotonic() - start
    print(f"  {n} policies applied and each evaluated once in {first_round:.1f} s", flush=True)
    time.sleep(INTERVAL)  # one more round before measuring: the apply's echoes have passed

    control_plane = pids_named("kube-apiserver", "etcd")
    before = scrape(operator_url)
    prom_before = scrape(f"{prom_url}/metrics")
    cpu_before = cpu_seconds(operator)
    plane_before = sum(cpu_seconds(p) for p in control_plane)
    prom_cpu_before = cpu_seconds(prom_pid)
    t0 = time.monotonic()
    time.sleep(duration)
    after = scrape(operator_url)
    prom_after = scrape(f"{prom_url}/metrics")
    cpu_after = cpu_seconds(operator)
    plane_after = sum(cpu_seconds(p) for p in control_plane)
    prom_cpu_after = cpu_seconds(prom_pid)
    measured = time.monotonic() - t0

    def diff(name: str, samples: tuple[Samples, Samples] = (before, after), **labels: str) -> float:
        return total(samples[1], name, **labels) - total(samples[0], name, **labels)

    lag = delta_buckets(before, after, "ciclo_monitor_evaluation_lag_seconds")
    took = delta_buckets(before, after, "ciclo_monitor_evaluation_duration_seconds")
    done = diff("ciclo_monitor_evaluations_total", result="ok") + diff(
        "ciclo_monitor_evaluations_total", result="error"
    )
    writes = sum(
        diff("ciclo_api_requests_total", verb=v) for v in ("PATCH", "POST", "PUT", "DELETE")
    )
    reads = diff("ciclo_api_requests_total", verb="GET")
    queries = diff(
        "prometheus_http_requests_total", (prom_before, prom_after), handler="/api/v1/query"
    )
    lag_count = lag[math.inf]
    states: Counter[str] = Counter()
    for p in items(paths, kubeconfig, "monitorpolicies", namespace):
        for r in p.get("status", {}).get("rules", []):
            states[r["state"]] += 1
    result = Result(
        policies=n,
        interval_s=INTERVAL,
        measured_s=measured,
        models_ready_s=models_ready,
        first_round_s=first_round,
        evaluations=round(done),
        evaluations_per_s=done / measured,
        expected_per_s=n / INTERVAL,
        skipped=round(diff("ciclo_monitor_evaluations_total", result="skipped")),
        errors=round(diff("ciclo_monitor_evaluations_total", result="error")),
        lag_p50_s=quantile(0.5, lag),
        lag_p99_s=quantile(0.99, lag),
        lag_mean_s=diff("ciclo_monitor_evaluation_lag_seconds_sum") / max(lag_count, 1),
        lag_max_bucket_s=min((le for le, v in lag.items() if v >= lag_count), default=math.inf),
        duration_p50_s=quantile(0.5, took),
        duration_p99_s=quantile(0.99, took),
        duration_mean_s=diff("ciclo_monitor_evaluation_duration_seconds_sum")
        / max(took[math.inf], 1),
        operator_cpu_cores=(cpu_after - cpu_before) / measured,
        operator_peak_rss_mb=peak_rss_mb(operator),
        control_plane_cpu_cores=(plane_after - plane_before) / measured,
        prometheus_cpu_cores=(prom_cpu_after - prom_cpu_before) / measured,
        api_writes_per_evaluation=writes / max(done, 1),
        api_reads_per_evaluation=reads / max(done, 1),
        prometheus_queries_per_evaluation=queries / max(done, 1),
        rule_states=dict(states),
    )
    launcher.kubectl(
        paths, kubeconfig, "delete", "namespace", namespace, "--timeout=600s", timeout=700
    )
    return result


def start_prometheus(paths: Paths, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Prometheus of the benchmark's own, scraping the operator every interval."""
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{INTERVAL:g}s"},
        "scrape_configs": [
            {
                "job_name": "ciclo-operator",
                "static_configs": [{"targets": [f"127.0.0.1:{METRICS_PORT}"]}],
            }
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (home / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            str(paths.binary("prometheus")),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"prometheus did not start: see {home / 'prometheus.log'}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


COLUMNS = [
    ("policies", "policies", "{:d}"),
    ("evaluations / s (expected)", "", ""),
    ("lag p50 (ms)", "lag_p50_s", "ms"),
    ("lag p99 (ms)", "lag_p99_s", "ms"),
    ("evaluation p50 (ms)", "duration_p50_s", "ms"),
    ("evaluation p99 (ms)", "duration_p99_s", "ms"),
    ("operator CPU (cores)", "operator_cpu_cores", "{:.2f}"),
    ("operator peak RSS (MB)", "operator_peak_rss_mb", "{:.0f}"),
    ("API server + etcd CPU (cores)", "control_plane_cpu_cores", "{:.2f}"),
]


def summary(r: Result) -> str:
    per = (
        f"{r.api_writes_per_evaluation:.2f} API writes, {r.api_reads_per_evaluation:.2f} reads,"
        f" {r.prometheus_queries_per_evaluation:.2f} Prometheus queries"
    )
    return (
        f"  {r.evaluations} evaluations in {r.measured_s:.0f} s, {r.skipped} turns skipped,"
        f" {r.errors} errors; lag mean {r.lag_mean_s * 1000:.0f} ms, all under"
        f" {r.lag_max_bucket_s:g} s; evaluation mean {r.duration_mean_s * 1000:.0f} ms;"
        f" per evaluation: {per}; Prometheus {r.prometheus_cpu_cores:.2f} cores;"
        f" rule states {r.rule_states}"
    )


def row(r: Result) -> str:
    cells = []
    for _, attr, fmt in COLUMNS:
        if not attr:
            cells.append(f"{r.evaluations_per_s:.1f} ({r.expected_per_s:.1f})")
        elif fmt == "ms":
            cells.append(f"{getattr(r, attr) * 1000:.0f}")
        else:
            cells.append(fmt.format(getattr(r, attr)))
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500", help="policies, comma-separated")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds measured at each size (default 60)"
    )
    parser.add_argument("--workers", type=int, help="the operator's CICLO_MONITOR_WORKERS")
    parser.add_argument("--out", type=Path, help="the JSON (default: $CICLO_CACHE/bench/)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster running")
    args = parser.parse_args()
    paths = Paths.from_env()
    with cluster_lock(paths):
        return bench(args, paths)


def bench(args: argparse.Namespace, paths: Paths) -> int:
    if launcher.external_kubeconfig() is None:
        launcher.down(paths)  # a fresh cluster: no operator or policies left by anyone
    kubeconfig = launcher.up(paths, real_node=False)
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    home = Path(tempfile.mkdtemp(prefix="policy-bench-"))
    prometheus, prom_url = start_prometheus(paths, home)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CICLO_METRICS_PORT=str(METRICS_PORT))
    if args.workers:
        env["CICLO_MONITOR_WORKERS"] = str(args.workers)
    log_path = home / "operator.log"
    operator = subprocess.Popen(
        [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", str(HEALTH_PORT)],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    results: list[Result] = []
    try:
        time.sleep(3)
        for n in (int(s) for s in args.sizes.split(",")):
            results.append(
                run(n, args.duration, paths, kubeconfig, operator.pid, (prometheus.pid, prom_url))
            )
            r = results[-1]
            print(summary(r), flush=True)
    finally:
        stop(operator)
        stop(prometheus)
        if not args.keep_cluster and launcher.external_kubeconfig() is None:
            launcher.down(paths)
    print("| " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|" + " ---: |" * len(COLUMNS))
    for r in results:
        print(row(r))
    out = args.out or paths.cache / "bench" / "policy_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"wrote {out}; the operator's log: {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
