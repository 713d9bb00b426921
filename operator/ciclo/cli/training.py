"""`ciclo retrain`, and what `ciclo register` records of a training run (docs/training.md).

Inside a training Job the operator sets CICLO_MODEL, CICLO_NAMESPACE, CICLO_VERSION,
CICLO_RUN, CICLO_TRIGGER and CICLO_PARENT_VERSION; `ciclo register` takes its defaults
from them, so a training script names only its artifact, metrics and data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from typing import Any

from ciclo.api.model import Model
from ciclo.kube.client import MODELS, Kube
from ciclo.records import retrain

ENV = {
    "model": "CICLO_MODEL",
    "namespace": "CICLO_NAMESPACE",
    "version": "CICLO_VERSION",
    "run_id": "CICLO_RUN",
    "trigger": "CICLO_TRIGGER",
    "parent_version": "CICLO_PARENT_VERSION",
}


def env_default(name: str, fallback: str | None = None) -> str | None:
    return os.environ.get(ENV[name]) or fallback


def add_lineage_arguments(parser: argparse.ArgumentParser) -> None:
    """The lineage flags of `ciclo register`; inside a training Job they default to the
    CICLO_* variables the operator sets."""
    parser.add_argument("--dataset", help="the training data: a path or URI (its sha256 is taken)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a training parameter"
    )
    parser.add_argument("--git-commit", help="the training code's commit (default: git's HEAD)")
    parser.add_argument("--run-id", default=env_default("run_id"), help="default: CICLO_RUN")
    parser.add_argument("--trigger", default=env_default("trigger"), help="default: CICLO_TRIGGER")
    parser.add_argument(
        "--parent-version",
        default=env_default("parent_version"),
        help="the version this one replaces (default: CICLO_PARENT_VERSION)",
    )
    parser.add_argument("--author", default=os.environ.get("USER"))


def git_head() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def lineage_fields(args: argparse.Namespace, sha256_of: Any, as_uri: Any) -> dict[str, Any]:
    """The spec fields of a ModelVersion's lineage; the dataset's digest is taken here, so a
    dataset that cannot be read stops the registration before anything is created."""
    fields: dict[str, Any] = {}
    if args.dataset:
        uri = as_uri(args.dataset)
        fields["dataset"] = uri
    if args.param:
        fields["parameters"] = dict(p.split("=", 1) for p in args.param)
    source = {
        "runId": args.run_id,
        "gitCommit": args.git_commit or git_head(),
        "author": args.author,
        "trigger": args.trigger,
        "parentVersion": args.parent_version,
        "datasetSha256": sha256_of(fields["dataset"]) if args.dataset else None,
    }
    source = {k: v for k, v in source.items() if v}
    if source:
        fields["source"] = source
    return fields


def cmd_retrain(args: argparse.Namespace, kube: Kube) -> int:
    raw = kube.get(MODELS, args.namespace, args.model)
    if raw is None:
        print(f"ciclo retrain: model {args.namespace}/{args.model} not found", file=sys.stderr)
        return 1
    model = Model.model_validate(raw)
    now = dt.datetime.now(dt.UTC)
    ident = retrain.manual_id(now)
    try:
        retrain.request(
            kube, model, ident, "ManualRetrain", args.reason, now.replace(microsecond=0)
        )
    except retrain.RetrainRefused as e:
        print(f"ciclo retrain: {e}", file=sys.stderr)
        return 1
    print(f"model {args.model}: retraining requested ({ident})")
    return 0


def add_retrain_parser(sub: Any, func: Any) -> None:
    back = sub.add_parser(
        "retrain", help="ask for a training run of a Model (spec.training); one runs at a time"
    )
    back.add_argument("model")
    back.add_argument("-n", "--namespace", default="default")
    back.add_argument("--reason", default="asked by hand with `ciclo retrain`")
    back.set_defaults(func=func)
