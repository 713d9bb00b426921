"""CustomResourceDefinitions generated from the pydantic types: `python -m ciclo.api.crd DIR`.

pydantic writes JSON Schema with $refs, anyOf-with-null for optionals and
titles; a CRD needs a structural OpenAPI v3 schema. `structural` inlines the
references and keeps what the API server understands, including the
x-kubernetes-* markers the types carry.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ciclo.api import model, modelversion, monitorpolicy, review
from ciclo.api.meta import GROUP, VERSION

Json = dict[str, Any]

# JSON Schema keywords that a structural schema keeps as they are.
KEPT = {
    "type",
    "description",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "format",
    "default",
}


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: list[Json]
    spec_rules: list[Json] = field(default_factory=list)
    selectable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _column(
    name: str, path: str, kind: str = "string", priority: int = 0, description: str = ""
) -> Json:
    col: Json = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


# The descriptions the Kubernetes API gives these three fields of every object.
API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object: "
    f"{GROUP}/{VERSION}."
)
KIND_DOC = "Kind is a string value representing the REST resource this object represents."
# metadata gets none: the API server refuses a CRD whose root metadata schema says more than
# its type, and `kubectl explain` shows ObjectMeta's own description there.

AGE = _column("Age", ".metadata.creationTimestamp", "date")

KINDS = [
    Kind(
        kind="Model",
        plural="models",
        short_names=["mdl"],
        spec=model.ModelSpec,
        status=model.ModelStatus,
        columns=[
            _column("Serving", ".status.servingVersion", description="the version that serves"),
            _column("Desired", ".spec.version", description="spec.version"),
            _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            _column("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1),
            _column("Endpoint", ".status.endpoint", priority=1),
            AGE,
        ],
    ),
    Kind(
        kind="ModelVersion",
        plural="modelversions",
        short_names=["mv"],
        spec=modelversion.ModelVersionSpec,
        status=modelversion.ModelVersionStatus,
        spec_rules=modelversion.SPEC_RULES["x-kubernetes-validations"],
        selectable=[".spec.model"],
        columns=[
            _column("Model", ".spec.model"),
            _column("Version", ".spec.version"),
            _column("Phase", ".status.phase"),
            _column("Format", ".spec.artifact.format"),
            _column(
                "Validated",
                '.status.conditions[?(@.type=="Validated")].reason',
                description="evaluation and digest: GatesPassed, GateFailed, Evaluating, ...",
            ),
            _column("Review", ".status.reviews[0].decision", description="the latest review"),
            _column("Tags", ".spec.tags"),
            _column("Comment", ".status.reviews[0].comment", priority=1),
            _column("Digest", ".spec.artifact.sha256", priority=1),
            AGE,
        ],
    ),
    Kind(
        kind="MonitorPolicy",
        plural="monitorpolicies",
        short_names=["mp"],
        spec=monitorpolicy.MonitorPolicySpec,
        status=monitorpolicy.MonitorPolicyStatus,
        columns=[
            _column("Model", ".spec.modelRef.name"),
            _column("Interval", ".spec.interval"),
            _column("Healthy", '.status.conditions[?(@.type=="Healthy")].status'),
            _column("Reason", '.status.conditions[?(@.type=="Healthy")].reason'),
            AGE,
        ],
    ),
    Kind(
        kind="Review",
        plural="reviews",
        short_names=["rv"],
        spec=review.ReviewSpec,
        status=review.ReviewStatus,
        spec_rules=review.SPEC_RULES["x-kubernetes-validations"],
        selectable=[".spec.model"],
        columns=[
            _column("Model", ".spec.model"),
            _column("Version", ".spec.version"),
            _column("Decision", ".spec.decision"),
            _column("User", ".spec.user"),
            _column("Comment", ".spec.comment", priority=1),
            AGE,
        ],
    ),
]


def structural(node: Json, defs: Json) -> Json:
    """One pydantic JSON Schema node as a structural OpenAPI v3 node."""
    extra = {k: v for k, v in node.items() if k.startswith("x-kubernetes-")}
    if "$ref" in node:
        target = structural(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return _merge(target, node, extra)
    for combinator in ("anyOf", "allOf"):
        if combinator in node:
            options = [o for o in node[combinator] if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(
                    f"{combinator} with {len(options)} branches is not structural: {node}"
                )
            return _merge(structural(options[0], defs), node, extra)
    out: Json = {k: v for k, v in node.items() if k in KEPT}
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("default") is None or isinstance(out.get("default"), dict | list):
        out.pop("default", None)  # null and collection defaults are the types' business
    if "properties" in out:
        out["properties"] = {k: structural(v, defs) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = structural(out["items"], defs)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(out["additionalProperties"], defs)
    elif "additionalProperties" in out:
        out.pop("additionalProperties")  # false: unknown fields are rejected by field validation
    if not out.get("required"):
        out.pop("required", None)
    out.update(extra)
    return out


def _merge(base: Json, node: Json, extra: Json) -> Json:
    """A referenced schema with the referring node's own description, default and markers."""
    out = dict(base)
    for key in ("description", "default"):
        if key in node and node[key] is not None and not isinstance(node[key], dict | list):
            out[key] = node[key]
    rules = [*base.get("x-kubernetes-validations", []), *extra.get("x-kubernetes-validations", [])]
    out.update(extra)
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def openapi(schema_type: type[BaseModel]) -> Json:
    schema = schema_type.model_json_schema(by_alias=True, mode="validation")
    return structural(schema, schema.get("$defs", {}))


def crd(kind: Kind) -> Json:
    spec = openapi(kind.spec)
    if kind.spec_rules:
        spec["x-kubernetes-validations"] = [
            *spec.get("x-kubernetes-validations", []),
            *kind.spec_rules,
        ]
    status = openapi(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name, "labels": {"app.kubernetes.io/part-of": "ciclo"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": ["ciclo"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    **(
                        {"selectableFields": [{"jsonPath": p} for p in kind.selectable]}
                        if kind.selectable
                        else {}
                    ),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (sys.modules[kind.spec.__module__].__doc__ or kind.kind)
                            .strip()
                            .splitlines()[0],
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                                "kind": {"type": "string", "description": KIND_DOC},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated by `make crds` from ciclo.api; do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=100)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / f"{kind.name}.yaml"
        path.write_text(render(kind))
        written.append(path)
    return written


if __name__ == "__main__":
    # crds/ and the chart's copy (Helm installs CRDs from charts/ciclo/crds/)
    for directory in sys.argv[1:] or ["crds"]:
        for path in write(Path(directory)):
            print(path)
