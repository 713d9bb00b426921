"""pvc://CLAIM/PATH: a file on a PersistentVolumeClaim. The operator mounts the claim at
ROOT/CLAIM in the pods that read or write it (planning.claims) and the runtime reads PATH
there (serving.artifacts). It imports nothing, so both may import it and agree."""

from __future__ import annotations

ROOT = "/mnt/pvc"
"""Where ciclo's pods have claims mounted; $CICLO_PVC_ROOT moves it for the runtime."""


def split(uri: str) -> tuple[str, str] | None:
    """The claim and the path in it (either may be empty) of a pvc:// URI; None for any other."""
    scheme, _, rest = uri.partition("://")
    if scheme != "pvc":
        return None
    claim, _, path = rest.partition("/")
    return claim, path
