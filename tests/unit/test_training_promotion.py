"""A retrained version takes the way in (planning/promotion.py with spec.training): it is
the candidate in spec.version's place, passes the Model's gates, and goes further than
Validated without a person only with spec.training.autoPromote."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.planning import promotion
from ciclo.planning.model import DeploymentState, plan

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SHA = "d" * 64
DATASET = {"uri": "file:///data/eval.csv", "sha256": SHA, "target": "y"}
TRAINING = {
    "template": {"containers": [{"command": ["python", "/src/train.py"]}]},
    "artifactStore": "file:///data/models/iris",
}


def mv(version: str, evaluation: dict[str, Any] | None = None) -> ModelVersion:
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
            "status": {"evaluation": evaluation} if evaluation else {},
        }
    )


def model(auto: bool, promotion_spec: dict[str, Any] | None) -> Model:
    spec: dict[str, Any] = {"version": "v1", "training": {**TRAINING, "autoPromote": auto}}
    if promotion_spec is not None:
        spec["promotion"] = {"evaluation": {"dataset": DATASET}, **promotion_spec}
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": spec,
            "status": {
                "servingVersion": "v1",
                "desiredVersion": "v1",
                "history": [{"version": "v1", "since": T0.isoformat()}],
                "training": {"trainedVersion": "v2", "trainedFor": "v1"},
            },
        }
    )


def evaluated(accuracy: float) -> dict[str, Any]:
    return {
        "champion": "v1",
        "datasetSha256": SHA,
        "rows": 100,
        "finishedAt": T0.isoformat(),
        "metrics": [{"metric": "accuracy", "candidate": accuracy, "champion": 0.95}],
    }


GATES = {"gates": [{"metric": "accuracy", "maxDrop": 0.01}]}


@pytest.mark.parametrize(
    ("auto", "promotion_spec", "accuracy", "reason"),
    [
        (True, GATES, 0.96, "Promoted"),
        (True, GATES, 0.80, "GateFailed"),  # a worse retrained model stops at the gate
        (False, GATES, 0.96, "AwaitingApproval"),  # no further than Validated without a person
        (True, {**GATES, "requireApproval": True}, 0.96, "AwaitingApproval"),
        (True, GATES, None, "Evaluating"),
    ],
)
def test_the_trained_version_takes_the_way_in(
    auto: bool, promotion_spec: dict[str, Any], accuracy: float | None, reason: str
) -> None:
    m = model(auto, promotion_spec)
    v2 = mv("v2", evaluated(accuracy) if accuracy is not None else None)
    assert promotion.verdict(m, v2, "v1").reason == reason
    p = plan(m, [mv("v1"), v2], [DeploymentState("iris-v1", "v1", 1)], "ciclo:test", T0)
    assert p.status.desired_version == "v1"  # the spec is the user's
    if reason == "Promoted":
        assert p.target == "v2"
    else:
        assert p.target == "v1"
    if reason == "Evaluating":
        assert p.evaluation_jobs and "v2" in p.evaluation_jobs[0]["metadata"]["name"]


def test_without_promotion_only_auto_promote_brings_it_in() -> None:
    versions = [mv("v1"), mv("v2")]
    ready = [DeploymentState("iris-v1", "v1", 1)]
    assert plan(model(True, None), versions, ready, "ciclo:test", T0).target == "v2"
    assert plan(model(False, None), versions, ready, "ciclo:test", T0).target == "v1"
