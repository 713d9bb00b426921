"""One local cluster per test session, a namespace per test.

The cluster starts only when a test asks for it (integration and e2e tests), and
is removed at the end of the session even when tests fail, unless
CICLO_KEEP_CLUSTER=1 keeps it for the next run.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.realnode import ArtifactServer

import kubernetes
from ciclo.kube.client import SECRETS, Json, Kube, NamespaceTerminating
from localcluster import launcher, volumes
from localcluster.paths import Paths


@pytest.fixture(scope="session")
def paths() -> Paths:
    return Paths.from_env()


@pytest.fixture(scope="session")
def kubeconfig(paths: Paths) -> Iterator[Path]:
    # One cluster per machine (the real node's bridge and the operator's ports are
    # fixed): a second test session waits here for the first rather than tearing its
    # cluster down under it.
    paths.cache.mkdir(parents=True, exist_ok=True)
    with (paths.cache / "cluster.lock").open("w") as lock:
        # a parent holding the lock for a chain of runs says so (flock is per open file)
        if os.environ.get("CICLO_CLUSTER_LOCK_HELD") != "1":
            fcntl.flock(lock, fcntl.LOCK_EX)
        if os.environ.get("CICLO_KEEP_CLUSTER") != "1":
            launcher.down(paths)  # a fresh cluster: nothing left from a demo or an earlier run
        path = launcher.up(paths)
        try:
            yield path
        finally:
            if os.environ.get("CICLO_KEEP_CLUSTER") != "1":
                launcher.down(paths)


@pytest.fixture(scope="session")
def artifacts(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArtifactServer]:
    """Model files for pods on the real node, over HTTP from the host."""
    server = ArtifactServer(tmp_path_factory.mktemp("served"))
    yield server
    server.close()


@pytest.fixture
def models_claim(
    core: kubernetes.client.CoreV1Api, namespace: str, tmp_path: Path
) -> Iterator[Path]:
    """The claim `models` in the test's namespace, bound to a host directory on the real node
    (returned): pvc://models/PATH is PATH in it, for pods, and for `ciclo` on the host with
    CICLO_PVC_ROOT set to its parent."""
    directory = volumes.prepare(tmp_path / "pvc" / volumes.CLAIM)
    volume, claim = volumes.manifests(namespace, directory)
    core.create_persistent_volume(volume)
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    yield directory
    core.delete_persistent_volume(volume["metadata"]["name"])  # once its claim is gone


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(str(kubeconfig))


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def apps(api: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api)


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def crds(paths: Paths, kubeconfig: Path) -> None:
    """ciclo's CRDs, as generated in crds/, installed and established."""
    launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    launcher.kubectl(
        paths,
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=ciclo",
    )


@pytest.fixture
def custom(api: kubernetes.client.ApiClient, crds: None) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


class Operator:
    """`ciclo run` as a real process against the test cluster; can be killed and restarted."""

    def __init__(
        self, kubeconfig: Path, log: Path, args: tuple[str, ...] = (), resync: float = 20
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.args = args
        self.resync = resync
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            CICLO_METRICS_PORT="18000",
            CICLO_RESYNC_SECONDS=str(self.resync),
        )
        command = [sys.executable, "-m", "ciclo.cli.main", "run", "--health-port", "18081"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*command, *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:18081/healthz", timeout=1):
                    return
            except OSError:
                assert self.proc.poll() is None, f"the operator exited: see {self.log}"
                time.sleep(0.2)
        raise TimeoutError(f"the operator did not answer /healthz: see {self.log}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reconciles(self) -> float:
        """Models reconciled so far, from the operator's own metrics."""
        with urllib.request.urlopen("http://127.0.0.1:18000/metrics", timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith('ciclo_reconciles_total{kind="Model",result="ok"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: Path, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The session's `ciclo run`, started by the first test that needs it."""
    op = Operator(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    yield op
    op.stop()


@pytest.fixture
def operator(operator_process: Operator) -> Operator:
    if not operator_process.running():
        operator_process.start()
    return operator_process


@pytest.fixture
def without_session_operator(operator_process: Operator) -> Operator:
    """For tests that install an operator of their own (Helm, the demo): two would fight.
    The next test that asks for `operator` starts it again."""
    operator_process.stop()
    return operator_process


@pytest.fixture(scope="session")
def deleted_namespaces(
    core_session: kubernetes.client.CoreV1Api, operator_process: Operator
) -> Iterator[list[str]]:
    """Namespaces the tests deleted; at the end, every one must be gone.

    Waiting once for all of them (they delete in parallel) is what shows a finalizer
    or a pod that never lets go. The operator runs meanwhile, to release its finalizers."""
    names: list[str] = []
    yield names
    if names and not operator_process.running():
        operator_process.start()
    deadline = time.monotonic() + 120
    left = set(names)
    while left and time.monotonic() < deadline:
        present = {n.metadata.name for n in core_session.list_namespace().items}
        left &= present
        time.sleep(0.5)
    assert not left, f"namespaces still terminating after 120 s: {sorted(left)}"


@pytest.fixture(scope="session")
def core_session(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def namespace(
    core: kubernetes.client.CoreV1Api, request: pytest.FixtureRequest, deleted_namespaces: list[str]
) -> Iterator[str]:
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
    deleted_namespaces.append(name)


def secret(name: str, **meta: Any) -> Json:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, **meta}}


@pytest.fixture
def terminating(
    core: kubernetes.client.CoreV1Api, api: kubernetes.client.ApiClient
) -> Iterator[tuple[str, Json]]:
    """A namespace being deleted as admission sees it (creates there are refused), held
    there by a Secret's finalizer until the test ends; with that Secret."""
    ns = f"t-terminating-{uuid.uuid4().hex[:5]}"
    kube = Kube(api)
    core.create_namespace({"metadata": {"name": ns}})
    held = kube.create(SECRETS, ns, secret("held", finalizers=["ciclo.dev/test-hold"]))
    core.delete_namespace(ns)
    try:
        deadline = time.monotonic() + 30
        while True:  # until admission's namespace cache has seen the deletion
            try:
                kube.create(SECRETS, ns, secret(f"s-{uuid.uuid4().hex[:5]}"))
            except NamespaceTerminating:
                break
            assert time.monotonic() < deadline, f"creates in {ns} still accepted after 30 s"
            time.sleep(0.1)
        yield ns, held
    finally:
        core.patch_namespaced_secret("held", ns, {"metadata": {"finalizers": None}})
