"""A directory of this host as a PersistentVolume of the real node, bound to a claim: what
`pvc://CLAIM/PATH` URIs name. Training Jobs write their runs there and serving pods read
them, as they would from a cluster's shared storage; the host (the demo, the tests, `ciclo
register` with CICLO_PVC_ROOT) reads and writes the same files directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localcluster import node

Json = dict[str, Any]
CLAIM = "models"
SIZE = "1Gi"


def volume_name(namespace: str, claim: str = CLAIM) -> str:
    return f"{namespace}-{claim}"[:253]


def manifests(namespace: str, directory: Path, claim: str = CLAIM) -> tuple[Json, Json]:
    """The PersistentVolume (hostPath, on the real node only) and the claim bound to it.
    The directory must exist, writable by the pods' user (the image's 65532)."""
    name = volume_name(namespace, claim)
    on_the_node = {
        "key": "kubernetes.io/hostname",
        "operator": "In",
        "values": [node.NODE],
    }
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "ciclo-local"}},
        "spec": {
            "capacity": {"storage": SIZE},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(directory), "type": "Directory"},
            # Bound to this claim only, at once: no other claim can take it.
            "claimRef": {"namespace": namespace, "name": claim},
            "nodeAffinity": {
                "required": {"nodeSelectorTerms": [{"matchExpressions": [on_the_node]}]}
            },
        },
    }
    bound = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": SIZE}},
        },
    }
    return volume, bound


def prepare(directory: Path) -> Path:
    """The volume's directory, open to the pods' non-root user."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    return directory
