"""The objects the operator watches, kept in memory, so that a reconcile or an evaluation
reads them without asking the API server (an informer's cache, in client-go's terms).

`CachedKube` is a `Kube` whose `get` and `list` of the watched kinds answer from memory:
Models, ModelVersions, MonitorPolicies, and the Deployments, Services and pods ciclo
manages. The
memory of a namespace starts with one LIST of it, the first time it is asked for, and is
kept current by every watch event kopf delivers (`observe`, called by the handlers before
they queue anything) and by the API server's answer to each of the operator's own writes.
The newest resourceVersion wins, so a late event never undoes a newer write. Anything
else (other kinds, other selectors, cluster-wide lists) goes to the API server as before,
and a cluster-wide list of a watched kind (the resync's) refreshes the memory too.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ciclo.kube.client import (
    DEPLOYMENTS,
    FIELD_MANAGER,
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    PODS,
    SERVICES,
    Json,
    Kube,
    Ref,
)
from ciclo.planning.manifests import MODEL_LABEL

MANAGED = "app.kubernetes.io/managed-by=ciclo"
# Deletions remembered, so that a late echo of an object does not bring it back; bounded,
# since pods come and go for as long as the operator runs.
TOMBSTONES = 10_000
# The watched kinds, with the selector their watch (and so their memory) is limited to.
WATCHED: dict[Ref, str | None] = {
    MODELS: None,
    MODEL_VERSIONS: None,
    MONITOR_POLICIES: None,
    DEPLOYMENTS: MANAGED,
    SERVICES: MANAGED,
    PODS: MANAGED,
}
# Selected kinds whose get by name answers from memory too: a Model's Service is named
# after it and labelled as ciclo's, and one without the label is not ciclo's. (A get of
# another selected kind may name an object outside the selection: it asks the server.)
BY_NAME = frozenset({SERVICES})
# What a reconcile selects one Model's objects by, per kind: a Model's versions by
# `spec.model`, its Deployments and pods by label. Each kind's memory is indexed by it,
# so a reconcile looks at its own Model's objects, not the namespace's thousands.
MODEL_OF: dict[Ref, Callable[[Json], str | None]] = {
    MODEL_VERSIONS: lambda o: (o.get("spec") or {}).get("model"),
    DEPLOYMENTS: lambda o: (o["metadata"].get("labels") or {}).get(MODEL_LABEL),
    PODS: lambda o: (o["metadata"].get("labels") or {}).get(MODEL_LABEL),
}


def _equalities(selector: str | None) -> dict[str, str] | None:
    """`a=b,c=d` as a dict; None for anything else (set-based selectors go to the server)."""
    if not selector:
        return {}
    out = {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or not key or "!" in key or value.startswith("="):
            return None
        out[key.strip()] = value.strip()
    return out


def _version(obj: Json) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


class Store:
    """One kind's objects by namespace and name, and by Model where `model_of` says."""

    def __init__(self, model_of: Callable[[Json], str | None] | None = None) -> None:
        self.objects: dict[str, dict[str, Json]] = {}
        self.gone: dict[tuple[str, str], int] = {}  # deleted, and at which resourceVersion
        self.model_of = model_of
        self.by_model: dict[tuple[str, str], set[str]] = {}

    def put(self, obj: Json) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        held = self.objects.get(ns, {}).get(name)
        if held is not None and _version(held) > _version(obj):
            return
        if self.gone.get((ns, name), -1) >= _version(obj):
            return  # an echo from before its deletion
        self._unindex(ns, name, held)
        self.objects.setdefault(ns, {})[name] = obj
        if self.model_of is not None and (model := self.model_of(obj)) is not None:
            self.by_model.setdefault((ns, model), set()).add(name)

    def drop(self, namespace: str, name: str, version: int) -> None:
        self._unindex(namespace, name, self.objects.get(namespace, {}).pop(name, None))
        self.gone[(namespace, name)] = version
        if len(self.gone) > TOMBSTONES:
            del self.gone[next(iter(self.gone))]  # the oldest: its late echoes are long past

    def _unindex(self, namespace: str, name: str, held: Json | None) -> None:
        if held is None or self.model_of is None or (model := self.model_of(held)) is None:
            return
        names = self.by_model.get((namespace, model))
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_model[(namespace, model)]

    def held(self, namespace: str, model: str | None) -> builtins.list[Json]:
        """The namespace's objects; only the Model's when given and this kind is indexed."""
        in_ns = self.objects.get(namespace, {})
        if model is None or self.model_of is None:
            return builtins.list(in_ns.values())
        return [in_ns[n] for n in self.by_model.get((namespace, model), ()) if n in in_ns]


