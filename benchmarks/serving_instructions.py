"""What CBPE adds to a request of `ciclo serve`, in instructions under callgrind: exact
where throughput on shared cores is noise.

    .venv/bin/python benchmarks/serving_instructions.py [--concurrency 1,32] [--requests 2000]

benchmarks/serving.py's scikit-learn model, body and baseline profile (monitoring on),
served twice: with the profile's CBPE calibration ("with") and without it ("without"),
each under `valgrind --tool=callgrind` (every thread of the process counted). After a
warm-up, the counters are zeroed (callgrind_control), the load generator sends exactly
`--requests` requests at each concurrency, and the counters are dumped: instructions
per request, start-up left out. Each interval is measured `--repeat` times in the same
process; the table gives the median and the spread, and CBPE's cost as the difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_serving", HERE / "serving.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_serving"] = bench
spec.loader.exec_module(bench)

PORT = 18950


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--requests", type=int, default=2000, help="per measured interval")
    parser.add_argument("--repeat", type=int, default=3, help="intervals per concurrency")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting")
    args = parser.parse_args()

    bench.build_loadgen()
    work = bench.CACHE / "instructions"
    work.mkdir(parents=True, exist_ok=True)
    row = bench.train(work)
    (work / "body.json").write_text(json.dumps(bench.infer_body(row.tolist(), "FP64")))
    profiles = make_profiles(work)

    found: dict[str, dict[int, list[float]]] = {}
    for label, profile in profiles.items():
        found[label] = measure(work, profile, label, args)
    print(table(found, args))
    report = {"machine": bench.machine(), "command": " ".join(sys.argv), "found": found}
    (work / "results.json").write_text(json.dumps(report, indent=2))
    return 0


def make_profiles(work: Path) -> dict[str, Path]:
    """The baseline profile as `ciclo profile` writes it, and a copy without calibration."""
    with_cbpe, without = work / "profile.json", work / "profile-nocbpe.json"
    subprocess.run(
        [sys.executable, "-m", "ciclo.cli.main", "profile", str(work / "train.csv"), "--target",
         "label", "--model", str(work / "model.joblib"), "--format", "sklearn", "--out",
         str(with_cbpe)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    profile = json.loads(with_cbpe.read_text())
    assert profile.get("calibration"), "ciclo profile wrote no calibration"
    profile.pop("calibration")
    without.write_text(json.dumps(profile))
    return {"with": with_cbpe, "without": without}


def measure(
    work: Path, profile: Path, label: str, args: argparse.Namespace
) -> dict[int, list[float]]:
    """Instructions per request at each concurrency, `repeat` intervals each."""
    out_file = work / f"callgrind.{label}"
    for old in work.glob(f"callgrind.{label}*"):
        old.unlink()
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", "--dump-instr=no",
        sys.executable, "-m", "ciclo.cli.main", "serve", "--model", str(work / "model.joblib"),
        "--format", "sklearn", "--name", bench.NAME, "--version", bench.VERSION,
        "--host", "127.0.0.1", "--port", str(PORT), "--baseline", str(profile),
    ]  # fmt: skip
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    log = (work / f"serve-{label}.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{PORT}"
    url = f"{base}/v2/models/{bench.NAME}/infer"
    found: dict[int, list[float]] = {}
    try:
        bench.wait_ready(base, proc, timeout=900)
        load(url, work, 32, args.warmup)
        for c in args.concurrency:
            for _ in range(args.repeat):
                before = dumps(out_file)
                control(proc.pid, "--zero")
                load(url, work, c, args.requests)
                control(proc.pid, "--dump")
                total = instructions(new_dump(out_file, before))
                found.setdefault(c, []).append(total / args.requests)
                print(f"[instr] {label:8} c={c:<3} {total / args.requests:12,.0f} per request",
                      flush=True)  # fmt: skip
        has_estimate = bench.metric(base, "ciclo_estimated_accuracy") is not None
        assert has_estimate == (label == "with"), (label, has_estimate)
    finally:
        bench.stop(proc)
        log.close()
    return found


def load(url: str, work: Path, concurrency: int, requests: int) -> None:
    command = [str(bench.LOADGEN), "-url", url, "-body", str(work / "body.json"),
               "-c", str(concurrency), "-n", str(requests), "-d", "3600s", "-warmup", "0s",
               "-timeout", "120s"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["requests"] == requests and not result["errors"], result


def control(pid: int, what: str) -> None:
    subprocess.run(["callgrind_control", what, str(pid)], check=True, capture_output=True)


def dumps(out_file: Path) -> set[Path]:
    return set(out_file.parent.glob(out_file.name + "*"))


def new_dump(out_file: Path, before: set[Path]) -> Path:
    """callgrind writes each dump to a new file, OUT.N, shortly after being asked."""
    for _ in range(600):
        new = dumps(out_file) - before
        if new and all(p.stat().st_size > 0 for p in new):
            time.sleep(0.5)  # the file is written in one go, but not atomically
            (path,) = new
            return path
        time.sleep(0.1)
    raise TimeoutError(f"no new callgrind dump next to {out_file}")


def instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dump}")


def table(found: dict[str, dict[int, list[float]]], args: argparse.Namespace) -> str:
    lines = [
        f"instructions per request (median of {args.repeat} x {args.requests} requests; "
        "range in brackets)",
        "",
        "| c | without CBPE | with CBPE | CBPE's cost |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for c in args.concurrency:
        cells: list[Any] = []
        for label in ("without", "with"):
            values = found[label][c]
            cells.append(
                f"{statistics.median(values):,.0f} ({min(values):,.0f} to {max(values):,.0f})"
            )
        a, b = (statistics.median(found[label][c]) for label in ("without", "with"))
        lines.append(f"| {c} | {cells[0]} | {cells[1]} | {b - a:+,.0f} ({(b - a) / a:+.2%}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
