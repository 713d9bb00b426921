"""spec.monitoring.feedback.maxAgeSeconds: from the Model to the pods to the runtime."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.cli.main import build_parser
from ciclo.planning import manifests

IMAGE = "ciclo:test"
SERVE = ["serve", "--model", "m.joblib", "--format", "sklearn", "--name", "iris", "--version", "v1"]
VERSION = ModelVersion.model_validate(
    {
        "metadata": {"name": "iris-v1", "namespace": "ns", "generation": 1},
        "spec": {
            "model": "iris",
            "version": "v1",
            "artifact": {"uri": "file:///m/v1", "format": "sklearn", "sha256": "a" * 64},
        },
    }
)


def model(monitoring: dict[str, Any]) -> Model:
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"version": "v1", "monitoring": monitoring},
        }
    )


def test_the_feedback_max_age_reaches_the_pods_and_the_runtime_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feedback = {"feedback": {"maxAgeSeconds": 3600}}
    d = manifests.deployment(model(feedback), VERSION, 1, "serving", IMAGE)
    (container,) = d["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "CICLO_FEEDBACK_MAX_AGE", "value": "3600"}]
    monkeypatch.setenv("CICLO_FEEDBACK_MAX_AGE", "3600")
    args = build_parser().parse_args(SERVE)
    assert args.feedback_max_age == 3600.0
    monkeypatch.delenv("CICLO_FEEDBACK_MAX_AGE")
    args = build_parser().parse_args(SERVE)
    assert args.feedback_max_age == 86_400.0  # a day when the Model does not say


def test_a_feedback_max_age_under_a_minute_is_refused() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 60"):
        model({"feedback": {"maxAgeSeconds": 5}})
