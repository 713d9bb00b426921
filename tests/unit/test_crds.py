"""crds/ is generated from ciclo.api: a test fails when they drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ciclo.api import crd

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_crd_matches_the_types(kind: crd.Kind) -> None:
    committed = (ROOT / "crds" / f"{kind.name}.yaml").read_text()
    assert committed == crd.render(kind), "crds/ is stale: run `make crds` and commit the result"


def test_no_generated_file_is_left_over() -> None:
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(
        f"{k.name}.yaml" for k in crd.KINDS
    )


def test_schemas_are_structural() -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs", "title"} & node.keys(), node
            if "properties" in node:
                assert node.get("type") == "object", node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for kind in crd.KINDS:
        walk(crd.crd(kind)["spec"]["versions"][0]["schema"])


def test_printer_columns_show_what_kubectl_get_promises() -> None:
    columns = {k.kind: [c["name"] for c in k.columns if not c.get("priority")] for k in crd.KINDS}
    assert columns["Model"] == ["Serving", "Desired", "Ready", "Age"]
    assert columns["ModelVersion"] == [
        "Model",
        "Version",
        "Phase",
        "Format",
        "Validated",
        "Review",
        "Tags",
        "Age",
    ]
    assert columns["Review"] == ["Model", "Version", "Decision", "User", "Age"]


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Every property under node (through items and map values) without a description."""
    out = []
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}"
        if not str(child.get("description", "")).strip():
            out.append(here)
        out += undescribed(child, here)
    if isinstance(node.get("items"), dict):
        out += undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += undescribed(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description(kind: crd.Kind) -> None:
    schema = crd.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # The API server allows nothing but the type on the root metadata (ObjectMeta's own
    # description is what kubectl explain shows there).
    root = kind.kind.lower()
    assert undescribed(schema, root) == [f"{root}.metadata"], (
        "give these fields a docstring in ciclo.api (kubectl explain shows it)"
    )


def test_the_description_check_finds_a_field_without_one() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "description": "described"},
            "b": {
                "type": "array",
                "description": "a list",
                "items": {"type": "object", "properties": {"c": {"type": "string"}}},
            },
            "d": {"type": "object", "description": " "},
        },
    }
    assert undescribed(schema, "x") == ["x.b[].c", "x.d"]


def test_kubectl_explain_model_spec_serving_reads_well() -> None:
    (model,) = [k for k in crd.KINDS if k.kind == "Model"]
    root = crd.crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    serving = root["properties"]["spec"]["properties"]["serving"]
    assert serving["description"] == "How the serving pods run."
    fields = serving["properties"]
    assert fields["keepPrevious"]["description"].startswith("Earlier good versions kept warm")
    assert fields["tolerations"]["items"]["properties"]["effect"]["description"]
    assert "\n" not in fields["port"]["description"]
