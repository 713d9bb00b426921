"""`ciclo serve`: a model over the Open Inference Protocol v2, REST and gRPC."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ciclo.drift.profile import ProfileError
    from ciclo.serving.loaders import LoaderError
    from ciclo.serving.monitor import Settings
    from ciclo.serving.runtime import ServeOptions, build_runtime
    from ciclo.serving.server import create_app

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
        feedback_store=args.feedback_store or None,
        feedback_store_prefix=args.feedback_store_prefix,
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
            CICLO_SERVE_HOST=args.host,
            CICLO_SERVE_GRPC_PORT=str(args.grpc_port),
        )
        uvicorn.run(
            "ciclo.serving.server:app_from_env", factory=True, workers=args.workers, **options
        )
    elif args.grpc_port:
        from ciclo.serving import grpc_server

        hooks = grpc_server.hooks(runtime, args.host, args.grpc_port)
        uvicorn.run(create_app(runtime, *hooks), **options)
    else:
        uvicorn.run(create_app(runtime), **options)
    return 0


def add_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve", help="serve a model over the Open Inference Protocol v2 (REST and gRPC)"
    )
    serve.add_argument("--model", required=True, help="the model file")
    serve.add_argument(
        "--format", required=True, choices=["sklearn", "xgboost", "lightgbm", "onnx"]
    )
    serve.add_argument("--name", required=True, help="the model's name in URLs")
    serve.add_argument("--version", required=True, dest="version")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--grpc-port", type=int, default=8081, help="the protocol's gRPC service (0: off)"
    )
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
        "--feedback-max-age",
        type=float,
        default=float(os.environ.get("CICLO_FEEDBACK_MAX_AGE") or 86_400.0),
        help="seconds a prediction is kept for its label (CICLO_FEEDBACK_MAX_AGE; default a day)",
    )
    serve.add_argument(
        "--feedback-store",
        default=os.environ.get("CICLO_FEEDBACK_STORE"),
        help="a Valkey/Redis URL (redis://[:password@]host:port/db) every pod of the Model "
        "shares, so a label finds its prediction on any pod (CICLO_FEEDBACK_STORE; default: "
        "this process's memory)",
    )
    serve.add_argument(
        "--feedback-store-prefix",
        default=os.environ.get("CICLO_FEEDBACK_STORE_PREFIX"),
        help="the store's keys start with ciclo:PREFIX: (default: --name)",
    )
    serve.add_argument(
        "--max-batch-size", type=int, default=1, help="rows per adaptive batch (1: no batching)"
    )
    serve.add_argument(
        "--max-batch-delay-ms", type=float, default=0.0, help="wait for a fuller batch, ms"
    )
    serve.set_defaults(func=cmd_serve)
