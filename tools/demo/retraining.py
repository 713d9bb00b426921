"""The demo's chapter on retraining (docs/training.md): the drift goes on, the policy asks
for a new version, a training Job (examples/training/train.py, from a ConfigMap, in the
ciclo image on the real node) trains it on fresh data, writes it to the claim the serving
pods read, and registers it with its lineage, and it serves without a person
(spec.training.autoPromote) while spec.version stays as the user wrote it."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcluster import training

if TYPE_CHECKING:
    from demo.story import Cluster, Timeline

TRAINER = "ciclo-train-iris"  # may register versions of iris only (docs/training.md)
SCRIPT_CONFIGMAP = "iris-train"
RULE = "input-drift-retrain"


def trainer_rbac(cluster: Cluster, namespace: str) -> None:
    """docs/training.md's ServiceAccount and Role for the Model's training Jobs, and the
    training script as a ConfigMap they mount."""
    for obj in training.manifests(namespace, TRAINER, SCRIPT_CONFIGMAP):
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def training_spec(runs: str, placement: dict[str, Any]) -> dict[str, Any]:
    """Runs of examples/training/train.py in the operator's image, writing under `runs`."""
    template = training.template(TRAINER, placement, configmap=SCRIPT_CONFIGMAP)
    return {"template": template, "artifactStore": runs, "autoPromote": True}


def retrained(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    """The version a retrain of the drift rule registered, if any."""
    listed: dict[str, Any] = cluster.custom.list_namespaced_custom_object(  # type: ignore[assignment]
        "ciclo.dev", "v1alpha1", namespace, "modelversions"
    )
    found = [
        v
        for v in listed["items"]
        if (v["spec"].get("source") or {}).get("trigger", "").startswith(f"{RULE}/")
    ]
    return found[0] if found else None


def chapter(cluster: Cluster, timeline: Timeline, workdir: Path) -> None:
    """One step of the story, told while the demo's traffic (and its drift) flows."""
    from demo.story import MODEL, NAMESPACE, apply, describe, on_real_node, wait

    step = timeline.step("the drift persists: the policy retrains, the new version serves")
    t0 = time.monotonic()
    trainer_rbac(cluster, NAMESPACE)
    timeline.say(f"ServiceAccount {TRAINER}: may register versions of {MODEL} only")
    model = cluster.model()
    spec = copy.deepcopy(model["spec"])
    spec["training"] = training_spec(cluster.uri(workdir / "runs"), on_real_node())
    if "promotion" in spec:  # retrained versions go in on their gates alone
        spec["promotion"]["requireApproval"] = False
    spec.pop("rollout", None)  # ... and switch in: the canary chapter showed the other way
    manifest = {
        "apiVersion": model["apiVersion"],
        "kind": "Model",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": spec,
    }
    apply(cluster, timeline, manifest, workdir / "model.yaml")
    policy = cluster.policy()
    rules = policy["spec"]["rules"]
    drift = next(r for r in rules if r["name"] == "input-drift")
    rules.append({**drift, "name": RULE, "action": "retrain", "failureThreshold": 2})
    policy_manifest = {
        "apiVersion": policy["apiVersion"],
        "kind": "MonitorPolicy",
        "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": policy["spec"],
    }
    apply(cluster, timeline, policy_manifest, workdir / "policy.yaml")
    version = wait(
        "a version registered by a training Job",
        lambda: retrained(cluster, NAMESPACE),
        300,
        lambda: json.dumps(cluster.model().get("status", {}).get("training", {})),
    )
    registered = time.monotonic() - t0
    name, source = version["spec"]["version"], version["spec"].get("source", {})
    timeline.say(
        f"{name} registered after {registered:.1f} s by job {source.get('runId')}: trigger "
        f"{source.get('trigger')}, parent {source.get('parentVersion')}, accuracy "
        f"{version['spec'].get('metrics', {}).get('accuracy', 0):.3f}"
    )
    wait(f"{name} serving", lambda: cluster.model()["status"].get("servingVersion") == name, 180,
         lambda: describe(cluster))  # fmt: skip
    took = time.monotonic() - t0
    timeline.say(
        f"{name} serves; spec.version is still {cluster.model()['spec']['version']} (the "
        f"operator never writes the spec; pin {name} in Git when you like)"
    )
    step.outcome = f"retrained: {name} registered in {registered:.1f} s, serving in {took:.1f} s"
    step.seconds = took
