"""The three ways people install ciclo, on the local cluster: `helm install` (with `helm test`
and `helm uninstall`), the chart's templates through a server-side dry run, and
`kubectl apply --server-side -f dist/install.yaml`.

The operator runs from the chart's Deployment in a container from the ciclo image on the
real node (nodeSelector and toleration), so the session's host operator is stopped first:
two operators would fight.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from waiting import wait_for

from localcluster import launcher, node
from localcluster.paths import Paths

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ciclo"
ON_REAL_NODE: dict[str, Any] = node.PLACEMENT
INSTANCE = "app.kubernetes.io/instance=ciclo"


def helm(
    paths: Paths, kubeconfig: Path, *args: str, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(paths.binary("helm")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert out.returncode == 0, f"helm {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out


def get(paths: Paths, kubeconfig: Path, *what: str) -> dict[str, Any]:
    out = launcher.kubectl(paths, kubeconfig, "get", *what, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def operator_pod(paths: Paths, kubeconfig: Path, namespace: str) -> dict[str, Any] | None:
    pods = get(paths, kubeconfig, "pods", "-n", namespace, "-l", INSTANCE)["items"]
    ready = [
        p
        for p in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]
    return ready[0] if ready else None


def model_ready(paths: Paths, kubeconfig: Path, namespace: str) -> bool:
    model = get(paths, kubeconfig, "model/iris", "-n", namespace)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in model.get("status", {}).get("conditions", [])
    )


def serve_the_example(paths: Paths, kubeconfig: Path, namespace: str) -> None:
    """The operator in the pod does the work: the iris example becomes Ready."""
    iris = str(ROOT / "examples" / "iris")
    launcher.kubectl(paths, kubeconfig, "apply", "-n", namespace, "-f", iris)
    wait_for(
        "the example Model to become Ready", lambda: model_ready(paths, kubeconfig, namespace), 60
    )
    launcher.kubectl(paths, kubeconfig, "delete", "-n", namespace, "-f", iris, "--wait", timeout=90)


def leftovers(paths: Paths, kubeconfig: Path, namespace: str) -> list[str]:
    kinds = "deployments,services,serviceaccounts,roles,rolebindings,pods"
    names = get(paths, kubeconfig, kinds, "-n", namespace, "-l", INSTANCE)["items"]
    cluster = get(paths, kubeconfig, "clusterroles,clusterrolebindings", "-l", INSTANCE)["items"]
    return [f"{m['kind']}/{m['metadata']['name']}" for m in [*names, *cluster]]


def test_chart_passes_a_server_side_dry_run(
    paths: Paths, kubeconfig: Path, crds: None, namespace: str
) -> None:
    # The chart's CRDs as Helm installs them first (kopf's peering CRD is the one not yet
    # there); the templates then as one server-side dry run, objects in their own namespaces.
    out = launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "-f", str(CHART / "crds"), check=False
    )
    assert out.returncode == 0, out.stderr
    limited = ["--set", f"watchNamespaces={{{namespace}}}", "--set", "replicaCount=2"]
    for values in ([], limited):
        # --skip-tests: the test hook's pod names a ServiceAccount a dry run never creates
        # (`helm test` runs it for real below)
        rendered = helm(
            paths,
            kubeconfig,
            "template",
            "ciclo",
            str(CHART),
            "-n",
            namespace,
            "--skip-tests",
            *values,
        ).stdout
        out = launcher.kubectl(
            paths, kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False
        )
        assert out.returncode == 0, out.stderr
        assert "deployment.apps/ciclo created (server dry run)" in out.stdout


def helm_install(
    paths: Paths, kubeconfig: Path, namespace: str, tmp_path: Path, values: dict[str, Any]
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    helm(paths, kubeconfig, "install", "ciclo", str(CHART), "-n", namespace, "-f", str(path),
         "--wait", "--timeout", "120s")  # fmt: skip


def test_helm_install_test_and_uninstall(
    paths: Paths,
    kubeconfig: Path,
    crds: None,
    namespace: str,
    without_session_operator: Any,
    tmp_path: Path,
) -> None:
    assert not without_session_operator.running()
    try:
        helm_install(paths, kubeconfig, namespace, tmp_path, ON_REAL_NODE)
        pod = operator_pod(paths, kubeconfig, namespace)
        assert pod is not None, "helm install --wait returned without a ready operator pod"
        assert pod["spec"]["nodeName"] == node.NODE
        assert pod["spec"]["containers"][0]["command"][:2] == ["ciclo", "run"]
        serve_the_example(paths, kubeconfig, namespace)
        # `helm test`: its pod (on the real node too) asks the operator's metrics endpoints
        out = helm(paths, kubeconfig, "test", "ciclo", "-n", namespace, "--timeout", "120s")
        assert "TEST SUITE:     ciclo-test-metrics" in out.stdout
        assert "Phase:          Succeeded" in out.stdout.split("ciclo-test-metrics", 1)[1]
        # and it can fail: with the operator scaled to zero, nothing answers
        launcher.kubectl(
            paths, kubeconfig, "scale", "-n", namespace, "deploy/ciclo", "--replicas=0"
        )
        wait_for(
            "the operator pod to go",
            lambda: not get(paths, kubeconfig, "pods", "-n", namespace, "-l", INSTANCE)["items"],
            60,
        )
        out = helm(
            paths, kubeconfig, "test", "ciclo", "-n", namespace, "--timeout", "60s", check=False
        )
        assert out.returncode != 0, out.stdout
        # Helm keeps a failed test's objects for inspection; remove them as a person would
        launcher.kubectl(
            paths,
            kubeconfig,
            "delete",
            "-n",
            namespace,
            "--ignore-not-found",
            "--wait",
            "pod/ciclo-test-metrics",
            "sa/ciclo-test",
            "role/ciclo-test",
            "rolebinding/ciclo-test",
        )
    finally:
        helm(
            paths, kubeconfig, "uninstall", "ciclo", "-n", namespace, "--wait", "--timeout", "120s"
        )
    try:
        wait_for("no operator objects", lambda: not leftovers(paths, kubeconfig, namespace), 60)
    except AssertionError:
        raise AssertionError(f"left behind: {leftovers(paths, kubeconfig, namespace)}") from None
    # Helm keeps CRDs (and so everyone's models) on uninstall.
    crd_names = {c["metadata"]["name"] for c in get(paths, kubeconfig, "crds")["items"]}
    assert {"models.ciclo.dev", "modelversions.ciclo.dev", "monitorpolicies.ciclo.dev"} <= crd_names


def test_kubectl_apply_dist_install_yaml(
    paths: Paths,
    kubeconfig: Path,
    crds: None,
    namespace: str,
    without_session_operator: Any,
    deleted_namespaces: list[str],
) -> None:
    """dist/install.yaml applied server-side; the only change is where the pod may run (this
    cluster's one real node is tainted), made to the documents before they are applied."""
    docs = [d for d in yaml.safe_load_all((ROOT / "dist" / "install.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["template"]["spec"].update(ON_REAL_NODE)
    manifest = yaml.safe_dump_all(docs)
    not_crds = yaml.safe_dump_all([d for d in docs if d["kind"] != "CustomResourceDefinition"])
    try:
        out = launcher.kubectl(
            paths, kubeconfig, "apply", "--server-side", "-f", "-", stdin=manifest, check=False
        )
        assert out.returncode == 0, out.stderr
        pod = wait_for(
            "the operator pod to be ready",
            lambda: operator_pod(paths, kubeconfig, "ciclo-system"),
            90,
        )
        assert pod["spec"]["nodeName"] == node.NODE
        assert pod["spec"]["serviceAccountName"] == "ciclo"
        serve_the_example(paths, kubeconfig, namespace)
    finally:
        # everything but the CRDs, which the rest of the session's tests use
        launcher.kubectl(
            paths,
            kubeconfig,
            "delete",
            "--wait",
            "--ignore-not-found",
            "-f",
            "-",
            stdin=not_crds,
            timeout=120,
        )
        deleted_namespaces.append("ciclo-system")
    assert not leftovers(paths, kubeconfig, "ciclo-system")


def install_serve_uninstall(
    paths: Paths,
    kubeconfig: Path,
    crds: None,
    namespace: str,
    tmp_path: Path,
    values: dict[str, Any],
) -> None:
    """The namespaced RBAC (a Role in the watched namespace only) and kopf's peering between
    two replicas are each enough for the operator to serve a Model."""
    chosen = {**ON_REAL_NODE, **values}
    out = launcher.kubectl(
        paths, kubeconfig, "apply", "--server-side", "-f", str(CHART / "crds"), check=False
    )
    assert out.returncode == 0, out.stderr
    try:
        helm_install(paths, kubeconfig, namespace, tmp_path, chosen)
        pods = get(paths, kubeconfig, "pods", "-n", namespace, "-l", INSTANCE)["items"]
        assert len(pods) == chosen.get("replicaCount", 1)
        assert {p["spec"]["nodeName"] for p in pods} == {node.NODE}
        serve_the_example(paths, kubeconfig, namespace)
    finally:
        helm(
            paths, kubeconfig, "uninstall", "ciclo", "-n", namespace, "--wait", "--timeout", "120s"
        )
    wait_for("no operator objects", lambda: not leftovers(paths, kubeconfig, namespace), 60)


def test_helm_install_watching_one_namespace(
    paths: Paths,
    kubeconfig: Path,
    crds: None,
    namespace: str,
    without_session_operator: Any,
    tmp_path: Path,
) -> None:
    install_serve_uninstall(
        paths, kubeconfig, crds, namespace, tmp_path, {"watchNamespaces": [namespace]}
    )


def test_helm_install_two_replicas_with_peering(
    paths: Paths,
    kubeconfig: Path,
    crds: None,
    namespace: str,
    without_session_operator: Any,
    tmp_path: Path,
) -> None:
    install_serve_uninstall(paths, kubeconfig, crds, namespace, tmp_path, {"replicaCount": 2})
