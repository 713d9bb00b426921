"""The Model planner: which version serves, which stay warm, the status and the Events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion, RollbackRecord
from ciclo.planning import conditions, manifests
from ciclo.planning.model import DeploymentState, ModelPlan, plan
from ciclo.planning.names import dns_label

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
                    "conditions": conditions.merge(v.status.conditions, u.conditions, T0),
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


def settle(
    m: Model, versions: list[ModelVersion], p: ModelPlan | None = None, t: dt.datetime = T0
) -> tuple[Model, list[ModelVersion], ModelPlan, list[str]]:
    """Plan, write, and let every planned pod become ready, until nothing changes; with the
    reasons of the Events on the way."""
    seen: list[str] = []
    deployments = ready(p) if p else []
    for _ in range(6):
        p = plan(m, versions, deployments, IMAGE, t)
        seen += [e.reason for e in p.events]
        m, versions = after(m, p, versions)
        if ready(p) == deployments and not p.events and not p.versions:
            return m, versions, p, seen
        deployments = ready(p)
    raise AssertionError("the plan did not settle")


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


def test_first_version_takes_traffic_only_once_its_pods_are_ready():
    versions = [mv("v1"), mv("v2")]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    assert p.status.serving_version is None and p.service is None and p.events == []
    assert [d["metadata"]["name"] for d in p.deployments] == ["iris-v1"]
    assert {u.name: u.phase for u in p.versions} == {
        "iris-v1": "Deploying",
        "iris-v2": "Registered",
    }
    assert cond(p, "Ready").status == "False" and cond(p, "Progressing").status == "True"
    assert p.status.rollout is not None and p.status.rollout.version == "v1"
    validated = {u.name: conditions.find(u.conditions, "Validated") for u in p.versions}
    assert all(c is not None and c.status == "Unknown" for c in validated.values())

    m, versions = after(m, p, versions)
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(seconds=5))
    assert p.status.serving_version == "v1" and p.status.rollout is None
    assert p.service is not None and p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
    assert [e.reason for e in p.events] == ["Serving"]
    assert cond(p, "Ready").status == "True"


def test_ready_once_the_deployment_reports_ready_replicas_and_replanning_changes_nothing():
    m, versions, p, seen = settle(model("v1"), [mv("v1")])
    assert seen == ["Serving"]
    assert cond(p, "Ready").status == "True" and cond(p, "Ready").observed_generation == 1
    p3 = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(seconds=9))
    assert p3.status == p.status, "a converged model plans no change"
    assert p3.events == [] and p3.versions == []


def lifecycle_to_v2() -> tuple[Model, list[ModelVersion], ModelPlan]:
    versions = [mv("v1"), mv("v2"), mv("v3")]
    m, versions, p, _ = settle(model("v1"), versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    m, versions, p, _ = settle(m, versions, p, T0 + dt.timedelta(minutes=1))
    return m, versions, p


def test_a_new_version_waits_for_as_many_ready_pods_as_serve_now_before_the_switch():
    versions = [mv("v1"), mv("v2")]
    m, versions, p, _ = settle(model("v1", serving={"replicas": 3}), versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    served = ready(p)
    for n in (0, 1, 2):
        p = plan(m, versions, [*served, DeploymentState("iris-v2", "v2", n)], IMAGE, T0)
        assert p.status.serving_version == "v1", f"switched with {n}/3 ready"
        assert p.service is not None
        assert p.service["spec"]["selector"][manifests.VERSION_LABEL] == "v1"
        assert cond(p, "Ready").status == "True" and cond(p, "Progressing").status == "True"
        assert cond(p, "Degraded").status == "False" and p.events == []
        assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in p.deployments} == {
            "iris-v1": 3,
            "iris-v2": 3,
        }
    p = plan(m, versions, [*served, DeploymentState("iris-v2", "v2", 3)], IMAGE, T0)
    assert p.status.serving_version == "v2" and [e.reason for e in p.events] == ["Serving"]
    # With only one v1 pod ready (the others crashed), one ready v2 pod is no step down.
    p = plan(
        m,
        versions,
        [DeploymentState("iris-v1", "v1", 1), DeploymentState("iris-v2", "v2", 1)],
        IMAGE,
        T0,
    )
    assert p.status.serving_version == "v2"


def test_a_version_that_never_gets_ready_fails_at_its_deadline_and_what_serves_stays():
    versions = [mv("v1"), mv("v2")]
    m, versions, p, _ = settle(model("v1"), versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    m.metadata.generation = 2
    stuck = [*ready(p), DeploymentState("iris-v2", "v2", 0)]
    p = plan(m, versions, stuck, IMAGE, T0)
    assert p.requeue_after is not None and 180 <= p.requeue_after <= 182
    m, versions = after(m, p, versions)
    p = plan(m, versions, stuck, IMAGE, T0 + dt.timedelta(seconds=100))
    assert p.status.serving_version == "v1" and p.status.rollout is not None
    m, versions = after(m, p, versions)
    p = plan(m, versions, stuck, IMAGE, T0 + dt.timedelta(seconds=181))
    assert p.status.serving_version == "v1" and p.status.rollout is None
    assert cond(p, "Degraded").status == "True" and cond(p, "Degraded").reason == "VersionFailed"
    assert "ProgressDeadlineExceeded" not in cond(p, "Degraded").message
    assert "0/1 pods ready after 181 s" in cond(p, "Degraded").message
    assert cond(p, "Ready").status == "True"
    update = {u.name: u for u in p.versions}["iris-v2"]
    assert update.phase == "Failed" and update.event and update.event.type == "Warning"
    available = conditions.find(update.conditions, "Available")
    assert available and available.status == "False"
    assert available.reason == "ProgressDeadlineExceeded"
    assert p.delete_deployments == ["iris-v2"] and p.events == []
    m, versions = after(m, p, versions)
    again = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(seconds=200))
    assert again.status.serving_version == "v1" and again.events == [] and again.versions == []

    # Named again (after another), it is tried again.
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v1"})})
    m, versions, p, _ = settle(m, versions, again, T0 + dt.timedelta(seconds=210))
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(seconds=220))
    assert p.status.rollout is not None and p.status.rollout.version == "v2"
    assert {u.name: u.phase for u in p.versions}["iris-v2"] == "Deploying"


def test_a_crash_looping_version_fails_at_once_and_never_takes_traffic():
    versions = [mv("v1"), mv("v2")]
    m, versions, p, _ = settle(model("v1"), versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    stuck = [*ready(p), DeploymentState("iris-v2", "v2", 0)]
    p = plan(m, versions, stuck, IMAGE, T0)
    m, versions = after(m, p, versions)
    p = plan(
        m,
        versions,
        stuck,
        IMAGE,
        T0 + dt.timedelta(seconds=5),
        crashing={"v2": "container serve crash-looping (exit code 1): boom"},
    )
    assert p.status.serving_version == "v1"
    assert "boom" in cond(p, "Degraded").message
    assert {u.name: u.phase for u in p.versions}["iris-v2"] == "Failed"


def test_a_policy_retirement_holds_until_the_spec_names_another_version():
    from ciclo.api.model import RetirementRecord

    versions = [mv("v1"), mv("v2")]
    m, versions, p, _ = settle(model("v1"), versions)
    record = RetirementRecord(
        version="v1", reason="MonitorPolicy iris", message="accuracy 0.2", action="a/v1/x", at=T0
    )
    m = m.model_copy(update={"status": m.status.model_copy(update={"retirement": record})})
    p = plan(m, versions, ready(p), IMAGE, T0)
    assert p.status.serving_version is None and p.service is None
    assert p.status.retirement == record and not p.clear_retirement
    assert [(e.reason, e.type) for e in p.events] == [("Retired", "Warning")]
    assert "MonitorPolicy iris" in p.events[0].message
    assert cond(p, "Ready").reason == "Retired"
    m, versions = after(m, p, versions)
    again = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=1))
    assert again.events == [] and again.versions == [] and again.status == p.status

    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(again), IMAGE, T0 + dt.timedelta(minutes=2))
    assert p.clear_retirement and p.status.retirement is None
    assert p.status.rollout is not None and p.status.rollout.version == "v2"


def test_switching_versions_keeps_the_previous_one_warm():
    _, versions, p = lifecycle_to_v2()
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
    assert {v.metadata.name: v.status.phase for v in versions} == {
        "iris-v1": "Standby",
        "iris-v2": "Serving",
        "iris-v3": "Registered",
    }


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
    assert p.target == "v3" and cond(p, "Degraded").status == "False"
    assert not any(u.clear_rollback for u in p.versions), "v2 stays marked while v3 is named"
    m, versions, p, _ = settle(m, versions, p, T0 + dt.timedelta(minutes=3))
    assert p.status.serving_version == "v3"

    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    p = plan(m, versions, ready(p), IMAGE, T0 + dt.timedelta(minutes=4))
    assert p.target == "v2"
    assert [u.name for u in p.versions if u.clear_rollback] == ["iris-v2"]
    m, versions, p, _ = settle(m, versions, p, T0 + dt.timedelta(minutes=4))
    assert p.status.serving_version == "v2"


def test_no_good_version_left_keeps_serving_and_says_so():
    versions = mark_bad([mv("v1")], "v1")
    _, _, p, _ = settle(model("v1"), versions)
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
    m, versions, p, _ = settle(model("v1"), versions)
    assert {v.metadata.name: v.status.phase for v in versions}["iris-v2"] == "Failed"
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
    # a real kubelet reads the file alone under the default policy: the log's last line
    # says why the fetch failed, or why the server could not load the model
    assert pod["initContainers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert d["metadata"]["ownerReferences"][0]["uid"] == "u1"


def at(uri: str, baseline: str | None = None) -> ModelVersion:
    v = mv("v1")
    spec = v.spec.model_dump(by_alias=True, exclude_none=True)
    spec["artifact"]["uri"] = uri
    if baseline:
        spec["baseline"] = {"uri": baseline}
    return ModelVersion.model_validate({"metadata": {"name": "iris-v1"}, "spec": spec})


MODELS = {"name": "models", "mountPath": "/models"}
LONG = "data." + "x" * 60  # a valid claim name; too long for a volume name


def claim(name: str, volume: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The read-only volume and mount of a claim."""
    return (
        {"name": volume, "persistentVolumeClaim": {"claimName": name, "readOnly": True}},
        {"name": volume, "mountPath": f"/mnt/pvc/{name}", "readOnly": True},
    )


