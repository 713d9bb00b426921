"""`make demo`, run as a newcomer would, twice; each step's outcome read from the cluster."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster import launcher, volumes
from localcluster.paths import Paths

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NS = "ciclo-demo"
G, V = "ciclo.dev", "v1alpha1"


def run_demo(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CICLO_DEMO_LOCK_HELD="1")  # this session holds the cluster's lock
    return subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )


def get(custom: Any, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom.get_namespaced_custom_object(G, V, NS, plural, name)
    return obj


@pytest.fixture
def demo_cleanup(paths: Paths, kubeconfig: Path, core: Any) -> Any:
    """The demo leaves ciclo installed for exploring; the rest of the suite needs it gone."""
    yield
    launcher.kubectl(paths, kubeconfig, "delete", "namespace", NS, "--wait", "--timeout=120s",
                     check=False, timeout=150)  # fmt: skip
    launcher.kubectl(paths, kubeconfig, "delete", "pv", volumes.volume_name(NS),
                     "--ignore-not-found", "--wait", check=False, timeout=60)  # fmt: skip
    helm = [str(paths.binary("helm")), "--kubeconfig", str(kubeconfig)]
    subprocess.run([*helm, "uninstall", "ciclo", "-n", "ciclo-system", "--wait"], check=False)


@pytest.mark.timeout(1800)
def test_make_demo_tells_the_whole_story_twice(
    kubeconfig: Path, custom: Any, core: Any, without_session_operator: Any, demo_cleanup: Any
) -> None:
    for attempt in (1, 2):  # the second run must work as the first (idempotent set-up)
        start = time.monotonic()
        done = run_demo(kubeconfig)
        took = time.monotonic() - start
        assert done.returncode == 0, f"run {attempt}:\n{done.stdout}\n{done.stderr}"
        print(f"make demo, run {attempt}: {took:.0f} s")

        model = get(custom, "models", "iris")
        assert model["spec"]["retired"] is True
        ready = {c["type"]: c for c in model["status"]["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "Retired")

        v1, v2 = get(custom, "modelversions", "iris-v1"), get(custom, "modelversions", "iris-v2")
        assert v1["spec"]["baseline"]["sha256"] and v2["spec"]["baseline"]["sha256"]
        rolled = v2["status"]["rolledBack"]
        assert "accuracy" in rolled["message"] and "0.85" in rolled["message"], rolled

        policy = get(custom, "monitorpolicies", "iris")
        actions = policy["status"]["actions"]
        rollbacks = [a for a in actions if a["action"] == "rollback"]
        alerts = [a for a in actions if a["action"] == "alert" and a["rule"] == "input-drift"]
        # v2 rolled back while it served; v5's canary aborted at its first step.
        assert [(a["rule"], a["version"]) for a in rollbacks] == [
            ("accuracy", "v2"),
            ("accuracy", "v5"),
        ]
        canary = model["status"]["canary"]
        assert (canary["version"], canary["phase"]) == ("v6", "Promoted"), canary
        assert get(custom, "modelversions", "iris-v5")["status"]["rolledBack"]
        assert rollbacks[0]["value"] < 0.85
        assert alerts and alerts[0]["value"] > 0.2
        assert alerts[0]["version"] == "v1", "the drift alert came while v1 served, after rollback"

        # retrained on the drift, with its lineage
        trained = [
            v
            for v in custom.list_namespaced_custom_object(G, V, NS, "modelversions")["items"]
            if (v["spec"].get("source") or {}).get("trigger", "").startswith("input-drift-retrain/")
        ]
        assert trained, "no version was retrained"
        source = trained[0]["spec"]["source"]
        names = {
            v["spec"]["version"]
            for v in custom.list_namespaced_custom_object(G, V, NS, "modelversions")["items"]
        }
        assert source["parentVersion"] in names - {trained[0]["spec"]["version"]}
        assert trained[0]["spec"]["artifact"]["sha256"] and trained[0]["spec"]["baseline"]["sha256"]
        assert trained[0]["status"]["servedAt"]
        retrains = [a for a in actions if a["action"] == "retrain"]
        assert retrains[0]["id"] == source["trigger"], retrains

        events = core.list_namespaced_event(NS).items
        assert any(e.reason == "RolledBack" for e in events), [e.reason for e in events]
        # The way in: v3 stopped at its gate, v4 approved by the demo's (authenticated) user.
        v3, v4 = get(custom, "modelversions", "iris-v3"), get(custom, "modelversions", "iris-v4")
        assert v3["status"]["phase"] == "Failed"
        assert v3["status"]["evaluation"]["champion"] == "v1"
        assert [r["decision"] for r in v4["status"]["reviews"]] == ["Approve"]
        assert v4["status"]["servedAt"]
        steps = ("v1 serves", "rolled back to v1", "drift alert", "stopped at its gate",
                 "approved and serving", "aborted at step 1", "v6 promoted", "retrained",
                 "retired", "Summary")  # fmt: skip
        for step in steps:
            assert step in done.stdout, f"{step!r} missing from the demo's timeline"
