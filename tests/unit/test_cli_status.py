"""`ciclo status`'s table, pure: a Model's row carries its MonitorPolicy rules' live values."""

from __future__ import annotations

from typing import Any

from ciclo.cli.status import status_documents, status_rows


def model(ns: str, name: str, desired: str, serving: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {"version": desired},
        "status": {
            "servingVersion": serving,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_health_shows_each_rules_value_and_state_for_its_model() -> None:
    policy = {
        "metadata": {"namespace": "a", "name": "p"},
        "spec": {"modelRef": {"name": "iris"}},
        "status": {
            "rules": [
                {"name": "accuracy", "state": "Ok", "value": 0.97123},
                {"name": "input-drift", "state": "NoData"},
            ]
        },
    }
    rows = status_rows([model("a", "iris", "v2", "v1"), model("b", "iris", "v1", "v1")], [policy])
    assert rows[0][5] == "HEALTH"
    assert rows[1][:6] == [
        "a",
        "iris",
        "v2",
        "v1",
        "True",
        "accuracy=0.971 Ok, input-drift=- NoData",
    ]
    assert rows[2][5] == "-", "a policy in another namespace says nothing of this model"


def test_a_running_canary_shows_its_candidate_weight_and_step() -> None:
    m = model("a", "iris", "v2", "v1")
    m["status"]["canary"] = {
        "version": "v2",
        "champion": "v1",
        "phase": "Progressing",
        "step": 1,
        "weight": 50,
    }
    rows = status_rows([m])
    assert rows[1][3] == "v1 + canary v2 50% (step 2)"
    [doc] = status_documents([m], [])["models"]
    assert doc["canary"]["weights"] == {"v2": 50, "v1": 50} and doc["canary"]["step"] == 2
    m["status"]["canary"]["phase"] = "Aborted"
    assert status_rows([m])[1][3] == "v1"


def test_a_running_shadow_shows_its_candidate_takes_no_answers() -> None:
    m = model("a", "iris", "v2", "v1")
    m["status"]["canary"] = {
        "version": "v2",
        "champion": "v1",
        "strategy": "shadow",
        "phase": "Progressing",
        "step": 0,
        "weight": 0,
    }
    assert status_rows([m])[1][3] == "v1 + shadow v2 0% (mirrored)"
    [doc] = status_documents([m], [])["models"]
    assert doc["canary"]["strategy"] == "shadow" and doc["canary"]["weights"]["v1"] == 100
