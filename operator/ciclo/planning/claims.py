"""The PersistentVolumeClaims that pvc:// URIs name, as a pod's volumes and a container's
mounts at ciclo.pvc.ROOT/CLAIM, where `ciclo fetch`, `ciclo evaluate` and a training run
find them. URIs of other schemes add nothing, so their pods stay as they were. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ciclo import pvc
from ciclo.planning.names import dns_label

Json = dict[str, Any]


def _claims(uris: Iterable[str]) -> list[str]:
    """Each claim named by a pvc:// URI, once, in order."""
    named = (pvc.split(uri) for uri in uris)
    return list(dict.fromkeys(n[0] for n in named if n and n[0]))


def _name(claim: str) -> str:
    return dns_label("pvc", claim)


def volumes(uris: Iterable[str], *, read_only: bool = True) -> list[Json]:
    """The pod's volumes for the claims `uris` name."""
    access = {"readOnly": True} if read_only else {}
    return [
        {"name": _name(c), "persistentVolumeClaim": {"claimName": c, **access}}
        for c in _claims(uris)
    ]


def mounts(uris: Iterable[str], *, read_only: bool = True) -> list[Json]:
    """A container's mounts of the claims `uris` name (the volumes of `volumes`)."""
    access = {"readOnly": True} if read_only else {}
    return [{"name": _name(c), "mountPath": f"{pvc.ROOT}/{c}", **access} for c in _claims(uris)]


def local_path(uri: str) -> str | None:
    """Where a pvc:// URI is in a container with its claim's mount; None for other URIs."""
    named = pvc.split(uri)
    if not named or not named[0]:
        return None
    claim, path = named
    return f"{pvc.ROOT}/{claim}/{path}"
