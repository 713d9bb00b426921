"""Serving speed: `ciclo serve` against MLServer and KServe, side by side, in one run.

    .venv/bin/python benchmarks/serving.py [--rounds 3] [--duration 10] [--out results.json]

Trains a scikit-learn classifier (LogisticRegression, 20 features, 3 classes)
and its ONNX conversion, then serves each in turn with:

- ciclo serve, monitoring on (a baseline profile from `ciclo profile`: feedback
  storage, quality and drift tracking of every request),
- ciclo serve (no CBPE), monitoring on with the profile's CBPE calibration removed, so
  that CBPE's own cost is the difference (docs/cbpe.md; ONNX models have no calibration),
- ciclo serve --no-monitoring,
- MLServer with mlserver-sklearn, as it ships (one inference worker process) and with
  parallel_workers=0 (inference in the server process); per-request logging off,
- KServe's ModelServer with sklearnserver's SKLearnModel (benchmarks/serving_kserve.py),
- the binary tensor extension (ciclo serve (binary)) and gRPC (ciclo serve (grpc), with
  MLServer's gRPC in both its configurations beside it), the same request each way,
- and, with adaptive batching (off by default in both) of up to 32 rows: ciclo serve
  with monitoring on and off, and MLServer (max_batch_time 1 ms: it batches only with a wait),

and drives every one with the same Go load generator (benchmarks/loadgen), the
same OIP v2 JSON body, at concurrency 1 and 32: a warm-up, then a measured phase
bounded in requests and time. Neither MLServer nor KServe ships an ONNX runtime
for their Python servers, so their ONNX rows are small classes of ours, in each
server's own extension shape (benchmarks/serving_mlserver_onnx.py, serving_kserve.py).

MLServer and KServe live in their own virtualenvs under $CICLO_CACHE/bench
(benchmarks/setup-servers.sh, run from here). With --pin (default) every server
runs on CPU 1 and the load generator on CPU 0 (taskset), so each server gets the
same one core and the load generator never competes with it. Traffic goes to
127.0.0.1 only. Each round serves everything once (every other round in reverse
order); the table gives the medians over rounds. Speed is measured here, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo")) / "bench"
LOADGEN = CACHE / "bin" / "loadgen"
NAME, VERSION, FEATURES = "bench", "v1", 20
BASE_PORT = 18600
SERVER_CPU, LOADGEN_CPU = "1", "0"
BATCH = 32  # adaptive batching rows, where a server has it (off by default in both)
MLSERVER_BATCH_TIME = 0.001  # s; MLServer batches only with a wait > 0


@dataclass
class Server:
    label: str
    model: str  # "sklearn" or "onnx"
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # MLServer's settings.json
    protocol: str = "json"  # "json", "binary" (REST's binary tensors) or "grpc" (at port + 1)


# Pure helpers (tests/unit/test_bench_serving.py).


def infer_body(row: Sequence[float], datatype: str) -> dict[str, Any]:
    """The one OIP v2 request every server gets: one row, each server's default outputs.

    No "outputs" list: KServe's response names its tensor "output-0" and refuses a
    request for "predict", so each server answers with what it returns by default
    (ciclo: predict and predict_proba; MLServer: predict; KServe: output-0)."""
    return {
        "inputs": [
            {"name": "input-0", "shape": [1, len(row)], "datatype": datatype, "data": list(row)}
        ]
    }


def binary_body(row: Sequence[float], datatype: str) -> tuple[bytes, int]:
    """The same request with its tensor as binary data (as tritonclient sends by default),
    and the JSON's length for Inference-Header-Content-Length."""
    raw = np.asarray([row], dtype=np.float64 if datatype == "FP64" else np.float32).tobytes()
    tensor = infer_body(row, datatype)["inputs"][0]
    del tensor["data"]
    tensor["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps({"inputs": [tensor]}).encode()
    return head + raw, len(head)


def grpc_body(row: Sequence[float], datatype: str) -> bytes:
    """The same request as a serialized ModelInferRequest with raw_input_contents (what
    tritonclient's and the kserve SDK's gRPC clients send)."""
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=NAME)
    request.inputs.add(name="input-0", datatype=datatype, shape=[1, len(row)])
    dtype = np.float64 if datatype == "FP64" else np.float32
    request.raw_input_contents.append(np.asarray([row], dtype=dtype).tobytes())
    return bytes(request.SerializeToString())


