"""Argo CD health checks (argocd/resource_customizations/ciclo.dev/<Kind>/health.lua), run as
Argo CD runs them: each health_test.yaml case's object as the global `obj`, the script's
returned table checked for status and message. The interpreter is Lua 5.1 (Debian's lua5.1,
installed by `make lua`), the language version of gopher-lua that Argo CD embeds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "argocd" / "resource_customizations" / "ciclo.dev"
KINDS = ("Model", "ModelVersion", "MonitorPolicy")
STATES = {"Healthy", "Progressing", "Degraded", "Suspended"}


def lua(value: Any) -> str:
    """A Lua literal for a JSON value, as Argo CD hands the object over (nulls are absent)."""
    if isinstance(value, dict):
        fields = (f"[{lua(str(k))}] = {lua(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(fields) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def run_check(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    interpreter = shutil.which("lua5.1")
    assert interpreter, "lua5.1 is missing: run `make lua`"
    program = "\n".join(
        [
            f"obj = {lua(obj)}",
            f"local hs = dofile({json.dumps(str(CHECKS / kind / 'health.lua'))})",
            'io.write(hs.status, "\\n", hs.message or "")',
        ]
    )
    out = subprocess.run(
        [interpreter, "-"], input=program, capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0, out.stderr
    status, _, message = out.stdout.partition("\n")
    return status, message


def cases() -> list[Any]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((CHECKS / kind / "health_test.yaml").read_text())
        for case in spec["tests"]:
            out.append(pytest.param(kind, case, id=f"{kind}-{Path(case['inputPath']).stem}"))
    return out


@pytest.mark.parametrize(("kind", "case"), cases())
def test_health(kind: str, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECKS / kind / case["inputPath"]).read_text())
    assert obj["kind"] == kind
    assert run_check(kind, obj) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_state_is_covered(kind: str) -> None:
    spec = yaml.safe_load((CHECKS / kind / "health_test.yaml").read_text())
    assert {c["healthStatus"]["status"] for c in spec["tests"]} == STATES
    used = {Path(c["inputPath"]).name for c in spec["tests"]}
    assert used == {p.name for p in (CHECKS / kind / "testdata").iterdir()}


def test_rollback_is_degraded_while_spec_is_unchanged() -> None:
    """Synced + Degraded: the Model's spec is what Git holds; only status says v1 serves."""
    obj = yaml.safe_load((CHECKS / "Model" / "testdata" / "degraded_rolledback.yaml").read_text())
    assert obj["spec"]["version"] == "v2" and obj["status"]["servingVersion"] == "v1"
    assert run_check("Model", obj)[0] == "Degraded"
    # A fix in Git (a new spec.version) is Progressing until the operator observes it.
    obj["metadata"]["generation"] = 3
    obj["spec"]["version"] = "v3"
    assert run_check("Model", obj)[0] == "Progressing"


def test_statuses_match_the_api_types() -> None:
    """The test data is valid against ciclo.api: the checks read fields the operator writes."""
    from ciclo.api.model import Model
    from ciclo.api.modelversion import ModelVersion
    from ciclo.api.monitorpolicy import MonitorPolicy

    types = {"Model": Model, "ModelVersion": ModelVersion, "MonitorPolicy": MonitorPolicy}
    for kind, model in types.items():
        for path in (CHECKS / kind / "testdata").iterdir():
            model.model_validate(yaml.safe_load(path.read_text()))
