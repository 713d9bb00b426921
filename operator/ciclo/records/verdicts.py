"""The verdicts the monitoring loop reaches on a Model's rollout, recorded in its status:
an A/B test's (`status.abtest`) and a shadow's (`status.shadow`). The loop reads the
labels; the Model controller promotes, concludes or aborts at its next plan. Each is
written under a field manager of its own."""

from __future__ import annotations

from typing import Literal

from ciclo.api.meta import Schema
from ciclo.api.model import Model
from ciclo.kube.client import MODELS, Kube

MANAGERS = {"abtest": "ciclo-abtest", "shadow": "ciclo-shadow"}


def record(kube: Kube, model: Model, field: Literal["abtest", "shadow"], result: Schema) -> None:
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {field: result.model_dump(by_alias=True, mode="json", exclude_none=True)},
        },
        manager=MANAGERS[field],
        status=True,
    )
