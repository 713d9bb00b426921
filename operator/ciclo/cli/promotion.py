"""The way in from a terminal: `ciclo evaluate` (the evaluation Job's command) and
`ciclo approve`, `ciclo reject`, `ciclo comment` (a Review, signed by the API server)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ciclo.api.meta import API_VERSION
from ciclo.kube.client import REVIEWS, Kube, load_client
from ciclo.planning.names import dns_label

SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ciclo.serving import scoring
    from ciclo.serving.artifacts import FetchError
    from ciclo.serving.loaders import LoaderError

    champion = None
    if args.champion:
        champion = scoring.Artifact(args.champion, args.champion_sha256, args.champion_format)
    workdir = Path(args.workdir)
    try:
        record = scoring.evaluate(
            scoring.Artifact(args.dataset, args.dataset_sha256, args.dataset_format),
            args.target,
            args.task,
            scoring.Artifact(args.candidate, args.candidate_sha256, args.candidate_format),
            champion,
            args.champion_version,
            workdir,
            args.latency_rows,
        )
    except (FetchError, LoaderError, scoring.ScoringError, ValueError) as e:
        # The last line of the log: what the operator records when the Job fails.
        print(f"ciclo evaluate: {e}", file=sys.stderr)
        return 1
    text = scoring.compact(record)
    if args.result:
        Path(args.result).write_text(text)
    print(text)
    return 0


def whoami(kube: Kube) -> str:
    """The authenticated user of this client's requests, as the API server sees it."""
    answer = kube.request(
        "POST",
        SELF_SUBJECT_REVIEWS,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(answer["status"]["userInfo"]["username"])


def review_manifest(
    namespace: str, model: str, version: str, decision: str, comment: str, user: str
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Review",
        "metadata": {
            "generateName": f"{dns_label(model, version, decision.lower(), limit=50)}-",
            "namespace": namespace,
        },
        "spec": {
            "model": model,
            "version": version,
            "decision": decision,
            "comment": comment,
            "user": user,
        },
    }


def cmd_review(args: argparse.Namespace) -> int:
    kube = Kube(load_client(args.kubeconfig))
    # Not a flag: the API server says who we are, and admission refuses any other name.
    user = whoami(kube)
    manifest = review_manifest(
        args.namespace, args.model, args.version, args.decision, args.comment, user
    )
    created = kube.create(REVIEWS, args.namespace, manifest)
    verb = {"Approve": "approved", "Reject": "rejected", "Comment": "commented on"}[args.decision]
    print(f"{args.model} {args.version} {verb} by {user} (review {created['metadata']['name']})")
    return 0


def add_parsers(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="score a candidate and the champion on the same labelled rows"
    )
    evaluate.add_argument("--dataset", required=True, help="URI of the labelled rows")
    evaluate.add_argument("--dataset-sha256", required=True)
    evaluate.add_argument("--dataset-format", choices=["csv", "parquet"], default="csv")
    evaluate.add_argument("--target", default="target", help="the label column")
    evaluate.add_argument(
        "--task", choices=["classification", "regression"], default="classification"
    )
    for role in ("candidate", "champion"):
        evaluate.add_argument(f"--{role}", required=role == "candidate", help="artifact URI")
        evaluate.add_argument(f"--{role}-sha256")
        evaluate.add_argument(
            f"--{role}-format", choices=["sklearn", "xgboost", "lightgbm", "onnx"]
        )
    evaluate.add_argument("--champion-version", help="the champion's version, for the record")
    evaluate.add_argument("--workdir", default=".", help="where the files are fetched to")
    evaluate.add_argument("--result", help="also write the JSON result to this file")
    evaluate.add_argument(
        "--latency-rows", type=int, default=1000, help="rows timed one by one (default 1000)"
    )
    evaluate.set_defaults(func=cmd_evaluate)

    for name, decision, what in (
        ("approve", "Approve", "let a version that passed its gates take traffic"),
        ("reject", "Reject", "stop a version for good: it never takes traffic"),
        ("comment", "Comment", "comment on a version"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("model")
        p.add_argument("version")
        p.add_argument("-n", "--namespace", default="default")
        p.add_argument("--comment", default="", help="why, recorded with your name")
        p.set_defaults(func=cmd_review, decision=decision)
