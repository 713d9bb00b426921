"""Serving speed of two ciclo trees side by side in one run: `ciclo serve` only, no
MLServer or KServe, a few minutes instead of ~25.

    git archive HEAD operator | tar -x -C /tmp/ciclo-before    # the code before (read-only)
    .venv/bin/python benchmarks/serving_ab.py --before /tmp/ciclo-before/operator
    .venv/bin/python benchmarks/serving_ab.py --cbpe    # one tree: CBPE's calibration off/on

The "before" server runs the same `python -m ciclo.cli.main serve` with the old tree's
package directory first on PYTHONPATH; "after" is the work tree (this .venv's editable
install). Same model, body, load generator and CPU pinning as benchmarks/serving.py
(server on CPU 1, load generator on CPU 0); each round runs every configuration
before and after back to back, alternating which goes first, and the table gives
medians over rounds and the cost of "after" against "before".

With --cbpe both run the work tree: "before" with the baseline profile's CBPE
calibration removed, "after" with it, so the cost is CBPE's. The ONNX model has no
calibration (ONNX does not say its classes), so its two servers are the same: the
run's noise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("CICLO_ROOT", HERE.parent)).resolve()
spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "benchmarks" / "serving.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_serving"] = bench
spec.loader.exec_module(bench)

PORT = 18900


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", type=Path, help="the old tree's operator/")
    which.add_argument("--cbpe", action="store_true", help="the work tree, calibration off/on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--only", default="", help="model:label pairs to run, comma-separated")
    parser.add_argument("--out", type=Path, default=bench.CACHE / "serving-ab.json")
    args = parser.parse_args()
    args.pin = (os.cpu_count() or 1) >= 2
    assert args.cbpe or (args.before / "ciclo" / "serving" / "server.py").exists()

    bench.build_loadgen()
    work = bench.CACHE / "ab"
    work.mkdir(parents=True, exist_ok=True)
    row = bench.train(work)
    import joblib

    expected = int(joblib.load(work / "model.joblib").predict(row.reshape(1, -1))[0])
    for fmt, datatype in (("sklearn", "FP64"), ("onnx", "FP32")):
        body = bench.infer_body(row.tolist(), datatype)
        (work / f"body-{fmt}.json").write_bytes(json.dumps(body).encode())
    python = str(ROOT / ".venv" / "bin" / "python")
    for fmt, file in (("sklearn", "model.joblib"), ("onnx", "model.onnx")):
        subprocess.run(
            [python, "-m", "ciclo.cli.main", "profile", str(work / "train.csv"), "--target",
             "label", "--model", str(work / file), "--format", fmt, "--out",
             str(work / f"profile-{fmt}.json")],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # without CBPE's calibration, which the old tree's profile format does not have
        profile = json.loads((work / f"profile-{fmt}.json").read_text())
        assert fmt == "onnx" or profile.get("calibration"), "no calibration to measure"
        (work / f"profile-{fmt}-cbpe.json").write_text(json.dumps(profile))
        profile.pop("calibration", None)
        (work / f"profile-{fmt}.json").write_text(json.dumps(profile))

    configs = []
    for fmt, file, monitored in (
        ("sklearn", "model.joblib", True),
        ("sklearn", "model.joblib", False),
        ("onnx", "model.onnx", True),
    ):
        command = [python, "-m", "ciclo.cli.main", "serve", "--model", str(work / file),
                   "--format", fmt, "--name", bench.NAME, "--version", bench.VERSION,
                   "--host", "127.0.0.1"]  # fmt: skip
        command += (
            ["--baseline", str(work / f"profile-{fmt}.json")] if monitored else ["--no-monitoring"]
        )
        label = "ciclo serve" + ("" if monitored else " --no-monitoring")
        if not args.only or f"{fmt}:{label}" in args.only.split(","):
            configs.append((label, fmt, command))

    versions: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    if not args.cbpe:
        versions["before"]["PYTHONPATH"] = str(args.before.resolve())
    runs: list[dict[str, Any]] = []
    for n in range(args.rounds):
        print(f"[ab] round {n + 1}/{args.rounds}, load average {bench.loadavg()}", flush=True)
        order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
        for i, (label, fmt, command) in enumerate(configs):
            for version in order:
                port = PORT + 10 * i + (0 if version == "before" else 5)
                env = versions[version] | {"BENCH_PORT": str(port)}
                args_ = [*command, "--port", str(port)]
                if args.cbpe and version == "after":  # the profile with its calibration
                    args_ = [a.replace(f"profile-{fmt}.json", f"profile-{fmt}-cbpe.json")
                             for a in args_]  # fmt: skip
                server = bench.Server(label, fmt, args_, env=env)
                check_version(server, "after" if args.cbpe else version)
                results = bench.serve_and_load(server, work, expected, args)
                for c, r in results.items():
                    runs.append(
                        {"round": n, "version": version, "server": label, "model": fmt, **r}
                    )
                    print(
                        f"[ab]   {version:6} {fmt:7} {label:28} c={c:<3} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms",
                        flush=True,
                    )
    report = {
        "machine": bench.machine(),
        "command": " ".join(sys.argv),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(runs))
    print(f"[ab] results in {args.out}")
    return 0


def check_version(server: Any, version: str) -> None:
    """The server really runs that tree: only the new one has protocol.request_id_of."""
    env = dict(os.environ, **server.env)
    code = "import ciclo.serving.protocol as p; print(hasattr(p, 'request_id_of'))"
    out = subprocess.run([server.command[0], "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert out == ("True" if version == "after" else "False"), (version, out)


def table(runs: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(
            (r["model"], r["server"], int(r["concurrency"]), r["version"]), []
        ).append(r)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50_ms", "p99_ms")}
           for k, v in groups.items()}  # fmt: skip
    lines = [
        "| model | server | concurrency | req/s before | req/s after | cost | p99 before (ms) "
        "| p99 after (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (fmt, label, c, version), m in med.items():
        if version != "before":
            continue
        a = med[(fmt, label, c, "after")]
        lines.append(
            f"| {fmt} | {label} | {c} | {m['rps']:.0f} | {a['rps']:.0f} "
            f"| {1 - a['rps'] / m['rps']:.1%} | {m['p99_ms']:.2f} | {a['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
