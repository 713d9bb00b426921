"""What a namespace needs for a Model's training Jobs to run examples/training/train.py,
and the training template that runs it: one place for the demo, the e2e tests and the
training benchmark.

The script reaches the pod as a ConfigMap mounted at /scripts (the image holds ciclo, not
the examples); the pod runs as docs/training.md's ServiceAccount, which may read its
Model and create and read ModelVersions, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "training" / "train.py"
MOUNT = "/scripts"
COMMAND = ["python", f"{MOUNT}/train.py"]
RBAC = "rbac.authorization.k8s.io"


def manifests(namespace: str, trainer: str, configmap: str = "train") -> list[dict[str, Any]]:
    """The script's ConfigMap, and the trainer's ServiceAccount, Role and RoleBinding."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": configmap, "namespace": namespace},
            "data": {"train.py": SCRIPT.read_text()},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": trainer, "namespace": namespace},
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": trainer, "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["ciclo.dev"],
                    "resources": ["modelversions"],
                    "verbs": ["create", "get"],
                },
                {"apiGroups": ["ciclo.dev"], "resources": ["models"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": trainer, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": trainer},
            "subjects": [{"kind": "ServiceAccount", "name": trainer, "namespace": namespace}],
        },
    ]


def template(
    trainer: str,
    placement: dict[str, Any],
    command: list[str] | None = None,
    configmap: str = "train",
) -> dict[str, Any]:
    """`spec.training.template`: the script (or `command`) in the operator's image, as the
    trainer, where `placement` puts it (the real node's nodeSelector and toleration)."""
    container = {
        "command": command or COMMAND,
        "volumeMounts": [{"name": "scripts", "mountPath": MOUNT, "readOnly": True}],
    }
    return {
        "containers": [container],
        "volumes": [{"name": "scripts", "configMap": {"name": configmap}}],
        "serviceAccountName": trainer,
        **placement,
    }
