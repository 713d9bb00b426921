"""The real node (kubelet and containerd): pods from local images on a CNI bridge, and a
`down` that leaves the host as it found it. Only on request: pytest -m realnode."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from localcluster import launcher, node, nodedns, nodeimage
from localcluster.paths import Paths

pytestmark = pytest.mark.realnode

ON_REAL_NODE = {**node.PLACEMENT, "terminationGracePeriodSeconds": 1}


# Processes the node runs, by their comm (the shim's is cut to 15 characters).
RUNTIME_NAMES = {
    "kubelet",
    "kube-proxy",
    "coredns",
    "containerd",
    "containerd-shim",
    "pause",
    "httpd",
}


def host_state(node_dir: Path) -> dict[str, set[str]]:
    """What kubelet, containerd, runc and CNI could leave on the host."""
    # Only where the node mounts: other work on the machine (an image build) mounts too.
    places = (str(node_dir), "/run/netns", "/run/containerd", "/var/lib/kubelet")
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    mounts = {p for p in (ln.split()[4] for ln in mountinfo) if p.startswith(places)}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    chains = set()
    for tool in ("iptables-save", "ip6tables-save"):
        saved = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        chains |= {f"{tool} {ln.split()[0]}" for ln in saved.splitlines() if ln.startswith(":")}
    procs = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue  # gone meanwhile
            named = comm in RUNTIME_NAMES and state != "Z"  # a zombie holds nothing
            if named or str(node_dir).encode() in cmdline:
                procs.add(f"{proc.name} {cmdline[:80]!r}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    fixed = ["/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/run/containerd"]
    fixed += [str(p) for p in Path("/run/netns").glob("*")]
    return {
        "mounts": mounts,
        "links": {ln.split(":")[1].strip() for ln in links.stdout.splitlines()},
        "chains": chains,
        "nft tables": set(tables.splitlines()),
        "cgroups": {str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")},
        "processes": procs,
        "paths": {p for p in fixed if Path(p).exists()},
        "ip_forward": {Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()},
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Paths, Path, dict[str, set[str]]]]:
    """A cluster with the real node, and the host's state from before it started."""
    paths = Paths.from_env()
    paths.cache.mkdir(parents=True, exist_ok=True)
    with (paths.cache / "cluster.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        launcher.down(paths)
        before = host_state(node.NodePaths.of(paths).root)
        start = time.monotonic()
        kubeconfig = launcher.up(paths, fake_nodes=1)
        print(f"up with the real node Ready: {time.monotonic() - start:.1f} s")
        try:
            yield paths, kubeconfig, before
        finally:
            launcher.down(paths)


def kubectl(cluster: tuple[Paths, Path, object], *args: str, stdin: str | None = None) -> str:
    paths, kubeconfig, _ = cluster
    return launcher.kubectl(paths, kubeconfig, *args, stdin=stdin).stdout


def pod(name: str, command: str, **spec: object) -> str:
    container = {"name": "c", "image": nodeimage.BUSYBOX_IMAGE, "command": ["sh", "-c", command]}
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}
    return json.dumps(body | {"spec": {**spec, "containers": [container]}})


def pod_json(cluster: tuple[Paths, Path, object], name: str) -> Any:
    return json.loads(kubectl(cluster, "get", "pod", name, "-o", "json"))


def test_pods_run_on_the_bridge_and_reach_each_other(cluster):
    web = "echo hello-from-web > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"
    client = "trap 'exit 0' TERM; while true; do sleep 1; done"
    kubectl(cluster, "apply", "-f", "-", stdin=pod("web", web, **ON_REAL_NODE))
    kubectl(cluster, "apply", "-f", "-", stdin=pod("client", client, **ON_REAL_NODE))
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/web", "pod/client", "--timeout=60s")
    web_pod, client_pod = pod_json(cluster, "web"), pod_json(cluster, "client")
    for p in (web_pod, client_pod):
        assert p["spec"]["nodeName"] == node.NODE
        assert p["status"]["phase"] == "Running"
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(node.SUBNET)
    ip = web_pod["status"]["podIP"]
    out = kubectl(cluster, "exec", "client", "--", "wget", "-qO-", f"http://{ip}:8080/index.html")
    assert out.strip() == "hello-from-web"


