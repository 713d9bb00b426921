"""The demo's canary chapter: a worse v5 whose canary aborts at its first step, then a
better v6 promoted through every step (spec.rollout.strategy: canary, docs/rollout.md).

Without a Gateway the split is a replica ratio behind the Model's Service, so the Model
runs REPLICAS pods meanwhile: at the first step one of them is the candidate's (25%).
The traffic's round robin over the Service's endpoints is what makes that the share of
requests, and its counts per version (each answer's model_version) show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

REPLICAS = 4
STEPS = [
    {"weight": 25, "pause": "60s"},
    {"weight": 50, "pause": "20s"},
    {"weight": 100, "pause": "10s"},
]


def with_canary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Model's manifest with a canary rollout and the pods its steps split."""
    spec = manifest["spec"]
    spec["serving"]["replicas"] = REPLICAS
    spec["rollout"] = {"strategy": "canary", "steps": STEPS}
    return manifest


def train(workdir: Path, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """v5 learnt from shuffled labels (worse than chance allows to hide); v6 a plain
    logistic regression with less regularisation than v1."""
    shuffled = np.random.default_rng(5).permutation(y)
    accuracy = {}
    for v, labels, c in (("v5", shuffled, 1.0), ("v6", y, 10.0)):
        model = LogisticRegression(C=c, max_iter=1000).fit(x, labels)
        accuracy[v] = float(model.score(x, y))
        joblib.dump(model, workdir / f"{v}.joblib")
    return accuracy


def chapter(
    cluster: Any,
    timeline: Any,
    workdir: Path,
    traffic: Any,
    x: np.ndarray,
    y: np.ndarray,
    manifest: Callable[[str], dict[str, Any]],
    apply: Callable[[Any, Any, dict[str, Any], Path], None],
    wait: Callable[..., Any],
    describe: Callable[[Any], str],
) -> None:
    from demo.story import profile

    accuracy = train(workdir, x, y)
    for v in ("v5", "v6"):
        out = cluster.ciclo(
            "register", cluster.uri(workdir / f"{v}.joblib"), "--model", "iris", "--version", v,
            "--format", "sklearn", "--metric", f"accuracy={accuracy[v]:.3f}",
            "--baseline", cluster.uri(profile(workdir, v)), "-n", cluster_namespace(manifest),
        )  # fmt: skip
        timeline.say(out.strip())

    def canary() -> dict[str, Any]:
        return dict(cluster.model().get("status", {}).get("canary") or {})

    step = timeline.step("a worse v5 goes out as a canary: 25%, 50%, 100%")
    t0 = time.monotonic()
    before = dict(traffic.counts.by_version)
    apply(cluster, timeline, with_canary(manifest("v5")), workdir / "model.yaml")
    wait("v5's canary at its first step", lambda: canary().get("version") == "v5", 180,
         lambda: describe(cluster))  # fmt: skip
    timeline.say(f"canary: {canary().get('message')}")
    ended = wait(
        "v5's canary aborted",
        lambda: (c := canary()).get("phase") == "Aborted" and c,
        240,
        lambda: describe(cluster),
    )
    served = {v: n - before.get(v, 0) for v, n in traffic.counts.by_version.items()}
    share = served.get("v5", 0) / max(1, sum(served.values()))
    timeline.say(f"aborted at step {ended['step'] + 1}: {ended['message']}")
    timeline.say(f"requests answered meanwhile: {served} (v5 {share:.0%})")
    for line in cluster.ciclo("status", "-n", cluster_namespace(manifest)).splitlines():
        timeline.say(f"  {line}")
    step.outcome = f"aborted at step {ended['step'] + 1}; v5 answered {share:.0%} of requests"
    step.seconds = time.monotonic() - t0

    step = timeline.step("a better v6 goes out the same way")
    t0 = time.monotonic()
    seen: list[str] = []

    def promoted() -> bool:
        c = canary()
        if c.get("version") == "v6" and c.get("phase") == "Progressing":
            shown = f"step {c['step'] + 1}: {c['weight']}%"
            if shown not in seen:
                seen.append(shown)
                timeline.say(f"canary of v6 at {shown}")
        return c.get("version") == "v6" and c.get("phase") == "Promoted"

    apply(cluster, timeline, with_canary(manifest("v6")), workdir / "model.yaml")
    wait("v6 promoted", promoted, 300, lambda: describe(cluster), every=0.5)
    timeline.say(f"v6 promoted: {canary().get('message')}; it serves")
    step.outcome = f"v6 promoted through {len(seen)} steps ({', '.join(seen)})"
    step.seconds = time.monotonic() - t0


def cluster_namespace(manifest: Callable[[str], dict[str, Any]]) -> str:
    return str(manifest("v1")["metadata"]["namespace"])
