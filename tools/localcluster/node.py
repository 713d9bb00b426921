"""A real node: Debian's containerd and runc with the pinned kubelet, kube-proxy and CoreDNS.

`python -m localcluster up` adds a Node, `ciclo-node`, whose pods are
containers from local images (nodeimage.py) on a CNI bridge of their own. It is
tainted `ciclo.dev/real-node=true:NoSchedule` and labelled `ciclo.dev/real-node=true`:
only pods that tolerate the taint (and, to be sure to land there, select the label)
run on it, so the KWOK nodes keep every other pod. Its pods resolve
Services as NAME.NAMESPACE.svc.cluster.local through CoreDNS (nodedns.py) on the bridge.

Everything it writes lives under <state>/node, except what the kernel keeps
elsewhere (nodeclean.py undoes that on `down`) and containerd's images: its root
is kept in the cache (<cache>/containerd), so a new cluster need not import the
ciclo image again; `down` removes its containers. Why each setting: docs/real-node.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ciclo.config import DEFAULT_IMAGE
from localcluster import bridge, image, nodeclean, nodedns, nodeimage
from localcluster.paths import Paths, pid_alive

NODE = "ciclo-node"
TAINT = "ciclo.dev/real-node"
# KWOK's pod CIDRs are 10.10N/16; Services' ClusterIPs 10.0.0.0/16.
BRIDGE = "ciclo1"
SUBNET = "10.246.0.0/24"
# The bridge's host side: the pods' gateway and cluster DNS server, the node's IP (kubelet,
# kube-proxy), and where host services the pods use listen (Prometheus, the store).
HOST_ADDRESS = "10.246.0.1"
CNI_NETWORK = "ciclo-real-node"
# What a pod (or a Model's spec.serving, a training template) adds to run here.
PLACEMENT: dict[str, object] = {
    "nodeSelector": {TAINT: "true"},
    "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
}
CNI_BIN = "/usr/lib/cni"
PACKAGES = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    f"{CNI_BIN}/bridge": "containernetworking-plugins",
    str(nodeimage.BUSYBOX): "busybox-static",
    "gcc": "gcc",
}


@dataclass(frozen=True)
class NodePaths:
    root: Path
    images: Path  # containerd's root: its content store, snapshots and metadata

    @classmethod
    def of(cls, paths: Paths) -> NodePaths:
        return cls(paths.state / "node", paths.cache / "containerd")

    @property
    def socket(self) -> Path:
        """`make image` imports into this socket: keep the path."""
        return self.root / "containerd.sock"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni"

    @property
    def ipam(self) -> Path:
        return self.root / "ipam"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    def pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.socket), "-n", "k8s.io"]


def ensure_packages() -> None:
    missing = sorted({pkg for path, pkg in PACKAGES.items() if not shutil.which(path)})
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], check=True, capture_output=True, env=env
    )


def containerd_config(np: NodePaths) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    state = np.containerd / "state"
    return f"""version = 2
root = "{np.images}"
state = "{state}"

[grpc]
  address = "{np.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{np.containerd / "opt"}"

[{cri}]
  sandbox_image = "{nodeimage.PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj, and fails without this.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state, not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{state / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{np.cni_conf}"
