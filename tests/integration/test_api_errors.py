"""The operator's API client against the real API server: the errors it tells apart."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from waiting import wait_for

from ciclo.kube import events
from ciclo.kube.client import SECRETS, Conflict, Kube, NamespaceTerminating

pytestmark = pytest.mark.integration

HOLD = "ciclo.dev/test-hold"


def secret(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, **meta}}


@pytest.fixture
def terminating(core: Any, api: Any) -> Any:
    """A namespace being deleted, held there by a Secret's finalizer until the test ends."""
    ns = f"t-terminating-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": ns}})
    held = Kube(api).create(SECRETS, ns, secret("held", finalizers=[HOLD]))
    core.delete_namespace(ns)
    yield ns, held
    core.patch_namespaced_secret("held", ns, {"metadata": {"finalizers": None}})


def test_a_create_in_a_namespace_being_deleted_is_told_apart(api: Any, terminating: Any) -> None:
    kube = Kube(api)
    ns, held = terminating

    def refused() -> bool:
        try:
            kube.create(SECRETS, ns, secret(f"s-{uuid.uuid4().hex[:5]}"))
        except NamespaceTerminating:
            return True
        return False  # admission's namespace cache has not seen the deletion yet

    wait_for("creates to be refused as NamespaceTerminating", refused, timeout=30)
    # An Event there has nowhere to go: it is dropped, not raised into a reconcile.
    assert events.emit(kube, held, "Tested", "note", "key") is False


def test_a_duplicate_create_is_a_conflict(api: Any, namespace: str) -> None:
    kube = Kube(api)
    kube.create(SECRETS, namespace, secret("once"))
    with pytest.raises(Conflict):
        kube.create(SECRETS, namespace, secret("once"))
