"""Kubernetes Events (events.k8s.io/v1), named after the transition they record.

A deterministic name makes an Event idempotent: emitting the same transition
twice (after a restart mid-way, say) meets a 409 and records nothing new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket

from ciclo.kube.client import EVENTS, Conflict, Json, Kube, NamespaceTerminating

CONTROLLER = "ciclo.dev/operator"


def emit(
    kube: Kube, regarding: Json, reason: str, note: str, key: str, kind: str = "Normal"
) -> bool:
    """Record one Event about `regarding` (a resource's JSON); False when it already exists
    or its namespace is being deleted (and the Event with it)."""
    meta = regarding["metadata"]
    digest = hashlib.sha256(f"{meta['uid']}/{key}".encode()).hexdigest()[:12]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name'][:200]}.{digest}", "namespace": meta["namespace"]},
        "eventTime": now,
        "reportingController": CONTROLLER,
        "reportingInstance": socket.gethostname()[:128],
        "action": reason,
        "reason": reason,
        "note": note[:1024],
        "type": kind,
        "regarding": {
            "apiVersion": regarding["apiVersion"],
            "kind": regarding["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
    }
    try:
        kube.create(EVENTS, meta["namespace"], body)
    except (Conflict, NamespaceTerminating):
        return False
    return True
