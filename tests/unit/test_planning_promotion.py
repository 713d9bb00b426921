"""The way in (planning/promotion.py, planning/evaluation.py, and the Model planner with
spec.promotion): a candidate takes no traffic until its evaluation and review allow it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.promotion import EvaluationRecord, Gate
from ciclo.planning import conditions, evaluation, manifests, promotion
from ciclo.planning.model import DeploymentState, plan

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SHA = "d" * 64
DATASET = {"uri": "file:///data/eval.csv", "sha256": SHA, "target": "y"}


def mv(version: str, **status: Any) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "metadata": {"name": f"iris-{version}", "namespace": "ns", "generation": 1},
            "spec": {
                "model": "iris",
                "version": version,
                "artifact": {
                    "uri": f"file:///m/{version}",
                    "format": "sklearn",
                    "sha256": "a" * 64,
                },
            },
            "status": status,
        }
    )


def model(version: str, serving: str | None = "v1", **promotion_spec: Any) -> Model:
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {
                "version": version,
                "promotion": {"evaluation": {"dataset": DATASET}, **promotion_spec},
            },
            "status": {
                "servingVersion": serving,
                "desiredVersion": version,
                "history": [{"version": serving, "since": T0.isoformat()}] if serving else [],
            },
        }
    )


def record(champion: str | None = "v1", **metrics: tuple[float, float | None]) -> dict[str, Any]:
    return {
        "champion": champion,
        "datasetSha256": SHA,
        "rows": 100,
        "finishedAt": T0.isoformat(),
        "metrics": [
            {"metric": k, "candidate": c, **({"champion": h} if h is not None else {})}
            for k, (c, h) in metrics.items()
        ],
    }


def review(decision: str, user: str = "alice", minutes: int = 0) -> dict[str, Any]:
    at = T0 + dt.timedelta(minutes=minutes)
    return {
        "decision": decision,
        "user": user,
        "comment": "ok",
        "at": at.isoformat(),
        "review": f"r-{decision}-{minutes}",
    }


ACC_DROP = {"metric": "accuracy", "maxDrop": 0.01}
F1_MIN = {"metric": "f1", "min": 0.9}
P99_MAX = {"metric": "latency_p99_ms", "max": 5}


@pytest.mark.parametrize(
    ("gates", "approval", "status", "serving", "reason", "may_serve", "says"),
    [
        # No record for the dataset yet: evaluate.
        ([ACC_DROP], False, {}, "v1", "Evaluating", False, "evaluated against v1"),
        # A record of another dataset does not count.
        (
            [ACC_DROP],
            False,
            {"evaluation": {**record(accuracy=(0.9, 0.9)), "datasetSha256": "e" * 64}},
            "v1",
            "Evaluating",
            False,
            "being evaluated",
        ),
        (
            [ACC_DROP],
            False,
            {"evaluation": record(accuracy=(0.95, 0.93))},
            "v1",
            "Promoted",
            True,
            "candidate 0.95, champion 0.93",
        ),
        # Both numbers in the failure.
        (
            [ACC_DROP],
            False,
            {"evaluation": record(accuracy=(0.80, 0.93))},
            "v1",
            "GateFailed",
            False,
            "accuracy >= champion - 0.01 failed: candidate 0.8, champion 0.93",
        ),
        # A drop of exactly maxDrop passes.
        (
            [ACC_DROP],
            False,
            {"evaluation": record(accuracy=(0.92, 0.93))},
            "v1",
            "Promoted",
            True,
            "",
        ),
        (
            [F1_MIN],
            False,
            {"evaluation": record(f1=(0.85, 0.95))},
            "v1",
            "GateFailed",
            False,
            "f1 >= 0.9 failed: candidate 0.85, champion 0.95",
        ),
        (
            [P99_MAX],
            False,
            {"evaluation": record(latency_p99_ms=(7.5, 2.0))},
            "v1",
            "GateFailed",
            False,
            "latency_p99_ms <= 5 failed: candidate 7.5, champion 2",
        ),
        # Lower is better for latency: a relative gate the other way round.
        (
            [{"metric": "latency_p99_ms", "maxDrop": 1}],
            False,
            {"evaluation": record(latency_p99_ms=(3.5, 2.0))},
            "v1",
            "GateFailed",
            False,
            "latency_p99_ms <= champion + 1 failed",
        ),
        # No champion: a relative gate passes and says so; an absolute one still applies.
        (
            [ACC_DROP, F1_MIN],
            False,
            {"evaluation": record(None, accuracy=(0.5, None), f1=(0.95, None))},
            None,
            "Promoted",
            True,
            "no champion to compare with",
        ),
        (
            [ACC_DROP, F1_MIN],
            False,
            {"evaluation": record(None, accuracy=(0.5, None), f1=(0.5, None))},
            None,
            "GateFailed",
            False,
            "f1 >= 0.9 failed: candidate 0.5, champion none",
        ),
        # A metric the evaluation did not measure fails its gate.
        (
            [F1_MIN],
            False,
            {"evaluation": record(accuracy=(0.9, 0.9))},
            "v1",
            "GateFailed",
            False,
            "not measured",
        ),
        (
            [ACC_DROP],
            False,
            {"evaluation": {**record(), "error": "sha256 mismatch"}},
            "v1",
            "EvaluationFailed",
            False,
            "sha256 mismatch",
        ),
        # Review.
        (
            [ACC_DROP],
            True,
            {"evaluation": record(accuracy=(0.95, 0.93))},
            "v1",
            "AwaitingApproval",
            False,
            "ciclo approve iris v2",
        ),
        (
            [ACC_DROP],
            True,
            {"evaluation": record(accuracy=(0.95, 0.93)), "reviews": [review("Approve")]},
            "v1",
            "Promoted",
            True,
            "approved by alice",
        ),
        (
            [ACC_DROP],
            True,
            {"evaluation": record(accuracy=(0.95, 0.93)), "reviews": [review("Comment")]},
            "v1",
            "AwaitingApproval",
            False,
            "",
        ),
        # A rejection stands, even before the evaluation, and against a later approval.
        (
            [ACC_DROP],
            True,
            {"reviews": [review("Reject", "bob")]},
            "v1",
            "Rejected",
            False,
            "rejected by bob",
        ),
        (
            [ACC_DROP],
            True,
            {
                "evaluation": record(accuracy=(0.95, 0.93)),
                "reviews": [review("Approve", minutes=5), review("Reject", "bob")],
            },
            "v1",
            "Rejected",
            False,
            "rejected by bob",
        ),
        # Not a candidate: it serves, or it served before.
        ([F1_MIN], False, {}, "v2", "Exempt", True, ""),
        ([F1_MIN], False, {"servedAt": T0.isoformat()}, "v1", "Exempt", True, ""),
    ],
)
def test_verdict(
    gates: list[dict[str, Any]],
    approval: bool,
    status: dict[str, Any],
    serving: str | None,
    reason: str,
    may_serve: bool,
    says: str,
) -> None:
    m = model("v2", serving, gates=gates, requireApproval=approval)
    verdict = promotion.verdict(m, mv("v2", **status), serving)
    assert (verdict.reason, verdict.may_serve) == (reason, may_serve), verdict.message
    assert says in verdict.message
    assert verdict.evaluate == (reason == "Evaluating")


def test_no_promotion_is_exempt() -> None:
    m = Model.model_validate({"metadata": {"name": "iris"}, "spec": {"version": "v2"}})
    assert promotion.verdict(m, mv("v2"), "v1").reason == "Exempt"
    assert promotion.validated(m, mv("v2")) is None


def test_judge_names_both_numbers() -> None:
    rec = EvaluationRecord.model_validate(record(accuracy=(0.71, 0.93)))
    ok, sentence = promotion.judge(Gate(metric="accuracy", max_drop=0.01), rec)
    assert not ok and "0.71" in sentence and "0.93" in sentence


def deployed(p: Any) -> set[str]:
    return {d["metadata"]["labels"][manifests.VERSION_LABEL] for d in p.deployments}


def test_plan_holds_the_champion_and_asks_for_an_evaluation() -> None:
    m = model("v2", gates=[ACC_DROP])
    p = plan(
        m,
        [mv("v1", servedAt=T0.isoformat()), mv("v2")],
        [DeploymentState("iris-v1", "v1", 1)],
        "img",
        T0,
    )
    assert p.status.serving_version == "v1" and deployed(p) == {"v1"}
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    [job] = p.evaluation_jobs
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["ciclo", "evaluate"] and "--champion-version" in command
    assert job["metadata"]["labels"][evaluation.EVALUATES_LABEL] == "v2"
    assert manifests.VERSION_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    progressing = conditions.find(p.status.conditions, "Progressing")
    degraded = conditions.find(p.status.conditions, "Degraded")
    assert progressing and progressing.reason == "Evaluating" and progressing.status == "True"
    assert degraded and degraded.status == "False"
    [v2] = [u for u in p.versions if u.name == "iris-v2"]
    validated = next(c for c in v2.conditions if c.type == "Validated")
    assert v2.phase == "Evaluating" and validated.status == "Unknown"


def test_plan_a_failed_gate_degrades_the_model_and_never_deploys_the_candidate() -> None:
    m = model("v2", gates=[ACC_DROP])
    v2 = mv("v2", evaluation=record(accuracy=(0.71, 0.93)))
    p = plan(
        m, [mv("v1", servedAt=T0.isoformat()), v2], [DeploymentState("iris-v1", "v1", 1)], "img", T0
    )
    assert deployed(p) == {"v1"} and p.evaluation_jobs == []
    degraded = conditions.find(p.status.conditions, "Degraded")
    assert degraded and degraded.status == "True" and degraded.reason == "GateFailed"
    assert "candidate 0.71, champion 0.93" in degraded.message
    [u] = [u for u in p.versions if u.name == "iris-v2"]
    validated = next(c for c in u.conditions if c.type == "Validated")
    assert u.phase == "Failed" and validated.status == "False" and validated.reason == "GateFailed"


def test_plan_awaits_approval_then_brings_the_candidate_up() -> None:
    m = model("v2", gates=[ACC_DROP], requireApproval=True)
    v1 = mv("v1", servedAt=T0.isoformat())
    passed = record(accuracy=(0.95, 0.93))
    p = plan(m, [v1, mv("v2", evaluation=passed)], [DeploymentState("iris-v1", "v1", 1)], "img", T0)
    assert deployed(p) == {"v1"}
    assert conditions.find(p.status.conditions, "Progressing").reason == "AwaitingApproval"  # type: ignore[union-attr]
    [u] = [u for u in p.versions if u.name == "iris-v2"]
    assert u.phase == "AwaitingApproval"
    assert next(c for c in u.conditions if c.type == "Validated").reason == "GatesPassed"
    approved = mv("v2", evaluation=passed, reviews=[review("Approve")])
    p = plan(m, [v1, approved], [DeploymentState("iris-v1", "v1", 1)], "img", T0)
    assert deployed(p) == {"v1", "v2"} and p.status.rollout and p.status.rollout.version == "v2"
    # Once its pods are ready, it serves, and Validated keeps the gates' figures.
    p = plan(
        m,
        [v1, approved],
        [DeploymentState("iris-v1", "v1", 1), DeploymentState("iris-v2", "v2", 1)],
        "img",
        T0,
        fetch={"v2": (True, "sha ok")},
    )
    assert p.status.serving_version == "v2"
    [u] = [u for u in p.versions if u.name == "iris-v2"]
    assert next(c for c in u.conditions if c.type == "Validated").reason == "GatesPassed"


def test_plan_a_rejected_candidate_never_serves() -> None:
    m = model("v2", gates=[ACC_DROP], requireApproval=True)
    v2 = mv("v2", evaluation=record(accuracy=(0.95, 0.93)), reviews=[review("Reject", "bob")])
    p = plan(
        m, [mv("v1", servedAt=T0.isoformat()), v2], [DeploymentState("iris-v1", "v1", 1)], "img", T0
    )
    assert deployed(p) == {"v1"}
    degraded = conditions.find(p.status.conditions, "Degraded")
    assert degraded and degraded.reason == "Rejected" and "bob" in degraded.message
    assert [u.phase for u in p.versions if u.name == "iris-v2"] == ["Rejected"]


def test_plan_first_version_is_evaluated_before_anything_serves() -> None:
    m = model("v1", serving=None, gates=[F1_MIN])
    p = plan(m, [mv("v1")], [], "img", T0)
    assert p.deployments == [] and p.service is None and len(p.evaluation_jobs) == 1
    command = p.evaluation_jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--champion" not in command
    ready = conditions.find(p.status.conditions, "Ready")
    assert ready and ready.status == "False" and ready.reason == "Evaluating"


def test_the_job_is_placed_like_the_serving_pods() -> None:
    m = model("v2", gates=[ACC_DROP])
    m.spec.serving.node_selector = {"node": "proc"}
    m.spec.serving.tolerations = []
    job = evaluation.job(m, mv("v2"), mv("v1"), "img")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node": "proc"} and pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False, "the Job needs no API access"
    container = pod["containers"][0]
    assert container["terminationMessagePath"].startswith(container["volumeMounts"][0]["mountPath"])
    assert job["spec"]["backoffLimit"] == 0 and job["metadata"]["ownerReferences"][0]["uid"] == "u1"


def stored(version: str, uri: str) -> ModelVersion:
    v = mv(version)
    v.spec.artifact.uri = uri
    return v


# (dataset, candidate, champion) -> the claims mounted read-only, in order
READS = [
    ("nothing on a claim", "file:///data/eval.csv", "file:///m/v2", "s3://b/v1", []),
    ("the dataset's claim", "pvc://data/eval.csv", "file:///m/v2", "file:///m/v1", ["data"]),
    (
        "each claim once",
        "pvc://data/eval.csv",
        "pvc://models/v2.joblib",
        "pvc://data/v1.joblib",
        ["data", "models"],
    ),
    ("no champion", "https://h/eval.csv", "pvc://models/v2.joblib", None, ["models"]),
]


@pytest.mark.parametrize(
    ("dataset", "candidate", "champion", "claims"),
    [c[1:] for c in READS],
    ids=[c[0] for c in READS],
)
def test_the_job_mounts_the_claims_it_reads_read_only(
    dataset: str, candidate: str, champion: str | None, claims: list[str]
) -> None:
    m = model("v2", gates=[ACC_DROP])
    assert m.spec.promotion is not None and m.spec.promotion.evaluation is not None
    m.spec.promotion.evaluation.dataset.uri = dataset
    job = evaluation.job(m, stored("v2", candidate), champion and stored("v1", champion), "img")
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "work", "emptyDir": {}},
        *(
            {"name": f"pvc-{c}", "persistentVolumeClaim": {"claimName": c, "readOnly": True}}
            for c in claims
        ),
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "work", "mountPath": evaluation.WORK_DIR},
        *({"name": f"pvc-{c}", "mountPath": f"/mnt/pvc/{c}", "readOnly": True} for c in claims),
    ]


def pod(version: str, code: int, message: str) -> dict[str, Any]:
    ended = {"exitCode": code, "message": message, "finishedAt": "2026-01-01T00:01:00Z"}
    return {
        "metadata": {"labels": {evaluation.EVALUATES_LABEL: version}},
        "status": {"containerStatuses": [{"name": "evaluate", "state": {"terminated": ended}}]},
    }


def test_outcome_reads_the_result_from_the_termination_message() -> None:
    result = {
        "rows": 3,
        "metrics": [{"metric": "accuracy", "candidate": 1.0}],
        "datasetSha256": SHA,
    }
    got = evaluation.outcome([pod("v2", 0, json.dumps(result))], None, "v2", SHA, T0)
    assert got and got.rows == 3 and got.error is None
    assert got.finished_at == dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    failed = evaluation.outcome(
        [pod("v2", 1, "log\nciclo evaluate: sha256 mismatch")], None, "v2", SHA, T0
    )
    assert failed and failed.error and failed.error.endswith("sha256 mismatch")
    garbled = evaluation.outcome([pod("v2", 0, "{not json")], None, "v2", SHA, T0)
    assert garbled and garbled.error and "unreadable" in garbled.error
    silent = evaluation.outcome([pod("v2", 0, "")], None, "v2", SHA, T0)
    assert silent and silent.error == "the evaluation ended without a result"
    assert evaluation.outcome([pod("v3", 0, "{}")], None, "v2", SHA, T0) is None
    job = {
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
        }
    }
    timed_out = evaluation.outcome([], job, "v2", SHA, T0)
    assert timed_out and timed_out.error and "DeadlineExceeded" in timed_out.error
