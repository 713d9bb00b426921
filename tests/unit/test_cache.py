"""The operator's memory of what it watches (controllers/cache.py): reads after a namespace's
first LIST cost no request, the newest resourceVersion wins, and a converged Model's
reconcile or a policy's evaluation asks the API server for nothing it watches."""

from __future__ import annotations

import copy

from fakekube import FakeKube, any_kube
from test_controllers_fake import NS, Source, model, version, world

from ciclo.config import Config
from ciclo.controllers import model as model_controller
from ciclo.controllers import modelversion, monitorpolicy
from ciclo.controllers.cache import MODEL_OF, CachedKube, Store
from ciclo.kube.client import MODEL_VERSIONS, MODELS, PODS, Json


def reads(kube: FakeKube) -> int:
    return sum(kube.count("get", p) for p in ("models", "services")) + sum(
        kube.count("list", p)
        for p in ("models", "modelversions", "deployments", "services", "pods")
    )


def test_a_namespace_is_listed_once_then_read_from_memory() -> None:
    fake = FakeKube((MODELS, model("v1")), (MODEL_VERSIONS, version("v1")))
    cached = CachedKube(any_kube(fake))
    for _ in range(3):
        assert cached.get(MODELS, NS, "iris")["spec"]["version"] == "v1"  # type: ignore[index]
        assert [
            v["metadata"]["name"] for v in cached.list(MODEL_VERSIONS, NS, fields="spec.model=iris")
        ] == ["iris-v1"]
    assert (fake.count("list", "models"), fake.count("list", "modelversions")) == (1, 1)
    assert fake.count("get", "models") == 0
    assert cached.list(MODEL_VERSIONS, NS, fields="spec.model=other") == []
    assert cached.get(MODELS, NS, "absent") is None


def test_the_newest_resource_version_wins_and_a_deletion_is_not_undone_by_an_echo() -> None:
    fake = FakeKube((MODELS, model("v1")))
    cached = CachedKube(any_kube(fake))
    old = copy.deepcopy(fake.obj(MODELS, NS, "iris"))
    written = cached.apply(
        MODELS,
        {"metadata": {"name": "iris", "namespace": NS}, "status": {"servingVersion": "v1"}},
        status=True,
    )
    cached.observe(MODELS, old)  # a watch event from before the write, arriving late
    assert cached.get(MODELS, NS, "iris")["status"]["servingVersion"] == "v1"  # type: ignore[index]
    cached.observe(MODELS, written, deleted=True)
    cached.observe(MODELS, old)
    assert cached.get(MODELS, NS, "iris") is None


def test_selectors_the_memory_cannot_answer_go_to_the_api_server() -> None:
    pod = {"metadata": {"name": "p", "namespace": NS, "labels": {"app": "x"}}}
    fake = FakeKube((PODS, pod), (MODELS, model("v1")))
    cached = CachedKube(any_kube(fake))
    assert cached.list(PODS, NS, labels="app=x") == [fake.obj(PODS, NS, "p")], "not ciclo's"
    cached.list(PODS, NS, labels="app.kubernetes.io/managed-by!=ciclo")  # set-based
    cached.list(MODELS)  # cluster-wide: the resync's, from the server
    cached.list(MODELS)
    assert fake.count("list", "pods") == 2 and fake.count("list", "models") == 2
    managed = "app.kubernetes.io/managed-by=ciclo,ciclo.dev/model=iris"
    assert cached.list(PODS, NS, labels=managed) == []
    assert cached.list(PODS, NS, labels=managed) == []
    assert fake.count("list", "pods") == 3, "ciclo's pods: listed once, then from memory"


def test_a_converged_model_and_its_policy_cost_no_reads_of_what_is_watched() -> None:
    fake = world()
    cached = CachedKube(any_kube(fake))
    kube = any_kube(cached)
    config = Config(image="img")
    model_controller.reconcile(kube, config, NS, "iris")
    model_controller.reconcile(kube, config, NS, "iris")
    before, writes = reads(fake), len(fake.calls)
    for _ in range(3):
        model_controller.reconcile(kube, config, NS, "iris")
        monitorpolicy.evaluate_policy(
            kube, config, NS, "guard", lambda *_: None, lambda *_: Source(0.97)
        )
    assert reads(fake) == before, fake.calls[writes:]
    assert fake.count("get", "monitorpolicies") == 0
    assert fake.count("get", "services") == 0, "the Service, from memory"


def test_a_models_objects_are_found_by_its_index_which_follows_relabels_and_deletions() -> None:
    def pod(name: str, model_name: str, resource_version: str = "1") -> Json:
        labels = {"app.kubernetes.io/managed-by": "ciclo", "ciclo.dev/model": model_name}
        meta = {"name": name, "namespace": NS, "labels": labels}
        return {"metadata": {**meta, "resourceVersion": resource_version}}

    fake = FakeKube(
        (PODS, pod("a-0", "a")), (PODS, pod("b-0", "b")), (MODEL_VERSIONS, version("v1"))
    )
    cached = CachedKube(any_kube(fake))

    def pods(model_name: str) -> list[str]:
        labels = f"app.kubernetes.io/managed-by=ciclo,ciclo.dev/model={model_name}"
        return sorted(p["metadata"]["name"] for p in cached.list(PODS, NS, labels=labels))

    def versions(model_name: str) -> list[str]:
        found = cached.list(MODEL_VERSIONS, NS, fields=f"spec.model={model_name}")
        return [v["metadata"]["name"] for v in found]

    assert (pods("a"), pods("b"), pods("c")) == (["a-0"], ["b-0"], [])
    cached.observe(PODS, pod("a-0", "b", "99"))  # relabelled: now the other Model's
    assert (pods("a"), pods("b")) == ([], ["a-0", "b-0"])
    cached.observe(PODS, pod("a-0", "b", "100"), deleted=True)
    assert pods("b") == ["b-0"]
    other = version("v2")
    other["spec"]["model"] = "other"
    cached.observe(MODEL_VERSIONS, other)
    assert (versions("iris"), versions("other")) == (["iris-v1"], ["iris-v2"])
    assert fake.count("list", "pods") == 1 and fake.count("list", "modelversions") == 1


def test_the_store_hands_out_only_the_models_objects_when_the_kind_is_indexed() -> None:
    store = Store(MODEL_OF[MODEL_VERSIONS])
    for i in range(50):
        v = version(f"v{i}")
        v["spec"]["model"] = f"m{i % 5}"
        store.put(v)
    assert {o["metadata"]["name"] for o in store.held(NS, "m3")} == {
        f"iris-v{i}" for i in range(3, 50, 5)
    }
    assert len(store.held(NS, None)) == 50


def test_the_registry_asks_the_api_server_before_saying_a_model_does_not_exist() -> None:
    fake = FakeKube((MODEL_VERSIONS, version("v1")))
    cached = CachedKube(any_kube(fake))
    assert cached.get(MODELS, NS, "iris") is None  # the namespace is in memory now
    fake.put(MODELS, model("v1"))  # created; its watch event not delivered yet
    modelversion.reconcile(any_kube(cached), fake.obj(MODEL_VERSIONS, NS, "iris-v1"))
    found = fake.obj(MODEL_VERSIONS, NS, "iris-v1")["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in found] == [
        ("ModelFound", "True", "Found")
    ]
    assert fake.count("get", "models") == 1
    assert cached.get(MODELS, NS, "iris") is not None and fake.count("get", "models") == 1