def test_a_service_reaches_a_pod_through_kube_proxy(cluster):
    kubectl(cluster, "label", "pod", "web", "app=web")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(service))
    ip = json.loads(kubectl(cluster, "get", "service", "web", "-o", "json"))["spec"]["clusterIP"]

    def answers() -> bool:
        paths, kubeconfig, _ = cluster
        argv = ["exec", "client", "--", "wget", "-qO-", f"http://{ip}/index.html"]
        result = launcher.kubectl(paths, kubeconfig, *argv, check=False)
        return result.stdout.strip() == "hello-from-web"

    wait_for(f"the Service's ClusterIP {ip} to answer from a pod", answers, timeout=30)


def test_a_pod_reaches_a_service_by_its_dns_name(cluster):
    """After the Service test: `web` in `default`, by its full name and by its short one."""
    ip = json.loads(kubectl(cluster, "get", "service", "web", "-o", "json"))["spec"]["clusterIP"]
    resolv = kubectl(cluster, "exec", "client", "--", "cat", "/etc/resolv.conf")
    assert f"nameserver {node.HOST_ADDRESS}" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    fqdn = f"web.default.svc.{nodedns.DOMAIN}"
    out = kubectl(cluster, "exec", "client", "--", "nslookup", fqdn)
    assert ip in out, out
    for name in (fqdn, "web"):
        argv = ["exec", "client", "--", "wget", "-qO-", f"http://{name}/index.html"]
        assert kubectl(cluster, *argv).strip() == "hello-from-web", name


def test_coredns_serves_the_cluster_only_on_the_bridge(cluster):
    paths, _, _ = cluster
    ip = json.loads(kubectl(cluster, "get", "service", "web", "-o", "json"))["spec"]["clusterIP"]
    fqdn = f"web.default.svc.{nodedns.DOMAIN}"
    assert nodedns.query(fqdn, node.HOST_ADDRESS) == (0, [ip])
    assert nodedns.query(fqdn, node.HOST_ADDRESS, tcp=True) == (0, [ip])
    # No upstream: a name outside the cluster is refused at once, not forwarded.
    assert nodedns.query("example.com", node.HOST_ADDRESS)[0] == nodedns.NXDOMAIN
    missing = f"nothing.default.svc.{nodedns.DOMAIN}"
    assert nodedns.query(missing, node.HOST_ADDRESS)[0] == nodedns.NXDOMAIN
    np = node.NodePaths.of(paths)
    pid = np.pid_file("coredns").read_text().strip()
    sockets = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True)
    local = {ln.split()[4] for ln in sockets.stdout.splitlines() if f"pid={pid}," in ln}
    health = re.search(r"health (127\.0\.0\.1:\d+)", (np.root / "Corefile").read_text())
    assert health is not None
    assert local == {f"{node.HOST_ADDRESS}:53", health[1]}, local
    with urllib.request.urlopen(f"http://{health[1]}/health", timeout=5) as reply:
        assert reply.read() == b"OK"


def test_only_pods_that_tolerate_the_taint_land_there(cluster):
    kubectl(cluster, "apply", "-f", "-", stdin=pod("elsewhere", "sleep 1"))
    untolerated = {"nodeSelector": ON_REAL_NODE["nodeSelector"]}
    kubectl(cluster, "apply", "-f", "-", stdin=pod("refused", "sleep 1", **untolerated))
    wait_for(
        "the plain pod scheduled", lambda: pod_json(cluster, "elsewhere")["spec"].get("nodeName")
    )
    assert pod_json(cluster, "elsewhere")["spec"]["nodeName"].startswith("kwok-node-")
    time.sleep(2)  # the scheduler has had its chance
    assert "nodeName" not in pod_json(cluster, "refused")["spec"]


def test_down_leaves_nothing(cluster):
    paths, _, before = cluster
    np = node.NodePaths.of(paths)
    pids = [int(np.pid_file(n).read_text()) for n in ("kubelet", "coredns", "containerd")]
    start = time.monotonic()
    launcher.down(paths)
    print(f"down: {time.monotonic() - start:.1f} s")
    after = host_state(np.root)
    for kind in before:
        assert after[kind] - before[kind] == set(), kind
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    assert all(p.suffix == ".log" for p in np.root.iterdir())  # only the logs stay
