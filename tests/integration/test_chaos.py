"""The operator killed (SIGKILL) at random moments across promotions, rollbacks, retries of
rolled-back versions, retirements and un-retirements.

Every transition must end where it would have without the kill, with exactly one Event,
soon after the operator is back. Pods run on KWOK's nodes, ready as soon as scheduled,
so the test is about the operator's steps, not the pods'.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from test_operator import World, ciclo, model_manifest, version_manifest
from waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def world(custom: Any, core: Any, apps: Any, namespace: str, operator: Any) -> World:
    return World(custom, core, apps, namespace)


STEPS = 28


@pytest.mark.timeout(900)
def test_killed_at_random_moments_every_transition_converges_once(
    world: World, operator: Any, kubeconfig: Path
) -> None:
    rng = random.Random(20261130)
    versions = ["v1", "v2", "v3"]
    for v in versions:
        world.create(version_manifest(v))
    world.create(model_manifest("v1", replicas=1))
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True", timeout=60)

    def converged(expected: str | None) -> bool:
        model = world.model()
        ready = world.condition("Ready")
        return (
            model.get("status", {}).get("servingVersion") == expected
            and world.selector_version() == expected
            and (ready.get("status") == "True" if expected else ready.get("reason") == "Retired")
            and ready.get("observedGeneration") == model["metadata"]["generation"]
        )

    serving: str | None = "v1"
    spec, before_retiring = "v1", "v1"
    expected = {"Serving": 1, "RolledBack": 0, "Retired": 0}
    took: list[float] = []
    for step in range(STEPS):
        if step % 7 == 5:
            world.set_spec(retired=True)
            before_retiring, after = serving, None
            expected["Retired"] += 1
        elif step % 7 == 6:
            world.set_spec(retired=False)
            after = before_retiring
            expected["Serving"] += 1
        elif step % 3 == 2:
            result = ciclo("rollback", "iris", "-n", world.ns, kubeconfig=kubeconfig)
            if result.returncode != 0:
                assert "no good version" in result.stderr, result.stderr
                continue
            # "model iris: v2 marked bad; v1 will serve"
            after = result.stdout.strip().split("; ")[-1].split()[0]
            expected["RolledBack"] += 1
        else:
            spec = rng.choice([v for v in versions if v != spec])
            world.set_spec(version=spec)
            after = spec
            if after != serving:
                expected["Serving"] += 1
        time.sleep(rng.uniform(0, 1.5))  # somewhere before, during or after the reconcile
        killed = time.monotonic()
        operator.kill()
        operator.start()
        wait_for(f"step {step}: {after} serving", lambda a=after: converged(a), timeout=60)
        took.append(time.monotonic() - killed)
        serving = after

    print(
        f"\n{len(took)} kills: SIGKILL to converged, median {statistics.median(took):.2f} s, "
        f"max {max(took):.2f} s"
    )
    # A last kill after convergence changes nothing and records nothing.
    operator.kill()
    operator.start()
    wait_for("converged after the last restart", lambda: converged(serving), timeout=60)
    events = [
        (e.reason, e.message)
        for e in world.core.list_namespaced_event(world.ns).items
        if e.involved_object.kind == "Model"
    ]
    counts = {reason: sum(1 for r, _ in events if r == reason) for reason in expected}
    assert counts == expected, sorted(events)
