"""crds/ is generated from ciclo.api: a test fails when they drift apart."""

from __future__ import annotations

from pathlib import Path

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
    assert columns["ModelVersion"] == ["Model", "Version", "Phase", "Format", "Age"]