"""


def cni_config(np: NodePaths) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerade: pods talk to the host and to each other, never outside.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(np.ipam),
                    "ranges": [[{"subnet": SUBNET, "gateway": HOST_ADDRESS}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def kubelet_config(np: NodePaths, ca: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # KEP-5573: kubelet 1.35+ refuses cgroup v1 unless told; this machine's controllers
        # are on v1 hierarchies (only an empty cgroup2 is mounted), so it must be told.
        "failCgroupV1": False,
        # containerd 1.6 answers RuntimeConfig with Unimplemented: kubelet uses this one.
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{np.socket}",
        "address": HOST_ADDRESS,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "podLogsDir": str(np.pod_logs),
        "failSwapOn": False,
        # Pods (dnsPolicy ClusterFirst, the default) get CoreDNS in their resolv.conf.
        "clusterDNS": [HOST_ADDRESS],
        "clusterDomain": nodedns.DOMAIN,
        "registerWithTaints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}],
        # The API server calls in with the admin certificate (launcher.real_node_apiserver_args).
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
    }


def kube_proxy_config(kubeconfig: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE,
        "bindAddress": HOST_ADDRESS,
        "mode": "iptables",
        "clusterCIDR": SUBNET,
        # Zeros leave the host's conntrack sysctls alone (root here may not set them anyway).
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        # NodePorts on the bridge's host address only; none on loopback (no route_localnet).
        "nodePortAddresses": [f"{HOST_ADDRESS}/32"],
        # A pod calling a Service whose endpoint is on its own bridge gets the answer back
        # through the host: without masquerade the reply would skip the un-DNAT.
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
    }


def _start(np: NodePaths, name: str, argv: list[str]) -> None:
    if pid_alive(np.pid_file(name)):
        return
    with np.log(name).open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    np.pid_file(name).write_text(str(proc.pid))


def _exited(pid: int) -> bool:
    """Reaps it when it is our child (up and down in one process, as in a test): a zombie
    still answers kill(pid, 0)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stop(np: NodePaths, name: str, grace: float = 10) -> None:
    pid = pid_alive(np.pid_file(name))
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not _exited(pid):
            time.sleep(0.1)
        if not _exited(pid):
            os.killpg(pid, signal.SIGKILL)
            _exited(pid)
    np.pid_file(name).unlink(missing_ok=True)