DATA, AT_DATA = claim("data", "pvc-data")
OTHER, AT_OTHER = claim("other", "pvc-other")
LONG_VOLUME, AT_LONG = claim(LONG, dns_label("pvc", LONG))

# (artifact, baseline) -> the claims' volumes, the mounts of fetch and fetch-baseline
CLAIMS = [
    ("no claim, the pod as it always was", "file:///m/v1", "https://h/p.json", [], [], []),
    ("the artifact's claim, for its fetch", "pvc://data/v1.joblib", None, [DATA], [AT_DATA], None),
    (
        "one claim for both",
        "pvc://data/iris/v1.joblib",
        "pvc://data/iris/profile.json",
        [DATA],
        [AT_DATA],
        [AT_DATA],
    ),
    (
        "each fetch mounts what it reads",
        "pvc://data/v1.joblib",
        "pvc://other/profile.json",
        [DATA, OTHER],
        [AT_DATA],
        [AT_OTHER],
    ),
    ("the baseline's only", "s3://b/v1.joblib", "pvc://other/p.json", [OTHER], [], [AT_OTHER]),
    ("a long claim's volume name", f"pvc://{LONG}/m", None, [LONG_VOLUME], [AT_LONG], None),
]


@pytest.mark.parametrize(
    ("uri", "baseline", "volumes", "fetch", "fetch_baseline"),
    [c[1:] for c in CLAIMS],
    ids=[c[0] for c in CLAIMS],
)
def test_the_fetch_steps_mount_the_claims_they_read_read_only(
    uri: str,
    baseline: str | None,
    volumes: list[dict[str, Any]],
    fetch: list[dict[str, Any]],
    fetch_baseline: list[dict[str, Any]] | None,
) -> None:
    pod = manifests.deployment(model("v1"), at(uri, baseline), 1, "serving", IMAGE)["spec"][
        "template"
    ]["spec"]
    assert pod["volumes"] == [{"name": "models", "emptyDir": {}}, *volumes]
    init = {c["name"]: c["volumeMounts"] for c in pod["initContainers"]}
    assert init["fetch"] == [MODELS, *fetch]
    assert init.get("fetch-baseline") == (None if baseline is None else [MODELS, *fetch_baseline])
    # the server reads the fetched copy alone
    assert pod["containers"][0]["volumeMounts"] == [{**MODELS, "readOnly": True}]
    assert all(len(v["name"]) <= 63 for v in pod["volumes"])


