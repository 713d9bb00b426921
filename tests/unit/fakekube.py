"""An in-memory stand-in for ciclo.kube.client.Kube, for unit tests of controller logic.

It keeps objects by (plural, namespace, name) and does what the controllers rely on:
server-side apply merges the applied fields into the object (conditions by type, like
the CRDs' map lists) and refuses nulls, list filters by `spec.model=` and by label
equality, create fails with Conflict on a name taken. `fail` makes the next calls
matching a verb and plural raise, to stop a controller between two writes. The real
API server's behaviour (field ownership, validation, watches) is what the integration
tests are for.
"""

from __future__ import annotations

import copy
from typing import Any

from ciclo.kube.client import ApiError, Conflict, Json, Ref


class Crash(Exception):
    """What `fail` raises: the operator stopped here."""


def _merge(into: Json, patch: Json) -> None:
    for key, value in patch.items():
        if key == "conditions" and isinstance(value, list):
            by_type = {c["type"]: c for c in into.get(key, [])}
            by_type.update({c["type"]: copy.deepcopy(c) for c in value})
            into[key] = list(by_type.values())
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{path}[{i}]")]
    return []


class FakeKube:
    def __init__(self, *objects: tuple[Ref, Json]) -> None:
        self.client = None  # what CachedKube passes on to Kube
        self.revision = 0
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.failures: list[tuple[str, str, BaseException]] = []
        for ref, obj in objects:
            self.put(ref, obj)

    def put(self, ref: Ref, obj: Json) -> None:
        meta = obj["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        key = (ref.plural, meta.get("namespace", ""), meta["name"])
        self.objects[key] = copy.deepcopy(obj)
        self._stamp(key)

    def _stamp(self, key: tuple[str, str, str]) -> None:
        """A newer resourceVersion for every write, as etcd's revision."""
        self.revision += 1
        self.objects[key]["metadata"]["resourceVersion"] = str(self.revision)

    def fail(self, verb: str, plural: str, error: BaseException | None = None) -> None:
        """The next `verb` on `plural` raises (Crash unless told)."""
        self.failures.append((verb, plural, error or Crash(f"{verb} {plural}")))

    def _call(self, verb: str, ref: Ref, name: str) -> None:
        self.calls.append((verb, ref.plural, name))
        for i, (v, plural, error) in enumerate(self.failures):
            if (v, plural) == (verb, ref.plural):
                del self.failures[i]
                raise error

    def count(self, verb: str, plural: str) -> int:
        return sum(1 for v, p, _ in self.calls if (v, p) == (verb, plural))

    def obj(self, ref: Ref, namespace: str, name: str) -> Json:
        return self.objects[(ref.plural, namespace, name)]

    def get(self, ref: Ref, namespace: str, name: str) -> Json | None:
        self._call("get", ref, name)
        found = self.objects.get((ref.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def get_fresh(self, ref: Ref, namespace: str, name: str) -> Json | None:
        return self.get(ref, namespace, name)

    def list(
        self,
        ref: Ref,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[Json]:
        self._call("list", ref, "")
        terms = labels.split(",") if labels else []
        wanted = dict(kv.split("=", 1) for kv in terms if "=" in kv)
        present = [t for t in terms if "=" not in t]  # `key`: the label exists
        model = fields.removeprefix("spec.model=") if fields else None
        out = []
        for (plural, ns, _), obj in self.objects.items():
            if plural != ref.plural or (namespace is not None and ns != namespace):
                continue
            have = obj["metadata"].get("labels", {})
            if any(have.get(k) != v for k, v in wanted.items()) or any(
                k not in have for k in present
            ):
                continue
            if model is not None and obj.get("spec", {}).get("model") != model:
                continue
            out.append(copy.deepcopy(obj))
        return out

    def apply(self, ref: Ref, body: Json, *, manager: str = "ciclo", status: bool = False) -> Json:
        meta = body["metadata"]
        self._call("apply-status" if status else "apply", ref, meta["name"])
        if nulls := _nulls(body):
            # A structural schema refuses null for a typed field, as the API server does.
            raise ApiError(422, "Invalid", f"null at {', '.join(nulls)}")
        key = (ref.plural, meta.get("namespace", ""), meta["name"])
        if key not in self.objects:
            if status:
                raise ApiError(404, "NotFound", f"{ref.plural} {meta['name']} not found")
            self.put(ref, body)
            return copy.deepcopy(self.objects[key])
        _merge(
            self.objects[key], {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        )
        return copy.deepcopy(self.objects[key])

    def create(self, ref: Ref, namespace: str, body: Json) -> Json:
        self._call("create", ref, body["metadata"]["name"])
        key = (ref.plural, namespace, body["metadata"]["name"])
        if key in self.objects:
            raise Conflict(409, "AlreadyExists", "exists")
        self.put(ref, body)
        return copy.deepcopy(self.objects[key])

    def delete(self, ref: Ref, namespace: str, name: str) -> bool:
        self._call("delete", ref, name)
        return self.objects.pop((ref.plural, namespace, name), None) is not None

    def serves(self, ref: Ref, max_age: float = 60.0) -> bool:
        return False

    def forget_discovery(self, ref: Ref) -> None:
        pass

    def events(self, reason: str) -> list[Json]:
        return [
            o for (p, _, _), o in self.objects.items() if p == "events" and o["reason"] == reason
        ]


def any_kube(fake: FakeKube) -> Any:
    """The fake where a Kube is expected (the controllers are typed against the real one)."""
    return fake
