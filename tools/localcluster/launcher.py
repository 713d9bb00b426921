"""Start and stop the local control plane with kwokctl's binary runtime.

`up` and `down` are idempotent: `up` on a healthy cluster only makes sure the
nodes run; `down` on a missing cluster does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from localcluster import node, prometheus, store
from localcluster.paths import Paths

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_RANGE = "10.0.0.0/16"
# The `kubernetes` Service's ClusterIP (the range's first address): pods on the real node
# reach the API server through it, so the server's certificate must name it.
API_SERVICE_IP = "10.0.0.1"


def external_kubeconfig() -> Path | None:
    """The user's cluster, when they point KUBECONFIG at one and ask for it."""
    if os.environ.get("CICLO_USE_EXISTING_CLUSTER", "") not in ("1", "true", "yes"):
        return None
    path = os.environ.get("KUBECONFIG")
    if not path:
        raise RuntimeError("CICLO_USE_EXISTING_CLUSTER is set but KUBECONFIG is not")
    return Path(path)


def kubectl(
    paths: Paths,
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(paths.binary("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def healthy(paths: Paths, kubeconfig: Path) -> bool:
    if not kubeconfig.exists():
        return False
    try:
        result = kubectl(paths, kubeconfig, "get", "--raw", "/readyz", check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and result.stdout.strip() == "ok"


def _kwok_env(paths: Paths) -> dict[str, str]:
    env = dict(os.environ, KWOK_WORKDIR=str(paths.kwok_workdir))
    for var, name in [
        ("KWOK_KUBE_APISERVER_BINARY", "kube-apiserver"),
        ("KWOK_KUBE_CONTROLLER_MANAGER_BINARY", "kube-controller-manager"),
        ("KWOK_KUBE_SCHEDULER_BINARY", "kube-scheduler"),
        ("KWOK_ETCD_BINARY", "etcd"),
        ("KWOK_CONTROLLER_BINARY", "kwok"),
        ("KWOK_KUBECTL_BINARY", "kubectl"),
    ]:
        env[var] = str(paths.binary(name))
    return env


def _kwokctl(paths: Paths, *args: str, timeout: float = 180) -> None:
    subprocess.run(
        [str(paths.binary("kwokctl")), *args, "--name", paths.name],
        env=_kwok_env(paths),
        check=True,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def real_node_apiserver_args(paths: Paths) -> list[str]:
    """What the API server needs to reach a kubelet for exec, logs and port-forward: dial
    its InternalIP (its Hostname does not resolve here) and show a certificate the kubelet
    trusts (the admin's, signed by the cluster CA its clientCAFile names)."""
    pki = paths.kwok_workdir / "clusters" / paths.name / "pki"
    return [
        "kube-apiserver=kubelet-preferred-address-types=InternalIP",
        f"kube-apiserver=kubelet-client-certificate={pki / 'admin.crt'}",
        f"kube-apiserver=kubelet-client-key={pki / 'admin.key'}",
    ]


def kwokctl_config(paths: Paths) -> Path:
    """kwokctl's options that have no flag: the API server certificate's extra names."""
    path = paths.state / "kwokctl.yaml"
    options = {"kubeApiserverCertSANs": [API_SERVICE_IP]}
    config = {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration"}
    path.write_text(json.dumps({**config, "options": options}))  # YAML is a superset
    return path


def _has_real_node_args(paths: Paths) -> bool:
    config = paths.kwok_workdir / "clusters" / paths.name / "kwok.yaml"
    text = config.read_text() if config.exists() else ""
    return "kubelet-preferred-address-types" in text and "kubeApiserverCertSANs" in text


def fake_node(index: int) -> dict[str, object]:
    name = f"kwok-node-{index}"
    resources = {"cpu": "64", "memory": "512Gi", "pods": "2000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        # A /16 per node: the default shared /24 runs out at 254 fake pods. These
        # addresses are never dialled; only the real node's pods (10.246.0.N) serve.
        "spec": {"podCIDR": f"10.{100 + index}.0.0/16"},
        "status": {"allocatable": resources, "capacity": resources},
    }


def wait_node_ready(paths: Paths, kubeconfig: Path, node: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = kubectl(paths, kubeconfig, "get", "node", node, "-o", "json", check=False)
        if result.returncode == 0:
            conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return
        time.sleep(0.5)
    raise TimeoutError(f"node {node} not Ready after {timeout:.0f} s")


def up(
    paths: Paths | None = None,
    *,
    fake_nodes: int = 2,
    with_prometheus: bool = False,
    with_store: bool = False,
    real_node: bool = True,
) -> Path:
    """Start (or reuse) the cluster with its real node (kubelet and containerd: node.py),
    and Prometheus and the shared prediction store when asked; return its kubeconfig path."""
    external = external_kubeconfig()
    paths = paths or Paths.from_env()
    if external is not None:
        if not healthy(paths, external):
            raise RuntimeError(f"the cluster in {external} does not answer /readyz")
        return external

    paths.state.mkdir(parents=True, exist_ok=True)
    kubeconfig = paths.kubeconfig
    if real_node or with_prometheus or with_store:
        node.ensure_bridge()  # where the node's pods reach the host's services
    if real_node and healthy(paths, kubeconfig) and not _has_real_node_args(paths):
        down(paths)  # made without the API server flags a kubelet needs
    if not healthy(paths, kubeconfig):
        # A half-started or stopped cluster is cheaper to recreate than to repair.
        down(paths)
        paths.state.mkdir(parents=True, exist_ok=True)
        extra_args = [
            # The default /24 runs out at 254 Services.
            f"kube-apiserver=service-cluster-ip-range={SERVICE_RANGE}",
            # kwokctl's binary runtime lets KWOK manage every node; keep it off the real node.
            "kwok-controller=manage-all-nodes=false",
            f"kwok-controller=manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        ]
        if real_node:
            extra_args += real_node_apiserver_args(paths)
        create = ["--config", str(kwokctl_config(paths)), "create", "cluster", "--runtime"]
        create += ["binary", "--kubeconfig", str(kubeconfig)]
        create += ["--wait", "120s", "--disable-qps-limits"]
        for arg in extra_args:
            create += ["--extra-args", arg]
        _kwokctl(paths, *create)
    nodes = {"apiVersion": "v1", "kind": "List", "items": [fake_node(i) for i in range(fake_nodes)]}
    kubectl(
        paths,
        kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=localcluster",
        "-f",
        "-",
        stdin=json.dumps(nodes),
    )
    if real_node:
        start = time.monotonic()
        node.up(paths, kubeconfig)
        wait_node_ready(paths, kubeconfig, node.NODE, timeout=120)
        print(f"node {node.NODE} Ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
    if with_prometheus:
        prometheus.start(paths, kubeconfig)
    if with_store:
        store.start(paths)
    return kubeconfig


def down(paths: Paths | None = None) -> None:
    """Remove the cluster and everything it started; harmless when nothing runs."""
    if external_kubeconfig() is not None:
        return
    paths = paths or Paths.from_env()
    prometheus.stop(paths)
    store.stop(paths)
    if node.NodePaths.of(paths).root.exists():  # the real node ran: drain it through the API
        node.down(paths, paths.kubeconfig if healthy(paths, paths.kubeconfig) else None)
    if (paths.kwok_workdir / "clusters" / paths.name).exists():
        _kwokctl(paths, "delete", "cluster", "--kubeconfig", str(paths.kubeconfig))
    paths.kubeconfig.unlink(missing_ok=True)
