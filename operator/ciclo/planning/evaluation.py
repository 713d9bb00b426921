"""The evaluation Job of a candidate, and what its pods say of the result. Pure.

The Job runs `ciclo evaluate` from the runtime's image, placed like the serving pods. It
needs no access to the API server: it writes its result (compact JSON, under the 4096
bytes a termination message holds) to its terminationMessagePath, and the operator reads
it from the pod's status and records it in the ModelVersion's status.
"""

from __future__ import annotations

import datetime as dt
import json

from pydantic import ValidationError

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.promotion import EvaluationRecord
from ciclo.planning import claims, manifests
from ciclo.planning.manifests import Json
from ciclo.planning.names import dns_label

EVALUATES_LABEL = "ciclo.dev/evaluates"
"""On the Job and its pods: the version evaluated (never ciclo.dev/version: a serving
Deployment's selector must not see them)."""
WORK_DIR = "/var/run/ciclo-evaluation"
RESULT_FILE = f"{WORK_DIR}/result.json"
CONTAINER = "evaluate"


def job_name(model: Model, version: ModelVersion) -> str:
    dataset = model.spec.promotion.evaluation if model.spec.promotion else None
    digest = dataset.dataset.sha256[:8] if dataset else "none"
    return dns_label(model.metadata.name, version.spec.version, "eval", digest)


def job(model: Model, candidate: ModelVersion, champion: ModelVersion | None, image: str) -> Json:
    """The Job scoring `candidate` (and `champion`, when one serves) on the dataset."""
    promotion = model.spec.promotion
    assert promotion is not None and promotion.evaluation is not None
    evaluation = promotion.evaluation
    dataset = evaluation.dataset
    serving = model.spec.serving
    name = model.metadata.name
    command = [
        "ciclo",
        "evaluate",
        "--dataset",
        dataset.uri,
        "--dataset-sha256",
        dataset.sha256,
        "--dataset-format",
        dataset.format,
        "--target",
        dataset.target,
        "--task",
        model.spec.task,
        "--candidate",
        candidate.spec.artifact.uri,
        "--candidate-sha256",
        candidate.spec.artifact.sha256,
        "--candidate-format",
        candidate.spec.artifact.format,
        "--workdir",
        WORK_DIR,
        "--result",
        RESULT_FILE,
    ]
    # What it reads; the claims of pvc:// URIs among them are mounted read-only.
    read = [dataset.uri, candidate.spec.artifact.uri]
    if champion is not None:
        read.append(champion.spec.artifact.uri)
        command += [
            "--champion",
            champion.spec.artifact.uri,
            "--champion-sha256",
            champion.spec.artifact.sha256,
            "--champion-format",
            champion.spec.artifact.format,
            "--champion-version",
            champion.spec.version,
        ]
    job_labels = {**manifests.labels(name), EVALUATES_LABEL: candidate.spec.version}
    container: Json = {
        "name": CONTAINER,
        "image": serving.image or image,
        "command": command,
        "env": [{"name": e.name, "value": e.value} for e in serving.env],
        "securityContext": manifests.restricted(),
        "volumeMounts": [{"name": "work", "mountPath": WORK_DIR}, *claims.mounts(read)],
        # The result, read back from the pod's status; on a failure, the log's last line.
        "terminationMessagePath": RESULT_FILE,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources = serving.resources.model_dump(exclude_defaults=True)
    if resources:
        container["resources"] = resources
    pod_spec: Json = {
        **manifests.placement(model),
        "securityContext": manifests.pod_security(),
        "restartPolicy": "Never",
        # It reads files and writes its result; it never calls the API server.
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "work", "emptyDir": {}}, *claims.volumes(read)],
        "terminationGracePeriodSeconds": 10,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(model, candidate),
            "namespace": model.metadata.namespace,
            "labels": job_labels,
            "ownerReferences": [manifests.owner(model)],
        },
        "spec": {
            # One try: a failure is recorded with its reason; a new dataset or version
            # (or deleting the record) evaluates again.
            "backoffLimit": 0,
            "activeDeadlineSeconds": evaluation.timeout_seconds,
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }


def outcome(
    pods: list[Json], job: Json | None, version: str, dataset_sha256: str, now: dt.datetime
) -> EvaluationRecord | None:
    """What the evaluation of `version` came to, from its Job and its pods: a record (with
    `error` when it failed), or None while it runs (or before it started)."""
    for pod in pods:
        if pod["metadata"].get("labels", {}).get(EVALUATES_LABEL) != version:
            continue
        for c in pod.get("status", {}).get("containerStatuses", []):
            ended = (c.get("state") or {}).get("terminated")
            if c.get("name") != CONTAINER or not ended:
                continue
            message = (ended.get("message") or "").strip()
            finished = _time(ended.get("finishedAt")) or now
            if ended.get("exitCode") != 0:
                why = message.splitlines()[-1] if message else ended.get("reason", "failed")
                return _failed(dataset_sha256, f"exit code {ended.get('exitCode')}: {why}", now)
            if not message:
                return _failed(dataset_sha256, "the evaluation ended without a result", now)
            try:
                raw = json.loads(message)
                raw["finishedAt"] = finished.isoformat()
                raw.setdefault("datasetSha256", dataset_sha256)
                return EvaluationRecord.model_validate(raw)
            except (ValueError, ValidationError) as e:
                first = str(e).splitlines()[0]
                return _failed(dataset_sha256, f"unreadable result: {first}", now)
    for c in ((job or {}).get("status") or {}).get("conditions", []):
        if c.get("type") == "Failed" and c.get("status") == "True":
            why = f"{c.get('reason', 'Failed')}: {c.get('message', '')}".strip(": ")
            return _failed(dataset_sha256, f"the Job failed: {why}", now)
    return None


def _failed(dataset_sha256: str, error: str, now: dt.datetime) -> EvaluationRecord:
    return EvaluationRecord(
        dataset_sha256=dataset_sha256, rows=0, finished_at=now, error=error[:1024]
    )


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