def _wait_socket(np: NodePaths, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run([*np.ctr(), "version"], capture_output=True).returncode == 0:
            return
        if not pid_alive(np.pid_file("containerd")):
            break
        time.sleep(0.2)
    raise RuntimeError(f"containerd did not start: see {np.log('containerd')}")


def start_containerd(np: NodePaths) -> None:
    for d in (np.containerd, np.images, np.cni_conf, np.ipam, np.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    (np.root / "containerd.toml").write_text(containerd_config(np))
    conflist = np.cni_conf / f"10-{CNI_NETWORK}.conflist"
    conflist.write_text(json.dumps(cni_config(np), indent=2))
    _start(np, "containerd", ["containerd", "--config", str(np.root / "containerd.toml")])
    _wait_socket(np)
    images = subprocess.run(
        [*np.ctr(), "images", "ls", "-q"], check=True, capture_output=True, text=True
    ).stdout.split()
    if nodeimage.PAUSE_IMAGE not in images:
        nodeimage.import_archive(np.ctr(), nodeimage.pause_archive())
    if nodeimage.BUSYBOX_IMAGE not in images:
        nodeimage.import_archive(np.ctr(), nodeimage.busybox_archive())


def ensure_bridge() -> None:
    """Made before the CNI bridge plugin would make it on the first pod, so that CoreDNS,
    kubelet and the host's services can bind its address; the plugin takes a bridge that
    has its gateway address as is."""
    bridge.ensure(BRIDGE, HOST_ADDRESS)


def start_coredns(paths: Paths, np: NodePaths, kubeconfig: Path) -> None:
    """CoreDNS as a host process, like kubelet: pods need it before any of them can run it."""
    ensure_bridge()
    if not pid_alive(np.pid_file("coredns")):
        config = nodedns.corefile(HOST_ADDRESS, kubeconfig, nodedns.free_port())
        (np.root / "Corefile").write_text(config)
    argv = [str(paths.binary("coredns")), "-conf", str(np.root / "Corefile")]
    _start(np, "coredns", argv)


def archive_image_id(archive: Path) -> str | None:
    """The image's ID (its config's digest), as the docker-archive's manifest names it:
    read from the tar's index, without reading its layers."""
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json")
        entries = json.load(manifest) if manifest is not None else []
    config = entries[0].get("Config", "") if entries else ""
    return "sha256:" + config.removesuffix(".json").removeprefix("sha256:") if config else None


def containerd_image_id(np: NodePaths, name: str) -> str | None:
    """The ID of the image containerd has under `name`, from the manifest it points at."""
    listed = subprocess.run([*np.ctr(), "images", "ls"], capture_output=True, text=True)
    target = next(
        (ln.split()[2] for ln in listed.stdout.splitlines()[1:] if ln.split()[:1] == [name]), None
    )
    if target is None:
        return None
    # `--index-name` makes the name point at an index holding the archive's one manifest.
    for _ in range(2):
        content = subprocess.run([*np.ctr(), "content", "get", target], capture_output=True)
        if content.returncode != 0:
            return None
        found = json.loads(content.stdout)
        if "config" in found:
            config: str = found["config"]["digest"]
            return config
        if not found.get("manifests"):
            return None
        target = found["manifests"][0]["digest"]
    return None


def import_ciclo_image(paths: Paths, np: NodePaths) -> None:
    """The operator's default runtime image from `make image`, so serving pods find it
    (IfNotPresent); imported again only when the archive holds another image."""
    archive = image.archive_path(paths)
    if not archive.exists():
        print(f"[node] no {DEFAULT_IMAGE}: run `make image` to serve Models here", file=sys.stderr)
        return
    wanted = archive_image_id(archive)
    if wanted is not None and containerd_image_id(np, DEFAULT_IMAGE) == wanted:
        return
    start = time.monotonic()
    image.import_archive(archive, np.socket, np.ctr()[0], name=DEFAULT_IMAGE)
    took = time.monotonic() - start
    print(f"[node] {DEFAULT_IMAGE} imported in {took:.1f} s", file=sys.stderr)


def start_kubelet_and_proxy(paths: Paths, np: NodePaths, kubeconfig: Path) -> None:
    ca = paths.kwok_workdir / "clusters" / paths.name / "pki" / "ca.crt"
    config = np.root / "kubelet.yaml"
    config.write_text(json.dumps(kubelet_config(np, ca), indent=2))  # YAML is a superset
    argv = [
        str(paths.binary("kubelet")),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={np.kubelet}",
        f"--cert-dir={np.kubelet / 'pki'}",  # not under --root-dir unless told
        f"--hostname-override={NODE}",
        f"--node-ip={HOST_ADDRESS}",
        f"--node-labels={TAINT}=true,type=real",
    ]
    _start(np, "kubelet", argv)
    proxy = np.root / "kube-proxy.yaml"
    proxy.write_text(json.dumps(kube_proxy_config(kubeconfig), indent=2))
    _start(np, "kube-proxy", [str(paths.binary("kube-proxy")), f"--config={proxy}"])


def up(paths: Paths, kubeconfig: Path) -> None:
    """Start containerd, CoreDNS, kubelet and kube-proxy, and wait for CoreDNS to answer;
    the caller waits for the Node to be Ready."""
    for binary in ("kubelet", "kube-proxy", "coredns"):
        paths.binary(binary)  # fail early, naming `make`, when it was never built
    ensure_packages()
    np = NodePaths.of(paths)
    np.root.mkdir(parents=True, exist_ok=True)
    nodeclean.remember_host(np.root)
    start_containerd(np)
    start_coredns(paths, np, kubeconfig)
    import_ciclo_image(paths, np)
    start_kubelet_and_proxy(paths, np, kubeconfig)
    pid_file = np.pid_file("coredns")
    nodedns.wait_ready(HOST_ADDRESS, lambda: pid_alive(pid_file) is not None, np.log("coredns"))


def drain(paths: Paths, kubeconfig: Path, timeout: float = 30) -> None:
    """Let the kubelet stop the node's pods (and their sandboxes' networks) itself."""
    kubectl = str(paths.binary("kubectl"))
    argv = [kubectl, "--kubeconfig", str(kubeconfig), "delete", "pods", "--all-namespaces"]
    argv += [f"--field-selector=spec.nodeName={NODE}", "--grace-period=1", "--timeout=20s"]
    subprocess.run(argv, capture_output=True, timeout=timeout)
    np = NodePaths.of(paths)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        tasks = subprocess.run([*np.ctr(), "tasks", "ls", "-q"], capture_output=True, text=True)
        if tasks.returncode != 0 or not tasks.stdout.split():
            return
        time.sleep(0.5)


def down(paths: Paths, kubeconfig: Path | None) -> None:
    """Stop the node and undo what it did to the host; harmless when it never ran."""
    np = NodePaths.of(paths)
    if not np.root.exists():
        return
    kubelet = pid_alive(np.pid_file("kubelet"))
    if kubelet and kubeconfig is not None and kubeconfig.exists():
        drain(paths, kubeconfig)
    stop(np, "kube-proxy")
    stop(np, "kubelet")
    stop(np, "coredns")
    if pid_alive(np.pid_file("containerd")):
        nodeclean.remove_tasks(np.ctr())
    stop(np, "containerd")
    nodeclean.clean(
        np.root, socket=np.socket, containerd_state=np.containerd / "state", bridge=BRIDGE
    )
