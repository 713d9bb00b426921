"""The training planner: when a run starts, what is removed, and what the status says."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.planning.model import DeploymentState
from ciclo.planning.model import plan as plan_model
from ciclo.planning.training import JobState, job_state, next_version, plan, trained_candidate
from ciclo.planning.training_jobs import SCHEDULE, job_name, pod_template

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
IMAGE = "ciclo:test"
TRAINING = {
    "template": {"containers": [{"command": ["python", "/src/train.py"]}]},
    "artifactStore": "file:///data/models/iris",
    "cooldown": "10m",
    "retryBackoff": "1m",
    "maxRetries": 2,
}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def model(status: dict[str, Any] | None = None, **training: Any) -> Model:
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"version": "v2", "training": {**TRAINING, **training}},
            "status": {"servingVersion": "v2", **(status or {})},
        }
    )


def request(ident: str, minutes: float) -> dict[str, Any]:
    return {"retrainRequest": {"id": ident, "reason": "ManualRetrain", "at": at(minutes)}}


def mv(version: str) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "metadata": {"name": f"iris-{version}", "namespace": "ns", "generation": 1},
            "spec": {
                "model": "iris",
                "version": version,
                "artifact": {
                    "uri": f"file:///m/{version}",
                    "format": "sklearn",
                    "sha256": "a" * 64,
                },
            },
        }
    )


def job(
    trigger: str,
    created: float,
    finished: float | None = None,
    outcome: str = "Running",
    attempt: int = 1,
    version: str = "v3",
) -> JobState:
    return JobState(
        name=job_name("iris", trigger, attempt),
        trigger=trigger,
        attempt=attempt,
        created=at(created),
        outcome=outcome,  # type: ignore[arg-type]
        version=version,
        desired="v2",
        finished=at(finished) if finished is not None else None,
        reason="BackoffLimitExceeded" if outcome == "Failed" else "",
        message="Job has reached the specified backoff limit" if outcome == "Failed" else "",
    )


VERSIONS = [mv("v1"), mv("v2")]


# (what the cluster holds, the clock) -> whether a Job starts, and for which trigger/attempt
CASES = [
    ("no request, no run", model(), [], 0, None),
    ("a request starts a run", model(request("r1", 0)), [], 0, ("r1", 1)),
    ("its Job exists (a restart): none again", model(request("r1", 0)), [job("r1", 0)], 1, None),
    (
        "a request made while a run is active folds into it",
        model(request("r2", 5)),
        [job("r1", 0)],
        6,
        None,
    ),
    (
        "a request after a run ended waits for the cooldown",
        model(request("r2", 12)),
        [job("r1", 0, 5, "Succeeded")],
        12,
        None,
    ),
    (
        "... and starts once it is over",
        model(request("r2", 12)),
        [job("r1", 0, 5, "Succeeded")],
        15,
        ("r2", 1),
    ),
    (
        "a handled request starts nothing",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [],
        30,
        None,
    ),
    (
        "a failed run is retried after its backoff",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [job("r1", 0, 2, "Failed")],
        3,
        ("r1", 2),
    ),
    (
        "... not before",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [job("r1", 0, 2, "Failed")],
        2.5,
        None,
    ),
    (
        "the backoff doubles",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [job("r1", 0, 2, "Failed"), job("r1", 3, 4, "Failed", attempt=2)],
        5.5,
        None,
    ),
    (
        "... and the last retry starts after it",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [job("r1", 0, 2, "Failed"), job("r1", 3, 4, "Failed", attempt=2)],
        6,
        ("r1", 3),
    ),
    (
        "retries run out",
        model({**request("r1", 0), "training": {"handledRequest": "r1"}}),
        [
            job("r1", 0, 2, "Failed"),
            job("r1", 3, 4, "Failed", attempt=2),
            job("r1", 6, 7, "Failed", attempt=3),
        ],
        60,
        None,
    ),
    (
        "a scheduled run that failed waits for the schedule",
        model(),
        [job(SCHEDULE, 0, 1, "Failed")],
        30,
        None,
    ),
    (
        "a retired Model starts nothing",
        model({**request("r1", 0), "retirement": {"version": "v2", "reason": "Dead", "at": at(0)}}),
        [],
        1,
        None,
    ),
]


@pytest.mark.parametrize(
    ("m", "jobs", "minutes", "starts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_when_a_run_starts(
    m: Model, jobs: list[JobState], minutes: float, starts: tuple[str, int] | None
) -> None:
    p = plan(m, jobs, VERSIONS, IMAGE, at(minutes))
    if starts is None:
        assert p.create is None
    else:
        assert p.create is not None
        assert p.create["metadata"]["name"] == job_name("iris", *starts)
        notes = p.create["metadata"]["annotations"]
        assert notes["ciclo.dev/trigger"] == starts[0]
        assert notes["ciclo.dev/attempt"] == str(starts[1])


def test_two_triggers_in_quick_succession_start_one_job() -> None:
    """The second request replaces the first before the controller sees it, or arrives
    while the first one's Job runs: either way, one Job."""
    first = plan(model(request("r1", 0)), [], VERSIONS, IMAGE, at(0))
    assert first.create is not None
    created = job_state(
        {
            **first.create,
            "metadata": {**first.create["metadata"], "creationTimestamp": "2026-01-01T12:00:00Z"},
        }
    )
    again = model({**request("r2", 0.1), "training": first.status.model_dump(by_alias=True)})
    second = plan(again, [created], VERSIONS, IMAGE, at(0.2))
    assert second.create is None
    assert second.status.handled_request == "r2"


