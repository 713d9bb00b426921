"""An A/B test's verdict, recorded in the Model's status (`status.abtest`) by the
monitoring loop, which reads the labels; the Model controller promotes the winner or
concludes the test at its next plan. Written under a field manager of its own."""

from __future__ import annotations

from ciclo.api.model import Model
from ciclo.api.rollout import ABTestResult
from ciclo.kube.client import MODELS, Kube

MANAGER = "ciclo-abtest"


def record(kube: Kube, model: Model, result: ABTestResult) -> None:
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {"abtest": result.model_dump(by_alias=True, mode="json", exclude_none=True)},
        },
        manager=MANAGER,
        status=True,
    )
