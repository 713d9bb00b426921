"""The way in, the Model controller's I/O part: what reviews and evaluation Jobs say is
recorded on the ModelVersions before the plan reads them, and the evaluation Jobs the
plan wants are applied (the others deleted) after.

Records come first and are written under field managers of their own (`ciclo-review`,
`ciclo-evaluation`), so a restart between a record and the plan that uses it replans
from the record; the Validated condition stays the Model controller's (`ciclo`).
"""

from __future__ import annotations

import datetime as dt
import logging

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.promotion import EvaluationRecord, ReviewRecord
from ciclo.api.review import Review
from ciclo.kube.client import JOBS, MODEL_VERSIONS, PODS, REVIEWS, Json, Kube
from ciclo.planning import evaluation, manifests, promotion

log = logging.getLogger(__name__)

EVALUATION_MANAGER = "ciclo-evaluation"
REVIEW_MANAGER = "ciclo-review"
REVIEWS_KEPT = 32


def _dump(obj: EvaluationRecord | ReviewRecord) -> Json:
    dumped: Json = obj.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


def _write(kube: Kube, version: ModelVersion, manager: str, status: Json) -> None:
    kube.apply(
        MODEL_VERSIONS,
        {
            "apiVersion": version.api_version,
            "kind": "ModelVersion",
            "metadata": {"name": version.metadata.name, "namespace": version.metadata.namespace},
            "status": status,
        },
        manager=manager,
        status=True,
    )


def _with_status(version: ModelVersion, **update: object) -> ModelVersion:
    return version.model_copy(update={"status": version.status.model_copy(update=update)})


def record(
    kube: Kube, model: Model, versions: list[ModelVersion], now: dt.datetime
) -> list[ModelVersion]:
    """The versions, with the reviews and the evaluation outcome that arrived since the
    last reconcile recorded (in the cluster and in the returned copies)."""
    if model.spec.promotion is None:
        return versions
    namespace, name = model.metadata.namespace, model.metadata.name
    reviews = [
        Review.model_validate(r) for r in kube.list(REVIEWS, namespace, fields=f"spec.model={name}")
    ]
    out = []
    for version in versions:
        version = _record_reviews(kube, version, reviews)
        version = _record_evaluation(kube, model, version, now)
        out.append(version)
    return out


def _record_reviews(kube: Kube, version: ModelVersion, reviews: list[Review]) -> ModelVersion:
    """Every Review of the version, kept in its status newest first; a Review deleted later
    stays recorded (a rejection is for good). Reviews older than the version are of an
    earlier one by the same name: they never count for this one."""
    known = {r.review: r for r in version.status.reviews}
    born = version.metadata.creation_timestamp
    for r in reviews:
        if r.spec.version != version.spec.version or r.metadata.name in known:
            continue
        created = r.metadata.creation_timestamp
        if born is not None and created is not None and created < born:
            continue  # of an earlier version by the same name, deleted since
        known[r.metadata.name] = ReviewRecord(
            decision=r.spec.decision,
            user=r.spec.user,
            comment=r.spec.comment,
            at=r.metadata.creation_timestamp or dt.datetime.now(dt.UTC).replace(microsecond=0),
            review=r.metadata.name,
        )
    merged = sorted(known.values(), key=lambda r: (r.at, r.review), reverse=True)[:REVIEWS_KEPT]
    if merged == version.status.reviews:
        return version
    _write(kube, version, REVIEW_MANAGER, {"reviews": [_dump(r) for r in merged]})
    return _with_status(version, reviews=merged)


def _record_evaluation(
    kube: Kube, model: Model, version: ModelVersion, now: dt.datetime
) -> ModelVersion:
    """The outcome of the version's evaluation Job, once it has one."""
    serving = model.status.serving_version
    verdict = promotion.verdict(model, version, serving)
    if not verdict.evaluate:
        return version
    assert model.spec.promotion is not None and model.spec.promotion.evaluation is not None
    sha = model.spec.promotion.evaluation.dataset.sha256
    namespace = model.metadata.namespace
    name = evaluation.job_name(model, version)
    # The managed-by label first: the operator's memory of its pods answers, not the API.
    pods = kube.list(PODS, namespace, labels=f"app.kubernetes.io/managed-by=ciclo,job-name={name}")
    job = kube.get(JOBS, namespace, name)
    outcome = evaluation.outcome(pods, job, version.spec.version, sha, now)
    if outcome is None:
        return version
    log.info(
        "model %s/%s: evaluation of %s recorded%s",
        namespace,
        model.metadata.name,
        version.spec.version,
        f": {outcome.error}" if outcome.error else "",
    )
    _write(kube, version, EVALUATION_MANAGER, {"evaluation": _dump(outcome)})
    return _with_status(version, evaluation=outcome)


def sync_jobs(kube: Kube, model: Model, wanted: list[Json]) -> None:
    """The evaluation Jobs the plan wants exist; the Model's others (done, or for a version
    no longer a candidate) are deleted with their pods."""
    if model.spec.promotion is None and not wanted:
        return
    namespace = model.metadata.namespace
    selector = f"{manifests.MODEL_LABEL}={model.metadata.name},{evaluation.EVALUATES_LABEL}"
    existing = {j["metadata"]["name"] for j in kube.list(JOBS, namespace, labels=selector)}
    names = {j["metadata"]["name"] for j in wanted}
    for job in wanted:
        if job["metadata"]["name"] not in existing:
            kube.apply(JOBS, job)
    for stale in sorted(existing - names):
        kube.delete(JOBS, namespace, stale)
