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
from ciclo.cli import profile, promotion, serve, training
from ciclo.cli.status import render_status
from ciclo.config import Config
from ciclo.kube.client import (
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    ApiError,
    Kube,
    load_client,
)
from ciclo.planning.names import dns_label
from ciclo.records import canary, rollback


def _kube(args: argparse.Namespace) -> Kube:
    return Kube(load_client(args.kubeconfig))


def cmd_run(args: argparse.Namespace) -> int:
    from ciclo.controllers import operator  # kopf and the controllers only when running

    config = dataclasses.replace(Config.from_env(), namespaces=tuple(args.namespace or ()))
    if args.image:
        config = dataclasses.replace(config, image=args.image)
    if args.prometheus_url:
        config = dataclasses.replace(config, prometheus_url=args.prometheus_url)
    operator.run(config, args.kubeconfig, args.log_format, args.verbose, args.health_port)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    kube = _kube(args)
    namespace = None if args.all_namespaces else args.namespace
    models, policies = kube.list(MODELS, namespace), kube.list(MONITOR_POLICIES, namespace)
    versions = kube.list(MODEL_VERSIONS, namespace)
    sys.stdout.write(render_status(models, policies, args.output, versions))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    import datetime as dt

    from ciclo.cli import card

    kube = _kube(args)
    model = kube.get(MODELS, args.namespace, args.model)
    if model is None:
        print(f"ciclo card: model {args.namespace}/{args.model} not found", file=sys.stderr)
        return 1
    versions = kube.list(MODEL_VERSIONS, args.namespace, fields=f"spec.model={args.model}")
    policies = kube.list(MONITOR_POLICIES, args.namespace)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = card.render(
        model, versions, policies, generated=now, fmt="html" if args.html else "markdown"
    )
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    try:
        done = rollback.request(
            _kube(args),
            Config.from_env().image,
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


def cmd_promote(args: argparse.Namespace) -> int:
    try:
        version = canary.promote(_kube(args), args.namespace, args.model, args.reason)
    except canary.NoCanary as e:
        print(f"ciclo promote: {e}", file=sys.stderr)
        return 1
    print(f"model {args.model}: {version} will be promoted")
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    try:
        done = canary.abort(
            _kube(args), Config.from_env().image, args.namespace, args.model, args.reason
        )
    except (canary.NoCanary, rollback.RollbackRefused) as e:
        print(f"ciclo abort: {e}", file=sys.stderr)
        return 1
    print(f"model {done.model}: canary of {done.bad} aborted; {done.target} takes all traffic")
    return 0


def sha256_of(uri: str) -> str:
    import fsspec

    from ciclo.serving.artifacts import resolve

    # As `ciclo fetch` reads it: a pvc:// URI is a file on the mounted claim.
    url, options = resolve(uri)
    digest = hashlib.sha256()
    with fsspec.open(url, "rb", **options) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_uri(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def cmd_register(args: argparse.Namespace) -> int:
    from ciclo.serving.artifacts import FetchError

    if not args.model or not args.version:
        print(
            "ciclo register: --model and --version (or CICLO_MODEL, CICLO_VERSION)", file=sys.stderr
        )
        return 2
    uri = _as_uri(args.artifact)
    metrics = {k: float(v) for k, v in (m.split("=", 1) for m in args.metric)}
    # Every digest is taken before anything is created: an artifact, profile or dataset
    # that cannot be read stops here, so no version is ever registered without them.
    try:
        fields: dict[str, Any] = {
            "model": args.model,
            "version": args.version,
            "description": args.description,
            "artifact": {"uri": uri, "format": args.format, "sha256": sha256_of(uri)},
            "metrics": metrics,
            **training.lineage_fields(args, sha256_of, _as_uri),
        }
        if args.baseline:
            base = _as_uri(args.baseline)
            fields["baseline"] = {"uri": base, "sha256": sha256_of(base)}
    except (OSError, FetchError) as e:
        print(f"ciclo register: nothing registered: {e}", file=sys.stderr)
        return 1
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
    from ciclo.cli.progress import ProgressMeter
    from ciclo.serving.artifacts import FetchError, fetch

    # A meter only for a person watching: the serving pod's init step logs one line.
    meter = ProgressMeter(sys.stderr) if sys.stderr.isatty() else None
    try:
        digest = fetch(args.uri, Path(args.dest), args.sha256, timeout=args.timeout, progress=meter)
    except FetchError as e:
        if meter:
            meter.finish()
        line = f"ciclo fetch: {e}"
        print(line, file=sys.stderr)
        # Kubernetes reads this file into the container's terminated state: the operator
        # turns it into the ModelVersion's Validated condition. The kubelet makes it (mode
        # 0666, for any uid) in a /dev the runtime's user cannot write to: only when it is there.
        if os.access(TERMINATION_LOG, os.W_OK):
            with contextlib.suppress(OSError):
                TERMINATION_LOG.write_text(line + "\n")
        return 1
    if meter:
        meter.finish()
    print(f"ciclo fetch: {args.uri} -> {args.dest} (sha256 {digest})")
    return 0


def build_parser(prog: str = "ciclo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
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
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("CICLO_LOG_FORMAT", "text"),
        help="text, or one JSON object a line; each line about an object names its namespace "
        "and name (CICLO_LOG_FORMAT; default text)",
    )
    run.set_defaults(func=cmd_run)

    status = sub.add_parser(
        "status", help="a table of models: desired, serving, ready, last action"
    )
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    status.add_argument(
        "-o",
        "--output",
        choices=["json", "yaml", "wide"],
        help="json or yaml: the same as data; wide: more columns",
    )
    status.set_defaults(func=cmd_status)

    card = sub.add_parser(
        "card", help="a model card (Markdown, or HTML) from the registry and the Model's status"
    )
    card.add_argument("model")
    card.add_argument("-n", "--namespace", default="default")
    card.add_argument("--html", action="store_true", help="HTML instead of Markdown")
    card.add_argument("-o", "--out", help="write the card to this file instead of stdout")
    card.set_defaults(func=cmd_card)

    back = sub.add_parser(
        "rollback", help="mark the serving version bad and serve the last good one"
    )
    back.add_argument("model")
    back.add_argument("-n", "--namespace", default="default")
    back.add_argument("--reason", default="rolled back by hand with `ciclo rollback`")
    back.set_defaults(func=cmd_rollback)

    prom = sub.add_parser("promote", help="promote a running canary's candidate now")
    prom.add_argument("model")
    prom.add_argument("-n", "--namespace", default="default")
    prom.add_argument("--reason", default="promoted by hand with `ciclo promote`")
    prom.set_defaults(func=cmd_promote)

    stop = sub.add_parser("abort", help="abort a running canary: the champion takes it all back")
    stop.add_argument("model")
    stop.add_argument("-n", "--namespace", default="default")
    stop.add_argument("--reason", default="aborted by hand with `ciclo abort`")
    stop.set_defaults(func=cmd_abort)

    fetch = sub.add_parser("fetch", help="copy an artifact to a path, checking its sha256")
    fetch.add_argument("uri", help="file://, https://, http://, s3://, gs:// or pvc://CLAIM/PATH")
    fetch.add_argument("dest")
    fetch.add_argument("--sha256", help="the digest the artifact must have")
    fetch.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    fetch.set_defaults(func=cmd_fetch)

    serve.add_parser(sub)
    profile.add_parser(sub)
    register = sub.add_parser(
        "register", help="create a ModelVersion from an artifact, computing its sha256"
    )
    register.add_argument(
        "artifact", help="a local path or a URI (file://, https://, s3://, gs://, pvc://CLAIM/PATH)"
    )
    register.add_argument("--model", default=training.env_default("model"))
    register.add_argument("--version", default=training.env_default("version"), dest="version")
    register.add_argument(
        "--format", required=True, choices=["sklearn", "xgboost", "lightgbm", "onnx"]
    )
    register.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE")
    register.add_argument("--description")
    register.add_argument("--baseline", help="the training profile (`ciclo profile`): path or URI")
    register.add_argument("-n", "--namespace", default=training.env_default("namespace", "default"))
    training.add_lineage_arguments(register)
    register.add_argument(
        "--dry-run", action="store_true", help="print the manifest instead of creating it"
    )
    register.set_defaults(func=cmd_register)
    training.add_retrain_parser(sub, lambda args: training.cmd_retrain(args, _kube(args)))
    promotion.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = "ciclo") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except ApiError as e:
        # The API server's own words (a 403 from RBAC, a 422 from admission), not a traceback.
        print(f"{prog} {args.command}: {e}", file=sys.stderr)
        return 1
    return result


def kubectl_plugin() -> int:
    """`kubectl ciclo ...`: kubectl finds the `kubectl-ciclo` executable on PATH (its plugin
    discovery) and runs it with the rest of the command line."""
    return main(sys.argv[1:], prog="kubectl ciclo")


if __name__ == "__main__":
    sys.exit(main())
