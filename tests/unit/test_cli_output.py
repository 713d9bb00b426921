"""`ciclo status -o json|yaml|wide`, the `kubectl ciclo` plugin, and `ciclo fetch`'s meter."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ciclo.cli.progress import MIB, ProgressMeter
from ciclo.cli.status import render_status
from ciclo.serving.artifacts import fetch

MODEL = {
    "metadata": {"namespace": "team-a", "name": "iris"},
    "spec": {"version": "v2"},
    "status": {
        "servingVersion": "v1",
        "readyReplicas": 2,
        "endpoint": "http://iris.team-a.svc:80",
        "rollout": {"version": "v2", "since": "2026-01-01T00:00:00Z"},
        "lastAction": "RolledBack: v2 rolled back",
        "conditions": [{"type": "Ready", "status": "False", "reason": "RolledBack"}],
    },
}
POLICY = {
    "metadata": {"namespace": "team-a", "name": "iris-quality"},
    "spec": {"modelRef": {"name": "iris"}},
    "status": {
        "rules": [
            {"name": "accuracy", "state": "Breaching", "value": 0.61, "threshold": ">= 0.85"},
            {"name": "drift", "state": "NoData"},
        ]
    },
}


def test_json_and_yaml_carry_the_same_document() -> None:
    as_json = json.loads(render_status([MODEL], [POLICY], "json"))
    assert as_json == yaml.safe_load(render_status([MODEL], [POLICY], "yaml"))
    (m,) = as_json["models"]
    assert (m["namespace"], m["model"], m["desired"], m["serving"]) == (
        "team-a",
        "iris",
        "v2",
        "v1",
    )
    assert (m["ready"], m["reason"], m["readyReplicas"], m["rollout"]) == (
        "False",
        "RolledBack",
        2,
        "v2",
    )
    assert m["health"] == [
        {
            "policy": "iris-quality",
            "rule": "accuracy",
            "state": "Breaching",
            "value": 0.61,
            "threshold": ">= 0.85",
            "version": None,
        },
        {
            "policy": "iris-quality",
            "rule": "drift",
            "state": "NoData",
            "value": None,
            "threshold": None,
            "version": None,
        },
    ]
    assert m["lastAction"] == "RolledBack: v2 rolled back"


def test_wide_adds_replicas_rollout_and_endpoint() -> None:
    narrow = render_status([MODEL], [POLICY], None).splitlines()
    wide = render_status([MODEL], [POLICY], "wide").splitlines()
    assert narrow[0].split() == [
        "NAMESPACE",
        "MODEL",
        "DESIRED",
        "SERVING",
        "READY",
        "HEALTH",
        "LAST",
        "ACTION",
    ]
    assert wide[0].split() == (
        [
            "NAMESPACE",
            "MODEL",
            "DESIRED",
            "SERVING",
            "READY",
            "REPLICAS",
            "ROLLOUT",
            "ENDPOINT",
            "HEALTH",
            "LAST",
            "ACTION",
        ]
    )
    assert "http://iris.team-a.svc:80" in wide[1] and "http://" not in narrow[1]
    # columns line up: each header starts where its cells start
    at = wide[0].index("ENDPOINT")
    assert wide[1][at:].startswith("http://iris.team-a.svc:80")


def test_kubectl_finds_the_plugin_on_path_and_it_names_itself() -> None:
    plugin = Path(sys.executable).parent / "kubectl-ciclo"
    assert plugin.is_file() and os.access(plugin, os.X_OK), "pip install -e . creates it"
    out = subprocess.run(
        [str(plugin), "status", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("usage: kubectl ciclo status")
    assert "-o {json,yaml,wide}" in out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_shows_large_artifacts_throttled_and_ends_its_line() -> None:
    out, clock = io.StringIO(), Clock()
    meter = ProgressMeter(out, large=4 * MIB, interval=0.2, clock=clock)
    clock.now = 0.1
    meter(1 * MIB, 8 * MIB)
    clock.now = 0.15
    meter(2 * MIB, 8 * MIB)  # within the interval: not shown
    clock.now = 0.5
    meter(8 * MIB, 8 * MIB)
    meter.finish()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 2
    assert frames[0].startswith("ciclo fetch: 1.0 MiB / 8.0 MiB (12%), 10.0 MiB/s")
    assert frames[1].startswith("ciclo fetch: 8.0 MiB / 8.0 MiB (100%), 16.0 MiB/s")
    assert out.getvalue().endswith("\n")


def test_the_meter_stays_silent_for_small_artifacts() -> None:
    out = io.StringIO()
    meter = ProgressMeter(out, large=4 * MIB)
    meter(1 * MIB, 1 * MIB)
    meter.finish()
    assert out.getvalue() == ""


def test_fetch_reports_progress_per_chunk_with_the_size(tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 5)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    calls: list[tuple[int, int | None]] = []
    digest = fetch(
        src.as_uri(),
        tmp_path / "out" / "model.bin",
        hashlib.sha256(data).hexdigest(),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert digest == hashlib.sha256(data).hexdigest()
    assert calls == [(MIB, len(data)), (2 * MIB, len(data)), (3 * MIB, len(data)), (len(data),) * 2]


def test_fetch_on_a_terminal_draws_the_meter_and_a_pipe_does_not(tmp_path: Path) -> None:
    import pty

    data = os.urandom(9 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cli = [str(Path(sys.executable).parent / "ciclo"), "fetch", src.as_uri()]

    piped = subprocess.run([*cli, str(tmp_path / "a"), "--sha256", sha], capture_output=True)
    assert piped.returncode == 0 and b"MiB" not in piped.stderr

    leader, follower = pty.openpty()
    proc = subprocess.run(
        [*cli, str(tmp_path / "b"), "--sha256", sha], stdout=subprocess.PIPE, stderr=follower
    )
    os.close(follower)
    seen: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        seen.append(chunk)
    os.close(leader)
    assert proc.returncode == 0
    assert b"/ 9.0 MiB (100%)" in b"".join(seen)
    assert proc.stdout.startswith(b"ciclo fetch: file://")


KUBECTL = Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo")) / "bin" / "kubectl"


def test_kubectl_runs_the_plugin_as_kubectl_ciclo() -> None:
    assert KUBECTL.exists(), f"{KUBECTL} is missing: run `make tools`"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    listed = subprocess.run(
        [str(KUBECTL), "plugin", "list"], capture_output=True, text=True, env=env
    )
    assert str(Path(sys.executable).parent / "kubectl-ciclo") in listed.stdout
    out = subprocess.run(
        [str(KUBECTL), "ciclo", "status", "--help"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: kubectl ciclo status")


def test_status_shows_tags_and_reviews_of_versions() -> None:
    tagged = {
        "metadata": {"namespace": "ml", "name": "iris-v4"},
        "spec": {"model": "iris", "version": "v4", "tags": ["candidate", "q3"]},
        "status": {
            "phase": "AwaitingApproval",
            "conditions": [{"type": "Validated", "status": "True", "reason": "GatesPassed"}],
            "reviews": [
                {"decision": "Comment", "user": "bob", "comment": "looks fine", "at": "2026-01-01"}
            ],
        },
    }
    plain = {
        "metadata": {"namespace": "ml", "name": "iris-v1"},
        "spec": {"model": "iris", "version": "v1"},
    }
    out = render_status([MODEL], [POLICY], None, [plain, tagged])
    [row] = [line for line in out.splitlines() if "v4" in line and "AwaitingApproval" in line]
    assert "GatesPassed" in row and "candidate,q3" in row and "Comment by bob: looks fine" in row
    versions_table = out.split("\n\n")[1].splitlines()
    assert len(versions_table) == 2, "the header and v4: v1 is neither tagged nor reviewed"
    documents = json.loads(render_status([MODEL], [POLICY], "json", [plain, tagged]))
    assert documents["versions"][0]["reviews"][0]["user"] == "bob"
    # Nothing tagged or reviewed: the output is what it always was.
    assert render_status([MODEL], [POLICY], None, [plain]) == render_status([MODEL], [POLICY], None)