class CachedKube(Kube):
    """A Kube in front of another (the real one; an in-memory one in unit tests)."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube.client)
        self.inner = kube
        self._lock = threading.Lock()
        self._stores: dict[str, Store] = {ref.plural: Store(MODEL_OF.get(ref)) for ref in WATCHED}
        self._listed: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ fed by the watches

    def observe(self, ref: Ref, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A watch event's object (kopf's body), or an object the API server answered with."""
        obj: Json = copy.deepcopy(dict(body))
        meta = obj.get("metadata") or {}
        if ref not in WATCHED or "name" not in meta:
            return
        with self._lock:
            store = self._stores[ref.plural]
            if deleted:
                store.drop(meta.get("namespace", ""), meta["name"], _version(obj))
            else:
                store.put(obj)

    def _namespace(self, ref: Ref, namespace: str) -> Store:
        """The kind's memory, with `namespace` listed once first."""
        key = (ref.plural, namespace)
        with self._lock:
            if key in self._listed:
                return self._stores[ref.plural]
        listed = self.inner.list(ref, namespace, labels=WATCHED[ref])
        with self._lock:
            store = self._stores[ref.plural]
            if key not in self._listed:
                for obj in listed:
                    store.put(obj)
                self._listed.add(key)
            return store

    # ------------------------------------------------------------ reads from memory

    def get(self, ref: Ref, namespace: str, name: str) -> Json | None:
        if ref not in WATCHED or (WATCHED[ref] is not None and ref not in BY_NAME):
            return self.inner.get(ref, namespace, name)
        store = self._namespace(ref, namespace)
        with self._lock:
            found = store.objects.get(namespace, {}).get(name)
            return copy.deepcopy(found) if found is not None else None

    def get_fresh(self, ref: Ref, namespace: str, name: str) -> Json | None:
        found = self.inner.get_fresh(ref, namespace, name)
        if found is not None:
            self.observe(ref, found)
        return found

    def list(
        self,
        ref: Ref,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[Json]:
        wanted = _equalities(labels)
        scope = _equalities(WATCHED.get(ref)) or {}
        by_model = fields is not None and ref == MODEL_VERSIONS and fields.startswith("spec.model=")
        model = fields.removeprefix("spec.model=") if by_model and fields else None
        if (
            ref not in WATCHED
            or namespace is None
            or wanted is None
            or any(wanted.get(k) != v for k, v in scope.items())
            or (fields is not None and not by_model)
        ):
            found = self.inner.list(ref, namespace, labels=labels, fields=fields)
            if ref in WATCHED and wanted == scope and fields is None:
                for obj in found:  # a fresh list (the resync's) refreshes the memory too
                    self.observe(ref, obj)
            return found
        store = self._namespace(ref, namespace)

        def match(obj: Json) -> bool:
            have = obj["metadata"].get("labels") or {}
            return all(have.get(k) == v for k, v in wanted.items())

        # A version's `spec.model` is its index: held() hands out only that Model's.
        one = model if ref == MODEL_VERSIONS else wanted.get(MODEL_LABEL)
        with self._lock:
            return [copy.deepcopy(o) for o in store.held(namespace, one) if match(o)]

    # ------------------------------------------------------------ writes, then remembered

    def apply(
        self, ref: Ref, body: Json, *, manager: str = FIELD_MANAGER, status: bool = False
    ) -> Json:
        answer = self.inner.apply(ref, body, manager=manager, status=status)
        self.observe(ref, answer)
        return answer

    def merge(
        self, ref: Ref, namespace: str, name: str, patch: Json, *, status: bool = False
    ) -> Json:
        answer = self.inner.merge(ref, namespace, name, patch, status=status)
        self.observe(ref, answer)
        return answer

    def create(self, ref: Ref, namespace: str, body: Json) -> Json:
        answer = self.inner.create(ref, namespace, body)
        self.observe(ref, answer)
        return answer

    # ------------------------------------------------------------ the rest, as it is

    def delete(self, ref: Ref, namespace: str, name: str) -> bool:
        return self.inner.delete(ref, namespace, name)

    def serves(self, ref: Ref, max_age: float = 60.0) -> bool:
        return self.inner.serves(ref, max_age)

    def forget_discovery(self, ref: Ref) -> None:
        self.inner.forget_discovery(ref)


def register(kube: CachedKube) -> None:
    """The watch that keeps the memory of ciclo's Services: nothing is queued on their
    events (a Model's reconcile applies its Service, and the resync repairs one deleted
    by hand), so a converged Model's reconcile reads nothing from the API server."""

    @kopf.on.event("", "v1", "services", labels={"app.kubernetes.io/managed-by": "ciclo"})
    def service_event(body: kopf.Body, type: str, **_: Any) -> None:
        kube.observe(SERVICES, body, deleted=type == "DELETED")
