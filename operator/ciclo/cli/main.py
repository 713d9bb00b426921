"""`ciclo`: the operator, and what people do with models from a terminal."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ciclo import __version__
from ciclo.api.meta import API_VERSION
from ciclo.api.modelversion import ModelVersionSpec
from ciclo.controllers import rollback
from ciclo.controllers.config import Config
from ciclo.kube.client import (
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    ApiError,
    Kube,
    load_client,
)
from ciclo.planning.manifests import dns_label


def _kube(args: argparse.Namespace) -> Kube:
    return Kube(load_client(args.kubeconfig))


def cmd_run(args: argparse.Namespace) -> int:
    import kopf

    from ciclo.controllers.operator import setup

    config = dataclasses.replace(Config.from_env(), namespaces=tuple(args.namespace or ()))
    if args.image:
        config = dataclasses.replace(config, image=args.image)
    if args.prometheus_url:
        config = dataclasses.replace(config, prometheus_url=args.prometheus_url)
    setup(config, args.kubeconfig)
    kopf.configure(verbose=args.verbose)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )
    return 0


def _ready(model: dict[str, Any]) -> str:
    for c in model.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return (
                str(c["status"])
                if c["status"] == "True"
                else f"{c['status']} ({c.get('reason', '')})"
            )
    return "Unknown"


def health(policies: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, model) -> each policy rule's last value and state, e.g. accuracy=0.97 Ok."""
    out: dict[tuple[str, str], list[str]] = {}
    for p in policies:
        key = (p["metadata"]["namespace"], p["spec"]["modelRef"]["name"])
        for rule in p.get("status", {}).get("rules", []):
            value = rule.get("value")
            shown = "-" if value is None else f"{value:.3g}"
            out.setdefault(key, []).append(f"{rule['name']}={shown} {rule.get('state', '?')}")
    return {k: ", ".join(v) for k, v in out.items()}


def status_rows(
    models: list[dict[str, Any]], policies: list[dict[str, Any]] | None = None
) -> list[list[str]]:
    rules = health(policies or [])
    rows = [["NAMESPACE", "MODEL", "DESIRED", "SERVING", "READY", "HEALTH", "LAST ACTION"]]
    for m in sorted(models, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"])):
        status = m.get("status", {})
        rows.append(
            [
                m["metadata"]["namespace"],
                m["metadata"]["name"],
                m["spec"]["version"],
                status.get("servingVersion") or "-",
                _ready(m),
                rules.get((m["metadata"]["namespace"], m["metadata"]["name"]), "-"),
                status.get("lastAction") or "-",
            ]
        )
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    kube = _kube(args)
    namespace = None if args.all_namespaces else args.namespace
    rows = status_rows(kube.list(MODELS, namespace), kube.list(MONITOR_POLICIES, namespace))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    try:
        done = rollback.request(
            _kube(args),
            Config.from_env(),
            args.namespace,
            args.model,
            "ManualRollback",
            args.reason,
        )
    except rollback.RollbackRefused as e:
        print(f"ciclo rollback: {e}", file=sys.stderr)
        return 1
    print(f"model {done.model}: {done.bad} marked bad; {done.target} will serve")
    return 0


def sha256_of(uri: str) -> str:
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cmd_register(args: argparse.Namespace) -> int:
    uri = args.artifact if "://" in args.artifact else Path(args.artifact).resolve().as_uri()
    metrics = {k: float(v) for k, v in (m.split("=", 1) for m in args.metric)}
    fields: dict[str, Any] = {
        "model": args.model,
        "version": args.version,
        "description": args.description,
        "artifact": {"uri": uri, "format": args.format, "sha256": sha256_of(uri)},
        "metrics": metrics,
    }
    if args.baseline:
        base = args.baseline if "://" in args.baseline else Path(args.baseline).resolve().as_uri()
        fields["baseline"] = {"uri": base, "sha256": sha256_of(base)}
    spec = ModelVersionSpec.model_validate(fields)
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {"name": dns_label(args.model, args.version), "namespace": args.namespace},
        "spec": spec.model_dump(
            by_alias=True, mode="json", exclude_none=True, exclude_defaults=True
        ),
    }
    if args.dry_run:
        print(yaml.safe_dump(manifest, sort_keys=False), end="")
        return 0
    try:
        _kube(args).create(MODEL_VERSIONS, args.namespace, manifest)
    except ApiError as e:
        print(f"ciclo register: {e.message}", file=sys.stderr)
        return 1
    digest = spec.artifact.sha256[:12]
    print(f"modelversion {manifest['metadata']['name']} registered (sha256 {digest}…)")
    return 0