def grpc_predicted_class(address: str, body: bytes) -> int:
    """The predicted class a gRPC server answers `body` with (raw or typed contents)."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest.FromString(body), timeout=10
        )
    i = next((i for i, o in enumerate(response.outputs) if o.name == "predict"), 0)
    if response.raw_output_contents:
        return int(np.frombuffer(response.raw_output_contents[i], dtype="<i8")[0])
    return int(response.outputs[i].contents.int64_contents[0])


def predicted_class(response: dict[str, Any]) -> int:
    """The predicted class in an OIP v2 response (the "predict" output, else the first)."""
    outputs = response["outputs"]
    chosen = next((o for o in outputs if o["name"] == "predict"), outputs[0])
    data = chosen["data"]
    while isinstance(data, list):
        data = data[0]
    return int(data)


def summarize(runs: list[dict[str, float]]) -> dict[str, float]:
    """Medians over rounds of requests/s and latency percentiles."""
    keys = ("rps", "p50_ms", "p99_ms")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"rounds": len(runs)}


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if reference else "n/a"


# Setup.


def versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def build_loadgen() -> None:
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local")
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(LOADGEN), "."],
        cwd=HERE / "loadgen",
        env=env,
        check=True,
    )


def train(work: Path) -> np.ndarray:
    """The models, the training CSV the baseline profiles come from; returns a request row."""
    import joblib
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=5000, n_features=FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    model = LogisticRegression(max_iter=1000).fit(x, y)
    joblib.dump(model, work / "model.joblib")
    onnx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, FEATURES]))],
        options={id(model): {"zipmap": False}},
    )
    (work / "model.onnx").write_bytes(onnx.SerializeToString())
    with (work / "train.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i:02d}" for i in range(FEATURES)] + ["label"])
        writer.writerows([*row, label] for row, label in zip(x.tolist(), y.tolist(), strict=True))
    return np.asarray(x[0])


def servers(work: Path, port: int) -> list[Server]:
    """Every server, each model; ports are assigned in order from `port`."""
    ciclo = str(ROOT / ".venv" / "bin" / "ciclo")
    mlserver = CACHE / "mlserver" / "bin" / "mlserver"
    kserve_py = CACHE / "kserve" / "bin" / "python"
    out: list[Server] = []
    for fmt, file in (("sklearn", "model.joblib"), ("onnx", "model.onnx")):
        model = str(work / file)
        base = [ciclo, "serve", "--model", model, "--format", fmt, "--name", NAME]
        base += ["--version", VERSION, "--host", "127.0.0.1"]
        monitored = [*base, "--baseline", str(work / f"profile-{fmt}.json")]
        batched = ["--max-batch-size", str(BATCH)]
        out.append(
            Server(
                "ciclo serve",
                fmt,
                monitored,
                note="monitoring on: baseline profile, feedback storage, quality and drift",
            )
        )
        out.append(
            Server(
                "ciclo serve (no CBPE)",
                fmt,
                [*base, "--baseline", str(work / f"profile-{fmt}-nocbpe.json")],
                note="monitoring on, the profile without its CBPE calibration",
            )
        )
        out.append(Server("ciclo serve --no-monitoring", fmt, [*base, "--no-monitoring"]))
        for protocol in ("binary", "grpc"):
            out.append(Server(f"ciclo serve ({protocol})", fmt, monitored, protocol=protocol))
        out.append(Server(f"ciclo serve --max-batch-size {BATCH}", fmt, [*monitored, *batched]))
        out.append(
            Server(
                f"ciclo serve --no-monitoring --max-batch-size {BATCH}",
                fmt,
                [*base, "--no-monitoring", *batched],
            )
        )
        implementation = (
            "mlserver_sklearn.SKLearnModel"
            if fmt == "sklearn"
            else "serving_mlserver_onnx.OnnxModel"
        )
        # Its default runs inference in one worker process (parallel_workers=1);
        # 0 runs it in the server's own process, without the queue between them.
        # Its adaptive batching needs a max_batch_time > 0 to batch at all.
        for label, workers, batching, protocol in (
            ("MLServer", 1, {}, "json"),
            ("MLServer parallel_workers=0", 0, {}, "json"),
            ("MLServer (grpc)", 1, {}, "grpc"),
            ("MLServer parallel_workers=0 (grpc)", 0, {}, "grpc"),
            (
                f"MLServer max_batch_size={BATCH}",
                1,
                {"max_batch_size": BATCH, "max_batch_time": MLSERVER_BATCH_TIME},
                "json",
            ),
        ):
            repo = work / f"mlserver-{fmt}-{len(out)}"
            (repo / NAME).mkdir(parents=True, exist_ok=True)
            (repo / NAME / "model-settings.json").write_text(
                json.dumps(
                    {
                        "name": NAME,
                        "implementation": implementation,
                        "parameters": {"uri": model, "version": VERSION},
                        **batching,
                    }
                )
            )
            out.append(
                Server(
                    label,
                    fmt,
                    [str(mlserver), "start", str(repo)],
                    env={"PYTHONPATH": str(HERE)},
                    note="mlserver-sklearn"
                    if fmt == "sklearn"
                    else "no ONNX runtime shipped: our class serving_mlserver_onnx.py",
                    settings={"parallel_workers": workers},
                    protocol=protocol,
                )
            )
        out.append(
            Server(
                "KServe",
                fmt,
                [
                    *[str(kserve_py), str(HERE / "serving_kserve.py"), "--model_name", NAME],
                    *["--model_file", model, "--format", fmt, "--enable_grpc", "false"],
                    *["--enable_latency_logging", "false"],
                ],
                note="sklearnserver's SKLearnModel"
                if fmt == "sklearn"
                else "no ONNX model class shipped: our class in serving_kserve.py",
            )
        )
    for i, server in enumerate(out):
        p = port + 10 * i
        if server.label.startswith("ciclo"):
            server.command = [*server.command, "--port", str(p), "--grpc-port", str(p + 1)]
        elif server.label.startswith("MLServer"):
            repo = Path(server.command[-1])
            # MLServer's defaults but its ports, localhost, and no per-request log line.
            (repo / "settings.json").write_text(
                json.dumps(
                    {
                        "host": "127.0.0.1",
                        "http_port": p,
                        "grpc_port": p + 1,
                        "metrics_port": p + 2,
                        "debug": False,
                        **server.settings,
                    }
                )
            )
        else:
            server.command += ["--http_port", str(p), "--grpc_port", str(p + 1)]
        server.env["BENCH_PORT"] = str(p)
    return out


# Running.


def post(url: str, body: bytes, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode(errors="replace")}


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/v2/models/{NAME}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base} not ready after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The server and its children (MLServer's workers): its own process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load(
    url: str, body: Path, concurrency: int, args: argparse.Namespace, extra: Sequence[str] = ()
) -> dict[str, float]:
    command = [str(LOADGEN), "-url", url, "-body", str(body), "-c", str(concurrency), *extra]
    command += ["-n", str(args.requests), "-d", f"{args.duration}s", "-warmup", f"{args.warmup}s"]
    env = dict(os.environ)
    if args.pin:
        command = ["taskset", "-c", LOADGEN_CPU, *command]
        env["GOMAXPROCS"] = "1"
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return dict(json.loads(done.stdout))


def metric(base: str, name: str) -> float | None:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return None


def serve_and_load(
    server: Server, work: Path, expected: int, args: argparse.Namespace
) -> dict[int, dict[str, float]]:
    port = int(server.env["BENCH_PORT"])
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v2/models/{NAME}/infer"
    command = ["taskset", "-c", SERVER_CPU, *server.command] if args.pin else server.command
    slug = server.label.replace(" ", "_").replace("-", "") + "-" + server.model
    log = (work / f"{slug}.log").open("wb")
    proc = subprocess.Popen(
        command,
        env=dict(os.environ, **server.env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(base, proc)
        body = work / f"body-{server.model}.json"
        status, answer = post(url, body.read_bytes())
        if status != 200 or predicted_class(answer) != expected:
            raise RuntimeError(f"{server.label} ({server.model}) answered {status}: {answer}")
        extra: list[str] = []
        if server.protocol == "binary":
            body = work / f"body-{server.model}.bin"
            length = (work / f"body-{server.model}.bin.length").read_text()
            extra = ["-header", f"Inference-Header-Content-Length:{length}"]
        elif server.protocol == "grpc":
            body = work / f"body-{server.model}.pb"
            address = f"127.0.0.1:{port + 1}"
            if grpc_predicted_class(address, body.read_bytes()) != expected:
                raise RuntimeError(f"{server.label} ({server.model}) predicted otherwise")
            url = f"http://{address}"
            extra = ["-grpc", "/inference.GRPCInferenceService/ModelInfer"]
        results = {c: load(url, body, c, args, extra) for c in args.concurrency}
        for c, r in results.items():
            if r["errors"]:
                raise RuntimeError(f"{server.label} ({server.model}) c={c}: {r['status']}")
        if server.label == "ciclo serve":  # evidence that monitoring really ran
            samples = metric(base, "ciclo_drift_window_samples")
            if not samples:
                raise RuntimeError("ciclo serve with a baseline reported no drift window")
        return results
    finally:
        stop(proc)
        log.close()


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "go": go}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="measured seconds, at most")
    parser.add_argument("--requests", type=int, default=200_000, help="measured requests, at most")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per run")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 32]
    )
    parser.add_argument("--only", default="", help="comma-separated labels to run (default all)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no taskset")
    parser.add_argument("--out", type=Path, default=CACHE / "serving-results.json")
    args = parser.parse_args()
    if args.pin and (os.cpu_count() or 1) < 2:
        args.pin = False

    subprocess.run(["bash", str(HERE / "setup-servers.sh")], check=True)
    build_loadgen()
    work = CACHE / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    row = train(work)
    import joblib

    expected = int(joblib.load(work / "model.joblib").predict(row.reshape(1, -1))[0])
    (work / "body-sklearn.json").write_bytes(json.dumps(infer_body(row.tolist(), "FP64")).encode())
    (work / "body-onnx.json").write_bytes(json.dumps(infer_body(row.tolist(), "FP32")).encode())
    for fmt, datatype in (("sklearn", "FP64"), ("onnx", "FP32")):
        content, length = binary_body(row.tolist(), datatype)
        (work / f"body-{fmt}.bin").write_bytes(content)
        (work / f"body-{fmt}.bin.length").write_text(str(length))
        (work / f"body-{fmt}.pb").write_bytes(grpc_body(row.tolist(), datatype))
    ciclo = str(ROOT / ".venv" / "bin" / "ciclo")
    for fmt, file in (("sklearn", "model.joblib"), ("onnx", "model.onnx")):
        subprocess.run(
            [
                *[ciclo, "profile", str(work / "train.csv"), "--target", "label", "--model"],
                *[str(work / file), "--format", fmt, "--out", str(work / f"profile-{fmt}.json")],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # the same profile without CBPE's calibration: CBPE's cost is the difference
        profile = json.loads((work / f"profile-{fmt}.json").read_text())
        profile.pop("calibration", None)
        (work / f"profile-{fmt}-nocbpe.json").write_text(json.dumps(profile))

    chosen = servers(work, BASE_PORT)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        chosen = [s for s in chosen if s.label in wanted]
    venv_python = ROOT / ".venv" / "bin" / "python"
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "pinned": f"servers on CPU {SERVER_CPU}, load generator on CPU {LOADGEN_CPU}"
        if args.pin
        else "no",
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
        "versions": {
            "ciclo": versions(
                venv_python,
                [
                    *["ciclo", "uvicorn", "uvloop", "httptools", "orjson", "numpy"],
                    *["scikit-learn", "onnxruntime", "prometheus-client"],
                ],
            )
            | {
                "commit": subprocess.run(
                    ["git", "rev-parse", "--short", "HEAD"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
            },
            "mlserver": versions(
                CACHE / "mlserver" / "bin" / "python",
                [
                    *["mlserver", "mlserver-sklearn", "uvicorn", "uvloop", "fastapi", "numpy"],
                    *["scikit-learn", "onnxruntime"],
                ],
            ),
            "kserve": versions(
                CACHE / "kserve" / "bin" / "python",
                ["kserve", "uvicorn", "uvloop", "fastapi", "numpy", "scikit-learn", "onnxruntime"],
            ),
        },
        "loadavg": [],
        "runs": [],
    }
    for n in range(args.rounds):
        report["loadavg"].append({"round": n, "start": loadavg()})
        print(f"[bench] round {n + 1}/{args.rounds}, load average {loadavg()}", flush=True)
        # every other round in reverse, so no server always runs first or last while
        # the machine's other load comes and goes
        for server in chosen if n % 2 == 0 else chosen[::-1]:
            results = serve_and_load(server, work, expected, args)
            for c, r in results.items():
                report["runs"].append(
                    {"round": n, "server": server.label, "model": server.model, **r}
                )
                print(
                    f"[bench]   {server.model:7} {server.label:28} c={c:<3} "
                    f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms",
                    flush=True,
                )
        report["loadavg"][-1]["end"] = loadavg()
    report["notes"] = {f"{s.label} ({s.model})": s.note for s in chosen if s.note}
    args.out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"[bench] results in {args.out}")
    return 0


def table(report: dict[str, Any]) -> str:
    """The markdown tables docs/benchmarks.md shows: medians, and ratios to the faster of
    MLServer's two configurations at the same model and concurrency."""
    groups: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for r in report["runs"]:
        groups.setdefault((r["model"], r["server"], int(r["concurrency"])), []).append(r)
    medians = {k: summarize(v) for k, v in groups.items()}
    lines = [
        "| model | server | concurrency | req/s | p50 (ms) | p99 (ms) | req/s vs best MLServer "
        "| p99 vs best MLServer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (fmt, label, c), m in medians.items():
        refs = [v for (f, s, k), v in medians.items() if (f, k) == (fmt, c) and "MLServer" in s]
        ref = max(refs, key=lambda v: v["rps"]) if refs else None
        lines.append(
            f"| {fmt} | {label} | {c} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {ratio(m['rps'], ref['rps'] if ref else None)} "
            f"| {ratio(m['p99_ms'], ref['p99_ms'] if ref else None)} |"
        )
    lines += ["", "| model | server | concurrency | monitoring on (req/s) | off (req/s) | cost |"]
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
    for (fmt, label, c), m in medians.items():
        off_label = label.replace("ciclo serve", "ciclo serve --no-monitoring")
        off = medians.get((fmt, off_label, c))
        if label.startswith("ciclo serve") and "--no-monitoring" not in label and off:
            cost = 1 - m["rps"] / off["rps"]
            lines.append(
                f"| {fmt} | {label} | {c} | {m['rps']:.0f} | {off['rps']:.0f} | {cost:.1%} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
