"""Never worse: the Model's Service always has a ready endpoint while some version is healthy.

All real: pods run `ciclo fetch` and `ciclo serve` from the ciclo image on the real node,
kube-controller-manager writes the EndpointSlices, and a sampler reads them every 100 ms
through a good promotion, a version with a wrong digest, a version whose server
crash-loops, a rollback, a retirement and an un-retirement.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from realnode import ON_REAL_NODE, ArtifactServer
from test_operator import World, ciclo, model_manifest, version_manifest
from waiting import wait_for

import kubernetes

pytestmark = pytest.mark.integration


@pytest.fixture
def world(custom: Any, core: Any, apps: Any, namespace: str, operator: Any) -> World:
    return World(custom, core, apps, namespace)


@dataclass
class Sample:
    at: float
    ready: int
    pods: frozenset[str]


@dataclass
class Sampler:
    """The Service's ready endpoints, from its EndpointSlices, every 100 ms. Only the
    slices of the Service that exists count: a deleted one's may outlive it for a moment
    (garbage collection), naming pods it no longer sends anything to."""

    discovery: Any
    core: Any
    namespace: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def service_uid(self) -> str | None:
        try:
            return str(self.core.read_namespaced_service("iris", self.namespace).metadata.uid)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def run(self) -> None:
        while not self.stop.wait(0.1):
            uid = self.service_uid()
            slices = self.discovery.list_namespaced_endpoint_slice(
                self.namespace, label_selector="kubernetes.io/service-name=iris"
            ).items
            pods = frozenset(
                e.target_ref.name
                for s in slices
                if any(o.uid == uid for o in s.metadata.owner_references or [])
                for e in s.endpoints or []
                if e.conditions.ready and e.target_ref is not None
            )
            self.samples.append(Sample(time.monotonic(), len(pods), pods))

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


def live_pods(world: World, version: str) -> set[str]:
    pods = world.core.list_namespaced_pod(
        world.ns, label_selector=f"ciclo.dev/model=iris,ciclo.dev/version={version}"
    ).items
    return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None}


def artifact(
    artifacts: ArtifactServer, tmp_path: Path, name: str, payload: bytes
) -> tuple[str, str]:
    path = tmp_path / name
    path.write_bytes(payload)
    return artifacts.publish(path), hashlib.sha256(payload).hexdigest()


@pytest.mark.timeout(600)
def test_the_service_keeps_a_ready_endpoint_through_every_transition(
    world: World, api: Any, tmp_path: Path, kubeconfig: Path, artifacts: ArtifactServer
) -> None:
    import io

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), buffer)
    good = buffer.getvalue()
    for version, fmt, (uri, digest) in (
        ("v1", "sklearn", artifact(artifacts, tmp_path, "v1.joblib", good)),
        ("v2", "sklearn", artifact(artifacts, tmp_path, "v2.joblib", good)),
        # registered with another file's digest: the fetch step refuses it
        (
            "v3",
            "sklearn",
            (artifact(artifacts, tmp_path, "v3.joblib", b"not the model")[0], "0" * 64),
        ),
        # a sound digest, but not an ONNX file: `ciclo serve` exits, again and again
        ("v4", "onnx", artifact(artifacts, tmp_path, "v4.onnx", good)),
    ):
        manifest = version_manifest(version)
        manifest["spec"]["artifact"].update(uri=uri, sha256=digest, format=fmt)
        world.create(manifest)
    world.create(
        model_manifest("v1", replicas=1, warmReplicas=1, progressDeadlineSeconds=60, **ON_REAL_NODE)
    )
    wait_for("v1 Ready", lambda: world.condition("Ready").get("status") == "True", timeout=120)

    sampler = Sampler(kubernetes.client.DiscoveryV1Api(api), world.core, world.ns)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    wait_for("a first sample", lambda: sampler.samples)
    marks: dict[str, float] = {"start": time.monotonic()}

    def serving() -> str | None:
        return world.model()["status"].get("servingVersion")

    try:
        # A good promotion: v2 takes traffic once its pod is ready, and not before.
        world.set_spec(version="v2")
        wait_for("v2 serving", lambda: serving() == "v2", timeout=120)
        wait_for("v2 Ready", lambda: world.condition("Ready").get("status") == "True")
        marks["v2 serves"] = time.monotonic()

        # A wrong digest: v3 fails, v2 keeps serving, the spec keeps naming v3.
        world.set_spec(version="v3")
        wait_for("v3 Failed", lambda: world.phase("iris-v3") == "Failed", timeout=120)
        degraded = wait_for(
            "Degraded VersionInvalid",
            lambda: (c := world.condition("Degraded")).get("reason") == "VersionInvalid" and c,
        )
        assert "sha256 mismatch" in degraded["message"], degraded
        assert serving() == "v2" and world.model()["spec"]["version"] == "v3"
        marks["v3 failed"] = time.monotonic()

        # A server that crash-loops: v4 fails at its first crash, v2 keeps serving.
        world.set_spec(version="v4")
        wait_for("v4 Failed", lambda: world.phase("iris-v4") == "Failed", timeout=120)
        available = next(
            c for c in world.version("iris-v4")["status"]["conditions"] if c["type"] == "Available"
        )
        assert (available["status"], available["reason"]) == ("False", "CrashLoopBackOff")
        assert "cannot load" in available["message"], available
        wait_for(
            "Degraded VersionFailed",
            lambda: world.condition("Degraded").get("reason") == "VersionFailed",
        )
        assert serving() == "v2"
        marks["v4 failed"] = time.monotonic()

        # A rollback of v2 (spec still naming the failed v4): the warm v1 takes over.
        result = ciclo("rollback", "iris", "-n", world.ns, kubeconfig=kubeconfig)
        assert result.returncode == 0, result.stderr
        wait_for("v1 serving", lambda: serving() == "v1", timeout=60)
        wait_for("v2 RolledBack", lambda: world.phase("iris-v2") == "RolledBack")
        marks["rolled back"] = time.monotonic()

        # Retire (nothing serves, by request), then un-retire: v1 comes back once ready.
        seen = len(sampler.samples)
        wait_for("samples after the rollback", lambda: len(sampler.samples) >= seen + 3)
        marks["retiring"] = time.monotonic()
        world.set_spec(retired=True)
        wait_for("no Service", lambda: world.selector_version() is None)
        world.set_spec(retired=False)
        wait_for("v1 serving again", lambda: serving() == "v1", timeout=120)
        wait_for(
            "a ready endpoint of a live v1 pod again",
            lambda: sampler.samples[-1].pods & live_pods(world, "v1"),
            timeout=30,
        )
        marks["unretired"] = time.monotonic()
        time.sleep(0.5)  # a few more samples after the last transition
        marks["end"] = time.monotonic()
    finally:
        sampler.stop.set()
        thread.join()

    lows = {}
    for (_, start), (name, end) in itertools.pairwise(marks.items()):
        if name == "unretired":
            continue  # from the retirement on: nothing is meant to serve, by request
        window = sampler.between(start, end)
        assert window, f"no samples up to '{name}'"
        lows[name] = min(s.ready for s in window)
    print(f"\nready endpoints, minimum per transition ({len(sampler.samples)} samples): {lows}")
    assert all(n >= 1 for n in lows.values()), lows
    bad = {p for s in sampler.samples for p in s.pods if p.startswith(("iris-v3", "iris-v4"))}
    assert not bad, f"a failed version's pod was a ready endpoint: {bad}"
    # Each transition was told once.
    reasons = [e.reason for e in world.events("Serving")] + [
        e.reason for e in world.events("RolledBack")
    ]
    # v1, v2, the rollback to v1, v1 again after the retirement
    assert sorted(reasons) == ["RolledBack", "Serving", "Serving", "Serving"], reasons
    assert len(world.events("Retired")) == 1
    assert len(world.events("Failed", kind="ModelVersion")) == 2