TERMINATION_LOG = Path("/dev/termination-log")


def cmd_fetch(args: argparse.Namespace) -> int:
    from ciclo.serving.artifacts import FetchError, fetch

    try:
        digest = fetch(args.uri, Path(args.dest), args.sha256, timeout=args.timeout)
    except FetchError as e:
        line = f"ciclo fetch: {e}"
        print(line, file=sys.stderr)
        # Kubernetes reads this file into the container's terminated state: the operator
        # turns it into the ModelVersion's Validated condition.
        if TERMINATION_LOG.parent.is_dir() and os.access(TERMINATION_LOG.parent, os.W_OK):
            with contextlib.suppress(OSError):
                TERMINATION_LOG.write_text(line + "\n")
        return 1
    print(f"ciclo fetch: {args.uri} -> {args.dest} (sha256 {digest})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import numpy as np

    from ciclo.drift.profile import ProfileError, build_profile
    from ciclo.drift.table import read_table
    from ciclo.serving.loaders import LoaderError, load
    from ciclo.serving.server import is_classifier

    try:
        table = read_table(Path(args.data))
        left_out = {c for c in [args.target, *args.drop] if c}
        missing = left_out - set(table)
        if missing:
            raise ProfileError(f"no such column: {', '.join(sorted(missing))}")
        columns = {k: v for k, v in table.items() if k not in left_out}
        predictions, categorical = None, True
        if args.model:
            if not args.format:
                raise ProfileError("--model needs --format")
            predictor = load(Path(args.model), args.format)
            matrix = np.column_stack([v.astype(np.float64) for v in columns.values()])
            predictions = np.asarray(predictor.predict(matrix))
            categorical = is_classifier(predictor)
        profile = build_profile(columns, set(args.categorical), predictions, categorical)
    except (ProfileError, LoaderError, ValueError) as e:
        print(f"ciclo profile: {e}", file=sys.stderr)
        return 1
    profile.save(Path(args.out))
    kinds = [f.kind for f in profile.features]
    print(
        f"ciclo profile: {profile.rows} rows, {kinds.count('numeric')} numeric and "
        f"{kinds.count('categorical')} categorical features"
        + (", and the predictions" if profile.prediction else "")
        + f" -> {args.out}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ciclo.drift.profile import ProfileError
    from ciclo.serving.loaders import LoaderError
    from ciclo.serving.monitor import Settings
    from ciclo.serving.server import ServeOptions, build_runtime, create_app

    if args.workers > 1 and args.monitoring:
        print(
            "ciclo serve: --workers > 1 needs --no-monitoring (each process would keep its own "
            "predictions and windows); run more replicas instead",
            file=sys.stderr,
        )
        return 2
    serve_options = ServeOptions(
        max_body=args.max_body,
        monitoring=args.monitoring,
        baseline=Path(args.baseline) if args.baseline else None,
        settings=Settings(
            args.quality_window,
            args.drift_window,
            args.feedback_capacity,
            args.feedback_max_age,
        ),
        max_batch_size=args.max_batch_size,
        max_batch_delay=args.max_batch_delay_ms / 1000,
    )
    try:
        runtime = build_runtime(
            Path(args.model), args.format, args.name, args.version, serve_options
        )
    except (LoaderError, ProfileError, ValueError) as e:
        print(f"ciclo serve: {e}", file=sys.stderr)
        return 1
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
    }
    if args.workers > 1:
        # Each worker process loads the model itself, through the app factory.
        os.environ.update(
            CICLO_SERVE_MODEL=args.model,
            CICLO_SERVE_FORMAT=args.format,
            CICLO_SERVE_NAME=args.name,
            CICLO_SERVE_VERSION=args.version,
            CICLO_SERVE_MAX_BODY=str(args.max_body),
            CICLO_SERVE_MAX_BATCH_SIZE=str(args.max_batch_size),
            CICLO_SERVE_MAX_BATCH_DELAY=str(args.max_batch_delay_ms / 1000),
        )
        uvicorn.run(
            "ciclo.serving.server:app_from_env", factory=True, workers=args.workers, **options
        )
    else:
        uvicorn.run(create_app(runtime), **options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ciclo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ciclo {__version__}")
    parser.add_argument("--kubeconfig", help="default: KUBECONFIG, ~/.kube/config, or in-cluster")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--namespace", action="append", help="watch only this namespace (repeatable)")
    run.add_argument("--image", help="the runtime image for serving pods (CICLO_RUNTIME_IMAGE)")
    run.add_argument("--health-port", type=int, default=8081)
    run.add_argument(
        "--prometheus-url", help="Prometheus for MonitorPolicies naming none (CICLO_PROMETHEUS_URL)"
    )
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser(
        "status", help="a table of models: desired, serving, ready, last action"
    )
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    status.set_defaults(func=cmd_status)

    back = sub.add_parser(
        "rollback", help="mark the serving version bad and serve the last good one"
    )
    back.add_argument("model")
    back.add_argument("-n", "--namespace", default="default")
    back.add_argument("--reason", default="rolled back by hand with `ciclo rollback`")
    back.set_defaults(func=cmd_rollback)

    fetch = sub.add_parser("fetch", help="copy an artifact to a path, checking its sha256")
    fetch.add_argument("uri", help="file://, https://, http://, s3://, gs:// or pvc://CLAIM/PATH")
    fetch.add_argument("dest")
    fetch.add_argument("--sha256", help="the digest the artifact must have")
    fetch.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    fetch.set_defaults(func=cmd_fetch)

    serve = sub.add_parser("serve", help="serve a model over the Open Inference Protocol v2 (REST)")
    serve.add_argument("--model", required=True, help="the model file")
    serve.add_argument(
        "--format", required=True, choices=["sklearn", "xgboost", "lightgbm", "onnx"]
    )
    serve.add_argument("--name", required=True, help="the model's name in URLs")
    serve.add_argument("--version", required=True, dest="version")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes, for more cores")
    serve.add_argument("--max-body", type=int, default=64 << 20, help="largest request, bytes")
    serve.add_argument(
        "--baseline", help="the training profile (`ciclo profile`) drift is measured against"
    )
    serve.add_argument(
        "--no-monitoring",
        dest="monitoring",
        action="store_false",
        help="no feedback, quality or drift tracking (request counts and latency stay)",
    )
    serve.add_argument("--quality-window", type=int, default=1000, help="labelled samples")
    serve.add_argument("--drift-window", type=int, default=1000, help="input rows")
    serve.add_argument(
        "--feedback-capacity", type=int, default=100_000, help="predictions kept for feedback, rows"
    )
    serve.add_argument(
        "--feedback-max-age", type=float, default=86_400.0, help="seconds a prediction is kept"
    )
    serve.add_argument(
        "--max-batch-size", type=int, default=1, help="rows per adaptive batch (1: no batching)"
    )
    serve.add_argument(
        "--max-batch-delay-ms", type=float, default=0.0, help="wait for a fuller batch, ms"
    )
    serve.set_defaults(func=cmd_serve)

    profile = sub.add_parser("profile", help="build a baseline profile from training data")
    profile.add_argument("data", help="training data: CSV with a header row, or Parquet")
    profile.add_argument("--out", required=True, help="where to write profile.json")
    profile.add_argument("--target", help="the label column: left out of the features")
    profile.add_argument("--drop", action="append", default=[], help="another column to leave out")
    profile.add_argument(
        "--categorical", action="append", default=[], help="an integer-coded categorical column"
    )
    profile.add_argument(
        "--model", help="a model file: its predictions on DATA become the baseline"
    )
    profile.add_argument("--format", choices=["sklearn", "xgboost", "lightgbm", "onnx"])
    profile.set_defaults(func=cmd_profile)

    register = sub.add_parser(
        "register", help="create a ModelVersion from an artifact, computing its sha256"
    )
    register.add_argument(
        "artifact", help="a local path or a URI (file://, https://, s3://, gs://)"
    )
    register.add_argument("--model", required=True)
    register.add_argument("--version", required=True, dest="version")
    register.add_argument(
        "--format", required=True, choices=["sklearn", "xgboost", "lightgbm", "onnx"]
    )
    register.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE")
    register.add_argument("--description")
    register.add_argument("--baseline", help="the training profile (`ciclo profile`): path or URI")
    register.add_argument("-n", "--namespace", default="default")
    register.add_argument(
        "--dry-run", action="store_true", help="print the manifest instead of creating it"
    )
    register.set_defaults(func=cmd_register)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