def test_the_service_exposes_rest_and_the_grpc_port_the_runtime_listens_on():
    for port, grpc in ((8080, 8081), (9000, 9001), (65535, 65534)):
        m = model("v1", serving={"port": port})
        (container,) = manifests.deployment(m, mv("v1"), 1, "serving", IMAGE)["spec"]["template"][
            "spec"
        ]["containers"]
        command = container["command"]
        assert command[command.index("--grpc-port") + 1] == str(grpc)
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
            "http": port,
            "grpc": grpc,
        }
        ports = manifests.service(m, "v1")["spec"]["ports"]
        assert {p["name"]: (p["port"], p["targetPort"]) for p in ports} == {
            "http": (80, "http"),
            "grpc": (8081, "grpc"),
        }


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


def test_the_shared_prediction_store_reaches_the_pods_from_its_secret():
    store = {"feedback": {"store": {"secretKeyRef": {"name": "predictions"}}}}
    d = manifests.deployment(model("v1", monitoring=store), mv("v1"), 1, "serving", IMAGE)
    (container,) = d["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "CICLO_FEEDBACK_STORE",
            "valueFrom": {"secretKeyRef": {"name": "predictions", "key": "url"}},
        },
        {"name": "CICLO_FEEDBACK_STORE_PREFIX", "value": "ns/iris"},
    ]
    assert "predictions" not in " ".join(container["command"])  # the URL only from the Secret
    default = manifests.deployment(model("v1"), mv("v1"), 1, "serving", IMAGE)
    assert default["spec"]["template"]["spec"]["containers"][0]["env"] == []


