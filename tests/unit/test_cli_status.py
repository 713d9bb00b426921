"""`ciclo status`'s table, pure: a Model's row carries its MonitorPolicy rules' live values."""

from __future__ import annotations

from typing import Any

from ciclo.cli.status import status_rows


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
