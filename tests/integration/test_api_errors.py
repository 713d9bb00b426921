"""The operator's API client against the real API server: the errors it tells apart."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ciclo.kube import events
from ciclo.kube.client import SECRETS, Conflict, Json, Kube, NamespaceTerminating
from conftest import secret

pytestmark = pytest.mark.integration


def test_a_create_in_a_namespace_being_deleted_is_told_apart(
    api: Any, terminating: tuple[str, Json]
) -> None:
    kube = Kube(api)
    ns, held = terminating
    with pytest.raises(NamespaceTerminating):
        kube.create(SECRETS, ns, secret(f"s-{uuid.uuid4().hex[:5]}"))
    # An Event there has nowhere to go: it is dropped, not raised into a reconcile.
    assert events.emit(kube, held, "Tested", "note", "key") is False


def test_a_duplicate_create_is_a_conflict(api: Any, namespace: str) -> None:
    kube = Kube(api)
    kube.create(SECRETS, namespace, secret("once"))
    with pytest.raises(Conflict):
        kube.create(SECRETS, namespace, secret("once"))
