"""One local cluster per test session, a namespace per test.

The cluster starts only when a test asks for it (integration and e2e tests), and
is removed at the end of the session even when tests fail, unless
CICLO_KEEP_CLUSTER=1 keeps it for the next run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kubernetes
from localcluster import launcher
from localcluster.paths import Paths


@pytest.fixture(scope="session")
def paths() -> Paths:
    return Paths.from_env()


@pytest.fixture(scope="session")
def kubeconfig(paths: Paths) -> Iterator[Path]:
    path = launcher.up(paths)
    try:
        yield path
    finally:
        if os.environ.get("CICLO_KEEP_CLUSTER") != "1":
            launcher.down(paths)


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(str(kubeconfig))


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def apps(api: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api)


@pytest.fixture
def namespace(core: kubernetes.client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


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
