"""The Model planner: which version serves, which stay warm, the status and the Events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion, RollbackRecord
from ciclo.planning import conditions, manifests
from ciclo.planning.model import DeploymentState, ModelPlan, plan

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
IMAGE = "ciclo:test"


def mv(version: str, **status: Any) -> ModelVersion:
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
            "status": status,
        }
    )


def model(version: str, generation: int = 1, **spec: Any) -> Model:
    return Model.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "generation": generation},
            "spec": {"version": version, **spec},
        }
    )


def after(m: Model, p: ModelPlan, versions: list[ModelVersion]) -> tuple[Model, list[ModelVersion]]:
    """The world once the controller has written the plan."""
    m = m.model_copy(update={"status": p.status})
    updates = {u.name: u for u in p.versions}
    out = []
    for v in versions:
        u = updates.get(v.metadata.name)
        if u:
            status = v.status.model_copy(
                update={
                    "phase": u.phase,
                    "served_at": u.served_at,
                    "conditions": conditions.merge(v.status.conditions, [u.serving], T0),
                    "rolled_back": None if u.clear_rollback else v.status.rolled_back,
                }
            )
            v = v.model_copy(update={"status": status})
        out.append(v)
    return m, out


def ready(p: ModelPlan) -> list[DeploymentState]:
    return [
        DeploymentState(
            d["metadata"]["name"],
            d["metadata"]["labels"][manifests.VERSION_LABEL],
            d["spec"]["replicas"],
        )
        for d in p.deployments
    ]


def cond(p: ModelPlan, kind: str) -> Condition:
    c = conditions.find(p.status.conditions, kind)
    assert c is not None
    return c


def mark_bad(versions: list[ModelVersion], version: str) -> list[ModelVersion]:
    record = RollbackRecord(reason="ManualRollback", message="by test", at=T0)
    return [
        v.model_copy(update={"status": v.status.model_copy(update={"rolled_back": record})})
        if v.spec.version == version
        else v
        for v in versions
    ]


def test_first_version_serves_and_the_service_selects_it():
    versions = [mv("v1"), mv("v2")]
    p = plan(model("v1"), versions, [], IMAGE, T0)
    assert p.status.serving_version == "v1"
    assert [d["metadata"]["name"] for d in p.deployments] == ["iris-v1"]
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    assert [e.reason for e in p.events] == ["Serving"]
    assert {u.name: u.phase for u in p.versions} == {"iris-v1": "Serving", "iris-v2": "Registered"}
    assert cond(p, "Ready").status == "False" and cond(p, "Progressing").status == "True"


def test_ready_once_the_deployment_reports_ready_replicas_and_replanning_changes_nothing():
    versions = [mv("v1")]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    m, versions = after(m, p, versions)
    p2 = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(seconds=5))
    assert cond(p2, "Ready").status == "True" and cond(p2, "Ready").observed_generation == 1
    assert p2.events == [] and p2.versions == []
    m, versions = after(m, p2, versions)
    p3 = plan(m, versions, ready(p2), IMAGE, T0 + dt.timedelta(seconds=9))
    assert p3.status == p2.status, "a converged model plans no change"
    assert p3.events == [] and p3.versions == []


def lifecycle_to_v2() -> tuple[Model, list[ModelVersion], ModelPlan]:
    versions = [mv("v1"), mv("v2"), mv("v3")]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    m, versions = after(m, p, versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=1))
    m, versions = after(m, p, versions)
    return m, versions, p


def test_switching_versions_keeps_the_previous_one_warm():
    _, _, p = lifecycle_to_v2()
    assert p.status.serving_version == "v2"
    replicas = {
        d["metadata"]["name"]: (
            d["spec"]["replicas"],
            d["metadata"]["labels"][manifests.ROLE_LABEL],
        )
        for d in p.deployments
    }
    assert replicas == {"iris-v2": (1, "serving"), "iris-v1": (1, "warm")}
    assert [(h.version, h.outcome) for h in p.status.history] == [
        ("v2", "Serving"),
        ("v1", "Replaced"),
    ]
    assert {u.name: u.phase for u in p.versions} == {"iris-v1": "Standby", "iris-v2": "Serving"}


def test_a_version_marked_bad_rolls_back_to_the_last_good_one_without_touching_spec():
    m, versions, p = lifecycle_to_v2()
    versions = mark_bad(versions, "v2")
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=2))
    assert p.status.serving_version == "v1" and p.status.desired_version == "v2"
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    assert cond(p, "Degraded").status == "True" and cond(p, "Degraded").reason == "RolledBack"
    assert [(e.reason, e.type) for e in p.events] == [("RolledBack", "Warning")]
    assert {u.name: u.phase for u in p.versions} == {"iris-v1": "Serving", "iris-v2": "RolledBack"}
    assert [d["metadata"]["name"] for d in p.deployments] == ["iris-v1"]
    assert p.delete_deployments == ["iris-v2"]
    assert [(h.version, h.outcome) for h in p.status.history][:2] == [
        ("v1", "Serving"),
        ("v2", "RolledBack"),
    ]

    # It stays rolled back while spec.version still names v2.
    m, versions = after(m, p, versions)
    again = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=3))
    assert again.status.serving_version == "v1" and again.events == []


def test_a_new_spec_version_serves_and_naming_the_bad_one_again_retries_it():
    m, versions, p = lifecycle_to_v2()
    versions = mark_bad(versions, "v2")
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=2))
    m, versions = after(m, p, versions)

    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v3"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=3))
    assert p.status.serving_version == "v3" and cond(p, "Degraded").status == "False"
    assert not any(u.clear_rollback for u in p.versions), "v2 stays marked while v3 is named"
    m, versions = after(m, p, versions)

    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=4))
    assert p.status.serving_version == "v2"
    assert [u.name for u in p.versions if u.clear_rollback] == ["iris-v2"]


def test_no_good_version_left_keeps_serving_and_says_so():
    versions = mark_bad([mv("v1")], "v1")
    p = plan(model("v1"), versions, [], IMAGE, T0)
    assert p.status.serving_version == "v1"
    assert cond(p, "Degraded").reason == "NoGoodVersion"


def test_when_every_version_is_bad_what_serves_keeps_serving():
    m, versions, p = lifecycle_to_v2()
    versions = mark_bad(versions, "v2")
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=2))
    m, versions = after(m, p, versions)
    assert p.status.serving_version == "v1"
    versions = mark_bad(versions, "v1")
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=3))
    assert p.status.serving_version == "v1", "never back to the version marked bad first"
    assert cond(p, "Degraded").reason == "NoGoodVersion"


def test_a_missing_version_keeps_what_serves():
    m, versions, p = lifecycle_to_v2()
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v9"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=2))
    assert p.status.serving_version == "v2"
    assert cond(p, "Degraded").reason == "VersionNotFound"
    assert p.events == []


def test_an_invalid_version_never_serves():
    invalid = mv(
        "v2",
        conditions=[
            {
                "type": "Validated",
                "status": "False",
                "reason": "DigestMismatch",
                "message": "sha256 differs",
            }
        ],
    )
    versions = [mv("v1"), invalid]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    assert {u.name: u.phase for u in p.versions}["iris-v2"] == "Failed"
    m, versions = after(m, p, versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(p), IMAGE, T0)
    assert p.status.serving_version == "v1"
    assert (
        cond(p, "Degraded").reason == "VersionInvalid"
        and "sha256 differs" in cond(p, "Degraded").message
    )


def test_retiring_scales_everything_to_zero_and_removes_the_service():
    m, versions, p = lifecycle_to_v2()
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"retired": True})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=2))
    assert p.service is None and p.status.serving_version is None
    assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in p.deployments} == {
        "iris-v1": 0,
        "iris-v2": 0,
    }
    assert p.delete_deployments == []
    assert [e.reason for e in p.events] == ["Retired"]
    assert {u.name: u.phase for u in p.versions} == {"iris-v1": "Registered", "iris-v2": "Retired"}
    assert cond(p, "Ready").reason == "Retired"


def test_deployment_is_restricted_and_carries_the_scheduling_fields():
    m = model(
        "v1",
        serving={
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "resources": {"requests": {"cpu": "100m"}},
        },
    )
    d = manifests.deployment(m, mv("v1"), 2, "serving", IMAGE)
    pod = d["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["initContainers"][0]["command"][:2] == ["ciclo", "fetch"]
    assert "--sha256" in pod["initContainers"][0]["command"]
    assert d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert d["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_a_model_may_name_its_own_runtime_image():
    d = manifests.deployment(
        model("v1", serving={"image": "registry.example/ciclo:dev"}), mv("v1"), 1, "serving", IMAGE
    )
    pod = d["spec"]["template"]["spec"]
    assert {c["image"] for c in [*pod["initContainers"], *pod["containers"]]} == {
        "registry.example/ciclo:dev"
    }
    default = manifests.deployment(model("v1"), mv("v1"), 1, "serving", IMAGE)
    assert default["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_dns_label_keeps_long_or_odd_names_unique_and_valid():
    assert manifests.dns_label("iris", "v1") == "iris-v1"
    a = manifests.dns_label("iris", "1.2.0")
    b = manifests.dns_label("iris", "1-2-0")
    assert a != b and a.startswith("iris-1-2-0-")
    long = manifests.dns_label("m" * 60, "v" * 40)
    assert len(long) <= 63


def test_a_failed_write_shows_as_conditions_with_the_reason():
    from ciclo.planning.model import with_failure

    p = plan(model("v1"), [mv("v1")], [], IMAGE, T0)
    status = with_failure(p.status, "500 InternalError: range is full", 1, T0)
    ready_c = conditions.find(status.conditions, "Ready")
    degraded = conditions.find(status.conditions, "Degraded")
    assert ready_c and ready_c.status == "False" and ready_c.reason == "ApplyFailed"
    assert degraded and degraded.status == "True" and "range is full" in degraded.message


def test_event_keys_differ_per_transition_and_repeat_for_a_retry():
    versions = [mv("v1"), mv("v2")]
    m = model("v1")
    first = plan(m, versions, [], IMAGE, T0)
    retry = plan(m, versions, [], IMAGE, T0 + dt.timedelta(seconds=3))
    assert [e.key for e in first.events] == [e.key for e in retry.events], (
        "a retry meets the same Event"
    )
    m, versions = after(m, first, versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    m.metadata.generation = 2
    switch = plan(m, versions, ready(first), IMAGE, T0)  # the same second as the first
    assert switch.events and switch.events[0].key != first.events[0].key


def pod(version: str, init: list[dict[str, Any]], running: bool) -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"waiting": {}}
    return {
        "metadata": {"labels": {manifests.VERSION_LABEL: version}},
        "status": {
            "initContainerStatuses": init,
            "containerStatuses": [{"name": "serve", "state": state}],
        },
    }


def test_fetch_outcomes_read_the_init_step_of_each_versions_pods():
    from ciclo.planning.model import fetch_outcomes

    failed_fetch = {
        "name": "fetch",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {
            "terminated": {
                "exitCode": 1,
                "message": "ciclo fetch: sha256 mismatch: expected ab, got cd\n",
            }
        },
    }
    fetched = {"name": "fetch", "state": {"terminated": {"exitCode": 0}}}
    outcomes = fetch_outcomes(
        [
            pod("v1", [fetched], True),
            pod("v2", [failed_fetch], False),
            pod("v3", [{"name": "fetch", "state": {"running": {}}}], False),
        ]
    )
    assert outcomes["v1"] == (True, "the artifact was fetched and its sha256 matched")
    assert outcomes["v2"] == (False, "ciclo fetch: sha256 mismatch: expected ab, got cd")
    assert "v3" not in outcomes, "a fetch still running says nothing yet"


def test_a_failed_fetch_marks_the_version_failed_and_the_model_keeps_what_serves():
    m, versions, p = lifecycle_to_v2()
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v3"})})
    p = plan(
        m,
        versions,
        ready(p),
        IMAGE,
        T0 + dt.timedelta(minutes=2),
        fetch={"v3": (False, "ciclo fetch: sha256 mismatch")},
    )
    assert p.status.serving_version == "v2"
    assert cond(p, "Degraded").reason == "VersionInvalid"
    update = {u.name: u for u in p.versions}["iris-v3"]
    assert update.phase == "Failed"
    assert update.validated is not None and update.validated.reason == "FetchFailed"


def test_a_first_version_that_fails_its_fetch_stops_being_the_serving_one():
    versions = [mv("v1")]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    m, versions = after(m, p, versions)
    assert p.status.serving_version == "v1"  # planned, not yet ready
    p = plan(m, versions, ready(p), IMAGE, T0, fetch={"v1": (False, "sha256 mismatch")})
    assert p.status.serving_version is None
    assert p.deployments == [] and p.delete_deployments == ["iris-v1"] and p.service is None
    assert cond(p, "Degraded").reason == "VersionInvalid"