def test_dns_label_keeps_long_or_odd_names_unique_and_valid():
    assert dns_label("iris", "v1") == "iris-v1"
    a = dns_label("iris", "1.2.0")
    b = dns_label("iris", "1-2-0")
    assert a != b and a.startswith("iris-1-2-0-")
    long = dns_label("m" * 60, "v" * 40)
    assert len(long) <= 63


def test_a_failed_write_shows_as_conditions_with_the_reason():
    from ciclo.planning.readiness import with_failure

    p = plan(model("v1"), [mv("v1")], [], IMAGE, T0)
    status = with_failure(p.status, "500 InternalError: range is full", 1, T0)
    ready_c = conditions.find(status.conditions, "Ready")
    degraded = conditions.find(status.conditions, "Degraded")
    assert ready_c and ready_c.status == "False" and ready_c.reason == "ApplyFailed"
    assert degraded and degraded.status == "True" and "range is full" in degraded.message


def test_event_keys_differ_per_transition_and_repeat_for_a_retry():
    versions = [mv("v1"), mv("v2")]
    m = model("v1")
    up = [DeploymentState("iris-v1", "v1", 1)]
    first = plan(m, versions, up, IMAGE, T0)
    retry = plan(m, versions, up, IMAGE, T0 + dt.timedelta(seconds=3))
    assert [e.key for e in first.events] == [e.key for e in retry.events], (
        "a retry meets the same Event"
    )
    m, versions = after(m, first, versions)
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v2"})})
    m.metadata.generation = 2
    both = [*up, DeploymentState("iris-v2", "v2", 1)]
    switch = plan(m, versions, both, IMAGE, T0)  # the same second as the first
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
    from ciclo.planning.pods import fetch_outcomes

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
    validated = conditions.find(update.conditions, "Validated")
    assert validated is not None and validated.reason == "FetchFailed"


def test_a_first_version_that_fails_its_fetch_stops_being_the_serving_one():
    versions = [mv("v1")]
    m = model("v1")
    p = plan(m, versions, [], IMAGE, T0)
    m, versions = after(m, p, versions)
    assert p.status.serving_version is None  # planned, not yet ready
    p = plan(m, versions, ready(p), IMAGE, T0, fetch={"v1": (False, "sha256 mismatch")})
    assert p.status.serving_version is None
    assert p.deployments == [] and p.delete_deployments == ["iris-v1"] and p.service is None
    assert cond(p, "Degraded").reason == "VersionInvalid"


def test_required_ready_never_lowers_what_the_service_answers_with():
    from ciclo.planning.model import required_ready

    assert required_ready(3, "v1", True, {"v1": 3}) == 3
    assert required_ready(3, "v1", True, {"v1": 1}) == 1, "no more than serve now"
    assert required_ready(3, "v1", True, {"v1": 0}) == 1, "at least one"
    assert required_ready(2, "v1", True, {"v1": 5}) == 2, "no more than spec.serving.replicas"
    assert required_ready(3, "v1", False, {"v1": 3}) == 1, "away from a bad version: one"
    assert required_ready(3, None, True, {}) == 1
    assert required_ready(0, "v1", True, {"v1": 0}) == 0


def test_a_rollback_while_spec_names_a_failed_version_goes_to_the_newest_good_one():
    m, versions, p = lifecycle_to_v2()
    m = m.model_copy(update={"spec": m.spec.model_copy(update={"version": "v3"})})
    up = ready(p)
    p = plan(m, versions, up, IMAGE, T0 + dt.timedelta(minutes=2))
    m, versions = after(m, p, versions)
    crash = {"v3": "container serve crash-looping (exit code 1)"}
    stuck = [*up, DeploymentState("iris-v3", "v3", 0)]
    p = plan(m, versions, stuck, IMAGE, T0 + dt.timedelta(minutes=2), crashing=crash)
    m, versions = after(m, p, versions)
    assert p.status.serving_version == "v2" and cond(p, "Degraded").reason == "VersionFailed"
    versions = mark_bad(versions, "v2")
    p = plan(m, versions, up, IMAGE, T0 + dt.timedelta(minutes=3))
    assert p.target == "v1" and p.status.serving_version == "v1", "v1 is warm and ready"
    assert [(e.reason, e.type) for e in p.events] == [("RolledBack", "Warning")]
    assert p.events[0].message.startswith("v2 rolled back to v1: ManualRollback")
