"""Bad input stops at the door: the API server rejects each invalid manifest, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

DIGEST = "a" * 64
PLURALS = {
    "Model": "models",
    "ModelVersion": "modelversions",
    "MonitorPolicy": "monitorpolicies",
    "Review": "reviews",
}
DATASET = {"uri": "file:///data/eval.csv", "sha256": DIGEST, "target": "species"}


def model_version(**spec: Any) -> dict[str, Any]:
    base = {
        "model": "iris",
        "version": "v1",
        "artifact": {"uri": "file:///models/iris-v1.joblib", "format": "sklearn", "sha256": DIGEST},
    }
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "iris-v1"},
        "spec": {**base, **spec},
    }


def model(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"version": "v1", **spec},
    }


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "accuracy", "metric": "accuracy", "min": 0.85, **fields}


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "MonitorPolicy",
        "metadata": {"name": "iris"},
        "spec": {"modelRef": {"name": "iris"}, "rules": [rule()], **spec},
    }


def with_artifact(**artifact: Any) -> dict[str, Any]:
    manifest = model_version()
    manifest["spec"]["artifact"].update(artifact)
    return manifest


def with_serving(**serving: Any) -> dict[str, Any]:
    return model(serving=serving)


def with_training(**training: Any) -> dict[str, Any]:
    base = {
        "template": {"containers": [{"command": ["python", "/src/train.py"]}]},
        "artifactStore": "file:///data/models/iris",
    }
    return model(training={**base, **training})


def promotion(**fields: Any) -> dict[str, Any]:
    gates = [{"metric": "accuracy", "maxDrop": 0.01}]
    return model(promotion={"evaluation": {"dataset": DATASET}, "gates": gates, **fields})


def create(custom: Any, namespace: str, manifest: dict[str, Any]) -> Any:
    return custom.create_namespaced_custom_object(
        "ciclo.dev",
        "v1alpha1",
        namespace,
        PLURALS[manifest["kind"]],
        manifest,
        field_validation="Strict",
    )


# (case, manifest, what the API server's message must contain: the field, and the why)
CREATE_CASES = [
    ("unknown-field", with_artifact(checksum=DIGEST), ['unknown field "spec.artifact.checksum"']),
    ("typo-in-spec", model(servng={"replicas": 1}), ['unknown field "spec.servng"']),
    (
        "wrong-type-metric",
        model_version(metrics={"accuracy": "high"}),
        ["spec.metrics.accuracy", "number"],
    ),
    ("wrong-type-retired", model(retired="yes"), ["spec.retired", "boolean"]),
    ("bad-digest", with_artifact(sha256="sha256:1234"), ["spec.artifact.sha256", "should match"]),
    (
        "bad-uri-scheme",
        with_artifact(uri="ftp://host/model.bin"),
        ["spec.artifact.uri", "should match"],
    ),
    (
        "unknown-format",
        with_artifact(format="pytorch"),
        ["spec.artifact.format", "Unsupported value"],
    ),
    (
        "missing-artifact",
        {**model_version(), "spec": {"model": "iris", "version": "v1"}},
        ["spec.artifact", "Required value"],
    ),
    ("bad-version-name", model_version(version="v 1"), ["spec.version", "should match"]),
    (
        "negative-replicas",
        with_serving(replicas=-1),
        ["spec.serving.replicas", "greater than or equal to 0"],
    ),
    (
        "too-many-warm",
        with_serving(keepPrevious=9),
        ["spec.serving.keepPrevious", "less than or equal to 5"],
    ),
    (
        "bad-quantity",
        with_serving(resources={"requests": {"cpu": "lots"}}),
        ["spec.serving.resources.requests.cpu", "should match"],
    ),
    (
        "min-above-max",
        policy(rules=[rule(min=0.9, max=0.5)]),
        ["spec.rules[0].min", "min must not exceed max"],
    ),
    (
        "metric-and-query",
        policy(rules=[rule(query="up")]),
        ["spec.rules[0]", "exactly one of metric and query"],
    ),
    ("no-bound", policy(rules=[{"name": "a", "metric": "accuracy"}]), ["spec.rules[0]", "a bound"]),
    ("bad-duration", policy(interval="5 minutes"), ["spec.interval", "should match"]),
    ("too-short-interval", policy(interval="500ms"), ["spec.interval", "at least 1s"]),
    (
        "zero-threshold",
        policy(rules=[rule(failureThreshold=0)]),
        ["spec.rules[0].failureThreshold", "greater than or equal to 1"],
    ),
    (
        "unknown-metric",
        policy(rules=[rule(metric="auc")]),
        ["spec.rules[0].metric", "Unsupported value"],
    ),
    (
        "unknown-action",
        policy(rules=[rule(action="delete")]),
        ["spec.rules[0].action", "Unsupported value"],
    ),
    ("no-rules", policy(rules=[]), ["spec.rules", "at least 1 items"]),
    ("duplicate-rule", policy(rules=[rule(), rule()]), ["spec.rules[1]", "Duplicate value"]),
    (
        "feature-on-accuracy",
        policy(rules=[rule(feature="petal_width")]),
        ["spec.rules[0].feature", "only to feature_drift"],
    ),
    (
        "relative-drop-over-one",
        policy(
            rules=[
                {
                    "name": "accuracy",
                    "metric": "accuracy",
                    "baseline": {"maxDrop": 2.0, "relative": True},
                }
            ]
        ),
        ["spec.rules[0].baseline.maxDrop", "between 0 and 1"],
    ),
    (
        "canary-weight-over-100",
        model(rollout={"strategy": "canary", "steps": [{"weight": 150}]}),
        ["spec.rollout.steps[0].weight", "less than or equal to 100"],
    ),
    (
        "canary-steps-not-increasing",
        model(rollout={"strategy": "canary", "steps": [{"weight": 50}, {"weight": 10}]}),
        ["spec.rollout.steps", "step weights must increase"],
    ),
    (
        "canary-steps-repeated",
        model(rollout={"strategy": "canary", "steps": [{"weight": 50}, {"weight": 50}]}),
        ["spec.rollout.steps", "step weights must increase"],
    ),
    (
        "canary-without-steps",
        model(rollout={"strategy": "canary"}),
        ["spec.rollout.steps", "at least one step"],
    ),
    (
        "shadow-without-gateway",
        model(rollout={"strategy": "shadow"}),
        ["spec.rollout.gateway", "set gateway"],
    ),
    (
        "shadow-unknown-mirror",
        model(rollout={"strategy": "shadow", "gateway": {"name": "web", "mirror": "Envoy"}}),
        ["spec.rollout.gateway.mirror", "Unsupported value"],
    ),
    (
        "shadow-disagreement-over-1",
        model(
            rollout={
                "strategy": "shadow",
                "shadow": {"maxDisagreement": 2},
                "gateway": {"name": "web"},
            }
        ),
        ["spec.rollout.shadow.maxDisagreement", "less than or equal to 1"],
    ),
    (
        "unknown-strategy",
        model(rollout={"strategy": "bluegreen"}),
        ["spec.rollout.strategy", "Unsupported value"],
    ),
    (
        "abtest-unknown-test",
        model(rollout={"strategy": "abtest", "abtest": {"test": "ttest", "duration": "1h"}}),
        ["spec.rollout.abtest.test", "Unsupported value"],
    ),
    (
        "abtest-without-end",
        model(rollout={"strategy": "abtest", "abtest": {"split": 50}}),
        ["spec.rollout.abtest.duration", "a duration or a sample size"],
    ),
    (
        "abtest-without-settings",
        model(rollout={"strategy": "abtest"}),
        ["spec.rollout.abtest", "set abtest"],
    ),
    (
        "abtest-split-100",
        model(rollout={"strategy": "abtest", "abtest": {"split": 100, "duration": "1h"}}),
        ["spec.rollout.abtest.split", "less than or equal to 99"],
    ),
    (
        "bad-cron",
        with_training(schedule="every minute"),
        ["spec.training.schedule", "should match"],
    ),
    (
        "cron-of-four-fields",
        with_training(schedule="* * * *"),
        ["spec.training.schedule", "should match"],
    ),
    (
        "template-without-containers",
        with_training(template={"containers": []}),
        ["spec.training.template.containers", "at least 1 items"],
    ),
    (
        "template-missing-containers",
        with_training(template={"serviceAccountName": "trainer"}),
        ["spec.training.template.containers", "Required value"],
    ),
    (
        "container-without-command",
        with_training(template={"containers": [{"image": "trainer:1"}]}),
        ["spec.training.template.containers[0].command", "Required value"],
    ),
    (
        "artifact-store-not-a-uri",
        with_training(artifactStore="/data/models"),
        ["spec.training.artifactStore", "should match"],
    ),
    (
        "unknown-policy-action",
        policy(rules=[rule(action="retrain-now")]),
        ["spec.rules[0].action", "Unsupported value"],
    ),
    (
        "short-progress-deadline",
        with_serving(progressDeadlineSeconds=1),
        ["spec.serving.progressDeadlineSeconds", "greater than or equal to 10"],
    ),
    # The way in (spec.promotion).
    (
        "gate-on-unknown-metric",
        promotion(gates=[{"metric": "auc", "min": 0.9}]),
        ["spec.promotion.gates[0].metric", "Unsupported value"],
    ),
    (
        "dataset-without-sha256",
        promotion(evaluation={"dataset": {"uri": "file:///data/eval.csv"}}),
        ["spec.promotion.evaluation.dataset.sha256", "Required value"],
    ),
    (
        "dataset-bad-sha256",
        promotion(evaluation={"dataset": {**DATASET, "sha256": "abc"}}),
        ["spec.promotion.evaluation.dataset.sha256", "should match"],
    ),
    (
        "gate-without-bound",
        promotion(gates=[{"metric": "f1"}]),
        ["spec.promotion.gates[0]", "a gate needs a bound"],
    ),
    (
        "gates-without-dataset",
        model(promotion={"gates": [{"metric": "f1", "min": 0.9}]}),
        ["spec.promotion.evaluation", "gates need an evaluation dataset"],
    ),
    (
        "dataset-unknown-format",
        promotion(evaluation={"dataset": {**DATASET, "format": "xlsx"}}),
        ["spec.promotion.evaluation.dataset.format", "Unsupported value"],
    ),
    (
        "review-unknown-decision",
        {
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": "Review",
            "metadata": {"name": "r1"},
            "spec": {"model": "iris", "version": "v1", "decision": "Maybe", "user": "a"},
        },
        ["spec.decision", "Unsupported value"],
    ),
]


@pytest.mark.parametrize(
    ("manifest", "expected"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_invalid_manifest_is_rejected_naming_the_field(custom, namespace, manifest, expected):
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, manifest)
    assert caught.value.status in (400, 422), (
        caught.value.body
    )  # 400: strict decoding (unknown field)
    message = json.loads(caught.value.body)["message"]
    for fragment in expected:
        assert fragment in message, message
    assert not custom.list_namespaced_custom_object(
        "ciclo.dev", "v1alpha1", namespace, PLURALS[manifest["kind"]]
    )["items"], "nothing was stored"


UPDATE_CASES = [
    (
        "changed-artifact",
        ["spec", "artifact", "uri"],
        "file:///models/other.joblib",
        "artifact is immutable",
    ),
    ("changed-digest", ["spec", "artifact", "sha256"], "b" * 64, "artifact is immutable"),
    ("changed-model", ["spec", "model"], "other", "model is immutable"),
    ("changed-version", ["spec", "version"], "v2", "version is immutable"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), [c[1:] for c in UPDATE_CASES], ids=[c[0] for c in UPDATE_CASES]
)
def test_identity_of_a_registered_version_is_immutable(custom, namespace, path, value, expected):
    created = create(custom, namespace, model_version(description="first"))
    # A merge patch, as `kubectl apply` or `kubectl patch` would send: the operator may have
    # added its label and finalizer since the create, so a replace could meet a 409 instead.
    patch: dict[str, Any] = {}
    target = patch
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            "ciclo.dev", "v1alpha1", namespace, "modelversions", "iris-v1", patch
        )
    assert caught.value.status == 422
    assert expected in json.loads(caught.value.body)["message"]
    stored = custom.get_namespaced_custom_object(
        "ciclo.dev", "v1alpha1", namespace, "modelversions", "iris-v1"
    )
    assert stored["spec"] == created["spec"], "the registered version is unchanged"


def test_description_of_a_registered_version_may_change(custom, namespace):
    create(custom, namespace, model_version(description="first"))
    updated = custom.patch_namespaced_custom_object(
        "ciclo.dev",
        "v1alpha1",
        namespace,
        "modelversions",
        "iris-v1",
        {"spec": {"description": "second"}},
    )
    assert updated["spec"]["description"] == "second"


def test_valid_manifests_are_accepted_with_defaults(custom, namespace):
    create(custom, namespace, model_version())
    stored = create(custom, namespace, model(serving={"replicas": 2}))
    assert stored["spec"]["retired"] is False
    assert stored["spec"]["task"] == "classification"
    assert stored["spec"]["serving"]["keepPrevious"] == 1
    assert stored["spec"]["serving"]["port"] == 8080
    stored_policy = create(custom, namespace, policy())
    assert stored_policy["spec"]["interval"] == "30s"
    assert stored_policy["spec"]["rules"][0]["failureThreshold"] == 3


def test_a_canary_with_increasing_steps_is_accepted_with_defaults(custom, namespace):
    steps = [{"weight": 10}, {"weight": 50, "pause": "2m"}, {"weight": 100}]
    stored = create(custom, namespace, model(rollout={"strategy": "canary", "steps": steps}))
    assert [s["weight"] for s in stored["spec"]["rollout"]["steps"]] == [10, 50, 100]
    assert stored["spec"]["rollout"]["steps"][0]["pause"] == "1m"
    plain = create(custom, namespace, {**model(), "metadata": {"name": "plain"}})
    assert "rollout" not in plain["spec"], "no rollout: a switch, as before"
