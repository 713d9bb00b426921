"""What a training run's Job and the schedule's CronJob look like: the user's template with
the contract of docs/training.md (the CICLO_* variables), labels and annotations that let
`planning.training` read a Job back (its trigger, attempt and version), owned by the Model.
Pure."""

from __future__ import annotations

import hashlib
from typing import Any

from ciclo.api.model import Model
from ciclo.api.training import Training
from ciclo.planning import claims
from ciclo.planning.manifests import MODEL_LABEL, owner
from ciclo.planning.names import dns_label

Json = dict[str, Any]

TRIGGER_LABEL = "ciclo.dev/trigger"
"""On a training Job: a hash of its trigger's id (the id itself is an annotation)."""
TRIGGER_ANNOTATION = "ciclo.dev/trigger"
ATTEMPT_ANNOTATION = "ciclo.dev/attempt"
VERSION_ANNOTATION = "ciclo.dev/version"
FOR_ANNOTATION = "ciclo.dev/desired-version"
"""spec.version when the run started: the trained version is a candidate while it holds."""
TRAINING_LABEL = "ciclo.dev/training"
SCHEDULE = "schedule"


def trigger_hash(trigger: str) -> str:
    return hashlib.sha256(trigger.encode()).hexdigest()[:10]


def job_name(model: str, trigger: str, attempt: int) -> str:
    """Deterministic: the same trigger and attempt always name the same Job."""
    return dns_label(model, "train", trigger_hash(trigger), str(attempt), limit=52)


def _env(pairs: dict[str, str]) -> list[Json]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def _merged(user: list[Json], ours: list[Json], key: str) -> list[Json]:
    """The user's entries, then ours whose `key` none of theirs has: Kubernetes refuses a
    duplicate, and the user's own declaration wins."""
    taken = {u.get(key) for u in user}
    return [*user, *(o for o in ours if o[key] not in taken)]


def pod_template(
    model: Model, training: Training, image: str, trigger: str, attempt: int, version: str
) -> Json:
    """The training pod: the user's containers with the CICLO_* contract in their env."""
    name, namespace = model.metadata.name, model.metadata.namespace
    run = "$(CICLO_RUN)" if trigger == SCHEDULE else job_name(name, trigger, attempt)
    contract = {
        "CICLO_MODEL": name,
        "CICLO_NAMESPACE": namespace,
        "CICLO_TRIGGER": trigger,
        "CICLO_PARENT_VERSION": model.status.serving_version or model.spec.version,
        "CICLO_VERSION": version,
        "CICLO_ARTIFACT_STORE": training.artifact_store.rstrip("/"),
    }
    uri = f"{contract['CICLO_ARTIFACT_STORE']}/{run}"
    artifacts = {"CICLO_ARTIFACT_URI": uri}
    # A pvc:// store's claim is mounted read-write: the run writes plain files to its
    # directory there and registers them by their pvc:// URIs.
    local = claims.local_path(uri)
    if local is not None:
        artifacts["CICLO_ARTIFACT_DIR"] = local
    containers = []
    for c in training.template.containers:
        env: list[Json] = []
        if trigger == SCHEDULE:
            # A CronJob names its Jobs itself: the run is the Job's name, read from the pod.
            env.append(
                {
                    "name": "CICLO_RUN",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
                }
            )
        else:
            env.append({"name": "CICLO_RUN", "value": run})
        env += _env(contract) + _env(artifacts)
        env += [e.model_dump(by_alias=True) for e in c.env]
        container: Json = {
            "name": c.name,
            "image": c.image or image,
            "command": c.command,
            "args": c.args,
            "env": env,
            # The log's end in the container's status: TrainingFailed quotes it even where
            # the node's log is gone.
            "terminationMessagePolicy": "FallbackToLogsOnError",
            # restricted, but with a writable filesystem: training writes its scratch files
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
            },
        }
        if c.working_dir:
            container["workingDir"] = c.working_dir
        if c.resources:
            container["resources"] = c.resources
        mounts = _merged(c.volume_mounts, claims.mounts([uri], read_only=False), "mountPath")
        if mounts:
            container["volumeMounts"] = mounts
        containers.append(container)
    t = training.template
    # The Pod Security Standards' restricted profile, as the serving pods meet it.
    security: Json = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if t.run_as_user is not None:
        security.update(runAsUser=t.run_as_user, runAsGroup=t.run_as_user, fsGroup=t.run_as_user)
    spec: Json = {"restartPolicy": "Never", "containers": containers, "securityContext": security}
    if t.service_account_name:
        spec["serviceAccountName"] = t.service_account_name
    if t.node_selector:
        spec["nodeSelector"] = t.node_selector
    if t.tolerations:
        spec["tolerations"] = t.tolerations
    volumes = _merged(t.volumes, claims.volumes([uri], read_only=False), "name")
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"labels": {MODEL_LABEL: name, TRAINING_LABEL: "true"}}, "spec": spec}


def _job_meta(model: Model, trigger: str, attempt: int, version: str) -> Json:
    return {
        "labels": {
            MODEL_LABEL: model.metadata.name,
            TRAINING_LABEL: "true",
            TRIGGER_LABEL: trigger_hash(trigger),
            "app.kubernetes.io/managed-by": "ciclo",
        },
        "annotations": {
            TRIGGER_ANNOTATION: trigger,
            ATTEMPT_ANNOTATION: str(attempt),
            VERSION_ANNOTATION: version,
            FOR_ANNOTATION: model.spec.version,
        },
    }


def job_manifest(
    model: Model, training: Training, image: str, trigger: str, attempt: int, version: str
) -> Json:
    meta = _job_meta(model, trigger, attempt, version)
    meta.update(
        name=job_name(model.metadata.name, trigger, attempt),
        namespace=model.metadata.namespace,
        ownerReferences=[owner(model)],
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            # Retries are the operator's (with backoff, one Job each), so each attempt's
            # failure and log stay visible.
            "backoffLimit": 0,
            "activeDeadlineSeconds": training.template.active_deadline_seconds,
            "template": pod_template(model, training, image, trigger, attempt, version),
        },
    }


def cronjob_manifest(
    model: Model, training: Training, image: str, version: str, suspend: bool
) -> Json:
    """The schedule's CronJob. Its version is allocated when the CronJob is applied, and
    the operator applies it again after each run, so the next run gets the next number."""
    assert training.schedule is not None
    meta = _job_meta(model, SCHEDULE, 1, version)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": dns_label(model.metadata.name, "train", limit=52),
            "namespace": model.metadata.namespace,
            "labels": meta["labels"],
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "schedule": training.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 60,
            "suspend": suspend,
            "successfulJobsHistoryLimit": training.history,
            "failedJobsHistoryLimit": training.history,
            "jobTemplate": {
                "metadata": meta,
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": training.template.active_deadline_seconds,
                    "template": pod_template(model, training, image, SCHEDULE, 1, version),
                },
            },
        },
    }
