"""The chart's admission policy for trainers, on the real API server: a ServiceAccount
named ciclo-train-MODEL may create ModelVersions of MODEL only (docs/training.md)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from tests.e2e.test_training import TRAINER, rbac

import kubernetes
from localcluster import launcher

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "ciclo"


def version(model: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "version": "v9",
            "artifact": {"uri": "file:///m/x.joblib", "format": "sklearn", "sha256": "a" * 64},
        },
    }


def test_a_trainer_registers_versions_of_its_model_only(paths, kubeconfig, api, custom, namespace):
    rendered = subprocess.run(
        [
            str(paths.binary("helm")),
            "template",
            "ciclo",
            str(CHART),
            "--show-only",
            "templates/training-policy.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    launcher.kubectl(paths, kubeconfig, "apply", "--server-side", "-f", "-", stdin=rendered)
    rbac(api, namespace)
    as_trainer = kubernetes.config.new_client_from_config(str(kubeconfig))
    as_trainer.set_default_header(
        "Impersonate-User", f"system:serviceaccount:{namespace}:{TRAINER}"
    )
    trainer = kubernetes.client.CustomObjectsApi(as_trainer)

    def create(body: dict[str, Any]) -> Any:
        return trainer.create_namespaced_custom_object(
            "ciclo.dev", "v1alpha1", namespace, "modelversions", body
        )

    # the policy takes a moment to reach the API server's admission
    deadline = time.monotonic() + 30
    while True:
        try:
            create(version("other", f"other-v{int(time.monotonic() * 1000)}"))
        except ApiException as e:
            denied = e
            break
        assert time.monotonic() < deadline, "the policy never denied the trainer"
        time.sleep(0.5)
    assert denied.status in (403, 422), denied.body
    message = json.loads(denied.body)["message"]
    assert f"{TRAINER} may register versions of model iris" in message, message
    assert "not of other" in message
    create(version("iris", "iris-v9"))  # its own model: allowed
    # and the cluster admin is not concerned
    custom.create_namespaced_custom_object(
        "ciclo.dev", "v1alpha1", namespace, "modelversions", version("other", "other-v9")
    )