def test_one_run_at_a_time_removes_a_second() -> None:
    p = plan(
        model(schedule="* * * * *"), [job("r1", 0), job(SCHEDULE, 0.5)], VERSIONS, IMAGE, at(1)
    )
    assert p.delete == [job_name("iris", SCHEDULE, 1)]
    # the schedule is held while a triggered run is active
    assert p.cronjob is not None and p.cronjob["spec"]["suspend"] is True


def test_the_job_carries_the_contract() -> None:
    p = plan(model(request("r1", 0)), [], VERSIONS, IMAGE, at(0))
    assert p.create is not None
    pod = p.create["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    name = p.create["metadata"]["name"]
    assert env["CICLO_RUN"] == name
    assert env["CICLO_VERSION"] == "v3"
    assert env["CICLO_PARENT_VERSION"] == "v2"
    assert env["CICLO_TRIGGER"] == "r1"
    assert env["CICLO_ARTIFACT_URI"] == f"file:///data/models/iris/{name}"
    assert pod["containers"][0]["image"] == IMAGE
    assert p.create["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert p.create["spec"]["backoffLimit"] == 0
    # restricted, as the serving pods are
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


CONFIG = {"name": "src", "configMap": {"name": "iris-train"}}
SRC = {"name": "src", "mountPath": "/src", "readOnly": True}
RUN = job_name("iris", "r1", 1)
MODELS_RW = {"name": "pvc-models", "persistentVolumeClaim": {"claimName": "models"}}
AT_PVC = {"name": "pvc-models", "mountPath": "/mnt/pvc/models"}


def container(**extra: Any) -> dict[str, Any]:
    return {"containers": [{"command": ["python", "/src/train.py"], **extra}]}


# (store, template, trigger) -> the pod's volumes, the container's mounts, CICLO_ARTIFACT_DIR
STORAGE = [
    ("a bucket needs no volume", "s3://models/iris", {}, "r1", None, None, None),
    (
        "the user's volumes pass as they are",
        "s3://models/iris",
        {**container(volumeMounts=[SRC]), "volumes": [CONFIG]},
        "r1",
        [CONFIG],
        [SRC],
        None,
    ),
    (
        "a claim is mounted read-write; the run's directory on it",
        "pvc://models/iris/",
        {},
        "r1",
        [MODELS_RW],
        [AT_PVC],
        f"/mnt/pvc/models/iris/{RUN}",
    ),
    (
        "the claim's root",
        "pvc://models",
        {},
        "r1",
        [MODELS_RW],
        [AT_PVC],
        f"/mnt/pvc/models/{RUN}",
    ),
    (
        "a scheduled run's directory is its Job's name, expanded by the kubelet",
        "pvc://models/iris",
        {},
        SCHEDULE,
        [MODELS_RW],
        [AT_PVC],
        "/mnt/pvc/models/iris/$(CICLO_RUN)",
    ),
    (
        "the user's volumes first, then the claim",
        "pvc://models/iris",
        {**container(volumeMounts=[SRC]), "volumes": [CONFIG]},
        "r1",
        [CONFIG, MODELS_RW],
        [SRC, AT_PVC],
        f"/mnt/pvc/models/iris/{RUN}",
    ),
    (
        "a volume of the same name is the user's, mounted where the run's directory is",
        "pvc://models/iris",
        {"volumes": [{"name": "pvc-models", "persistentVolumeClaim": {"claimName": "other"}}]},
        "r1",
        [{"name": "pvc-models", "persistentVolumeClaim": {"claimName": "other"}}],
        [AT_PVC],
        f"/mnt/pvc/models/iris/{RUN}",
    ),
    (
        "so is a mount at the same path",
        "pvc://models/iris",
        {
            **container(volumeMounts=[{"name": "mine", "mountPath": "/mnt/pvc/models"}]),
            "volumes": [{"name": "mine", "persistentVolumeClaim": {"claimName": "models"}}],
        },
        "r1",
        [{"name": "mine", "persistentVolumeClaim": {"claimName": "models"}}, MODELS_RW],
        [{"name": "mine", "mountPath": "/mnt/pvc/models"}],
        f"/mnt/pvc/models/iris/{RUN}",
    ),
]


@pytest.mark.parametrize(
    ("store", "template", "trigger", "volumes", "mounts", "directory"),
    [c[1:] for c in STORAGE],
    ids=[c[0] for c in STORAGE],
)
def test_the_artifact_store_and_the_templates_volumes_reach_the_pod(
    store: str,
    template: dict[str, Any],
    trigger: str,
    volumes: list[dict[str, Any]] | None,
    mounts: list[dict[str, Any]] | None,
    directory: str | None,
) -> None:
    m = model(artifactStore=store, template={**container(), **template})
    assert m.spec.training is not None
    pod = pod_template(m, m.spec.training, IMAGE, trigger, 1, "v3")["spec"]
    (c,) = pod["containers"]
    assert pod.get("volumes") == volumes
    assert c.get("volumeMounts") == mounts
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env.get("CICLO_ARTIFACT_DIR") == directory
    assert env["CICLO_ARTIFACT_URI"] == f"{store.rstrip('/')}/{env['CICLO_RUN'] or '$(CICLO_RUN)'}"
    # the variables it names come first, for the kubelet's $(VAR) expansion
    names = [e["name"] for e in c["env"]]
    assert names.index("CICLO_RUN") < names.index("CICLO_ARTIFACT_URI")


def test_versions_are_numbered_past_every_taken_one() -> None:
    assert next_version([mv("v1"), mv("v2"), mv("2024-06-01")], []) == "v3"
    assert next_version([mv("v1")], [job("r1", 0, version="v7")]) == "v8"
    assert next_version([], []) == "v1"


def test_a_failed_run_is_training_failed_with_its_log() -> None:
    m = model({**request("r1", 0), "training": {"handledRequest": "r1"}})
    jobs = [job("r1", 0, 2, "Failed")]
    p = plan(m, jobs, VERSIONS, IMAGE, at(2.1), logs={jobs[0].name: "ValueError: no data"})
    failed = next(c for c in p.conditions if c.type == "TrainingFailed")
    assert failed.status == "True"
    assert failed.reason == "BackoffLimitExceeded"
    assert "ValueError: no data" in failed.message
    assert "attempt 2 at" in failed.message
    assert p.requeue_after == pytest.approx(54)


def test_a_success_records_the_trained_version() -> None:
    m = model({**request("r1", 0), "training": {"handledRequest": "r1"}})
    p = plan(m, [job("r1", 0, 3, "Succeeded")], [*VERSIONS, mv("v3")], IMAGE, at(4))
    assert p.status.trained_version == "v3"
    assert p.status.trained_for == "v2"
    failed = next(c for c in p.conditions if c.type == "TrainingFailed")
    assert (failed.status, failed.reason) == ("False", "Succeeded")
    # succeeded without registering: the contract was broken
    p = plan(m, [job("r1", 0, 3, "Succeeded")], VERSIONS, IMAGE, at(4))
    failed = next(c for c in p.conditions if c.type == "TrainingFailed")
    assert (failed.status, failed.reason) == ("True", "VersionNotRegistered")


def test_the_trained_version_serves_with_auto_promote_only() -> None:
    trained = {"training": {"trainedVersion": "v3", "trainedFor": "v2"}}
    versions = [*VERSIONS, mv("v3")]
    assert trained_candidate(model(trained), {"v1", "v2", "v3"}, set()) is None
    promoting = model(trained, autoPromote=True)
    assert trained_candidate(promoting, {"v1", "v2", "v3"}, set()) == "v3"
    assert trained_candidate(promoting, {"v1", "v2", "v3"}, {"v3"}) is None  # rolled back
    # the user names another version: theirs wins
    named = promoting.model_copy(
        update={"spec": promoting.spec.model_copy(update={"version": "v1"})}
    )
    assert trained_candidate(named, {"v1", "v2", "v3"}, set()) is None
    # the Model's plan brings v3 up beside v2; spec.version is still v2
    p = plan_model(promoting, versions, [DeploymentState("iris-v2", "v2", 1)], IMAGE, at(0))
    assert p.target == "v3"
    assert p.status.desired_version == "v2"


def test_retired_model_removes_its_jobs_and_schedule() -> None:
    m = model({"retirement": {"version": "v2", "reason": "Dead", "at": at(0)}}, schedule="@daily")
    p = plan(m, [job("r1", 0)], VERSIONS, IMAGE, at(1), cronjob_exists=True)
    assert p.delete == [job_name("iris", "r1", 1)]
    assert p.delete_cronjob and p.cronjob is None


def test_converged_plan_changes_nothing() -> None:
    m = model({**request("r1", 0), "training": {"handledRequest": "r1"}})
    jobs = [job("r1", 0, 3, "Succeeded")]
    first = plan(m, jobs, [*VERSIONS, mv("v3")], IMAGE, at(4))
    m2 = m.model_copy(
        update={
            "status": m.status.model_copy(
                update={"training": first.status, "conditions": first.conditions}
            )
        }
    )
    second = plan(m2, jobs, [*VERSIONS, mv("v3")], IMAGE, at(5))
    assert second.create is None and second.delete == []
    assert second.status == first.status
    assert [c.model_dump() for c in second.conditions] == [c.model_dump() for c in first.conditions]


def test_a_retrain_rule_has_an_alert_severity() -> None:
    from ciclo.planning.prometheusrule import SEVERITY

    assert SEVERITY["retrain"] == "warning"
    assert set(SEVERITY) == {"alert", "rollback", "retire", "retrain"}
