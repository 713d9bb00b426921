"""A MonitorPolicy's retirement is status, so GitOps re-applies of the spec leave it alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from test_operator import World, model_manifest, version_manifest
from waiting import wait_for

from ciclo.api.model import Model
from ciclo.kube.client import MODELS, Kube
from ciclo.kube.events import CONTROLLER
from ciclo.records import retirement

pytestmark = pytest.mark.integration


@pytest.fixture
def world(custom: Any, core: Any, apps: Any, namespace: str, operator: Any) -> World:
    return World(custom, core, apps, namespace)


def test_a_policy_retirement_survives_100_gitops_applies_and_ends_with_a_new_version(
    world: World, api: Any
) -> None:
    kube = Kube(api)
    world.create(version_manifest("v1"))
    world.create(version_manifest("v2"))
    world.create(model_manifest("v1"))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True", timeout=60)

    # What a MonitorPolicy's retire action does (controllers/policy_actions.py `act`).
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    model = Model.model_validate(world.model())
    assert retirement.request(kube, model, "MonitorPolicy iris", "traffic 0 < 0.1", "t/v1/x", now)
    again = Model.model_validate(world.model())
    assert not retirement.request(kube, again, "MonitorPolicy iris", "again", "t/v1/y", now)
    wait_for("no Service", lambda: world.selector_version() is None)
    wait_for("Ready=False Retired", lambda: world.condition("Ready").get("reason") == "Retired")
    wait_for("v1 at zero", lambda: world.deployments() == {"iris-v1": 0})
    model = world.model()
    assert model["spec"]["retired"] is False, "the spec stays the user's"
    assert model["status"]["retirement"]["action"] == "t/v1/x"
    assert "MonitorPolicy iris" in world.condition("Ready")["message"]
    retired = world.events("Retired")
    assert len(retired) == 1 and retired[0].type == "Warning"

    def ciclo_events() -> list[tuple[str, str]]:
        items = world.core.list_namespaced_event(world.ns).items
        return [(e.reason, e.message) for e in items if e.reporting_component == CONTROLLER]

    events_before = ciclo_events()

    # Argo CD self-heal: the unchanged spec, server-side applied under its own manager.
    manifest = {**model_manifest("v1"), "metadata": {"name": "iris", "namespace": world.ns}}
    for _ in range(100):
        kube.apply(MODELS, manifest, manager="argocd-controller")
    assert world.model()["metadata"]["generation"] == model["metadata"]["generation"]
    # Make the operator reconcile this Model once more, and wait until it has: a
    # Deployment scaled by hand comes back to what the plan says.
    world.apps.patch_namespaced_deployment("iris-v1", world.ns, {"spec": {"replicas": 1}})
    wait_for("the operator to scale v1 back", lambda: world.deployments() == {"iris-v1": 0})
    assert world.selector_version() is None
    assert world.model()["status"]["retirement"]["version"] == "v1"
    assert ciclo_events() == events_before

    # Git names another version: the retirement ends and v2 serves once ready.
    world.set_spec(version="v2")
    wait_for("v2 serving", lambda: world.model()["status"].get("servingVersion") == "v2")
    assert "retirement" not in world.model()["status"]
