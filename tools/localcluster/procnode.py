"""A node whose pods run as local processes (test and demo tooling, not product code).

The agent registers a Node that KWOK does not manage, keeps its Lease fresh and
runs every pod bound to it as processes on this machine, each pod in a network
namespace of its own whose address on the host bridge (10.244.0.N) is its pod
IP. (Loopback addresses would be simpler, but the API server rejects them in
EndpointSlices, so a Service could never reach such a pod.) It does what a kubelet
must for a Deployment to become a reachable Service: init containers in order,
the containers' command and args with the pod's env, volumes bind-mounted at
their mountPath in a private mount namespace, HTTP/TCP/exec readiness probes,
restarts per restartPolicy, graceful stop when the pod goes.

What it does not do: images (the command runs from the host's PATH), resource
limits, users and capabilities from securityContext, liveness probes, ports
other than on the pod's own address, and volumes whose mountPath would hide what
the pods run from (an emptyDir at /tmp over a checkout in /tmp: the host's
directory stands in, with a warning in the node's log).

The kubernetes client is untyped, so pods are handled as their JSON (dicts).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

import kubernetes

log = logging.getLogger("procnode")

KUBE_VERSION = "v1.36.4"
LEASE_SECONDS = 40
# A container that ran this long before it exited restarts after the shortest back-off.
BACKOFF_RESET = 10.0
Json = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, others stay."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def field_ref(pod: Json, path: str, ip: str) -> str:
    values = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": ip,
        "status.hostIP": GATEWAY,
    }
    if path in values:
        return str(values[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))
    raise ValueError(f"fieldRef {path} is not supported by the process node")


def hides(mount_path: str, needed: list[Path]) -> Path | None:
    """The host path a volume mounted at `mount_path` would hide, if any. Pods here share
    the host's filesystem: an emptyDir at /tmp over a checkout in /tmp/x would hide the
    very program the pod runs."""
    target = Path(os.path.normpath(mount_path))
    return next((p for p in needed if p == target or target in p.parents), None)


class NotYet(Exception):
    """Something the pod needs is not there yet (a ConfigMap, a Secret): retry."""


BRIDGE = "ciclo0"
GATEWAY = "10.244.0.1"
API_SERVER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
PREFIX = "10.244.0."


class IpPool:
    """10.244.0.2-254 on the bridge; .1 is the host's side."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[str] = set()

    def take(self, wanted: str | None) -> str:
        with self._lock:
            if wanted and wanted.startswith(PREFIX) and wanted not in self._used:
                self._used.add(wanted)
                return wanted
            for n in range(2, 255):
                ip = f"{PREFIX}{n}"
                if ip not in self._used:
                    self._used.add(ip)
                    return ip
        raise RuntimeError("no address left on the pod bridge")

    def give(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class Netns:
    """A pod's network namespace, wired to the host bridge by a veth pair."""

    def __init__(self, uid: str, ip: str) -> None:
        self.name = f"ciclo-{uid[:13]}"
        self.host_end = f"cv{uid[:8]}"
        self.ip = ip

    def create(self) -> None:
        self.delete()
        sh("ip", "netns", "add", self.name)
        sh(
            "ip",
            "link",
            "add",
            self.host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.name,
        )
        sh("ip", "link", "set", self.host_end, "master", BRIDGE, "up")
        inside = ("ip", "netns", "exec", self.name)
        sh(*inside, "ip", "addr", "add", f"{self.ip}/24", "dev", "eth0")
        sh(*inside, "ip", "link", "set", "eth0", "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "route", "add", "default", "via", GATEWAY)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


class Container:
    """One container as a process; its status in the pod's JSON shape."""

    def __init__(self, spec: Json) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.ready = False
        self.started_at = ""
        self.state: Json = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Json = {}
        self.logfile = Path(os.devnull)
        self.due = 0.0  # monotonic time of the next probe, or of the restart after a back-off
        self.backoff = 0.5
        self.launched = 0.0  # monotonic time of the last start

    def start(self, argv: list[str], env: dict[str, str], cwd: str | None, logfile: Path) -> None:
        self.logfile = logfile
        with logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = now()
        self.launched = time.monotonic()
        self.state = {"running": {"startedAt": self.started_at}}
        self.due = time.monotonic() + float(
            self.spec.get("readinessProbe", {}).get("initialDelaySeconds", 0)
        )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def message_file(self, mounts: dict[str, Path]) -> Path | None:
        """The host file behind terminationMessagePath, when the path lies in one of the
        container's volumes (the pods share the host's filesystem; the kubelet's own
        bind-mounted file at /dev/termination-log is not made here)."""
        path = str(self.spec.get("terminationMessagePath") or "")
        for m in self.spec.get("volumeMounts", []) if path else []:
            root = str(m["mountPath"]).rstrip("/") + "/"
            if path.startswith(root) and m["name"] in mounts:
                return Path(mounts[m["name"]]) / path[len(root) :]
        return None

    def mark_exited(self, code: int, mounts: dict[str, Path] | None = None) -> None:
        self.ready = False
        terminated: Json = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": self.started_at,
            "finishedAt": now(),
        }
        # As the kubelet does: the file's first 4096 bytes, whatever the exit code.
        found = self.message_file(mounts or {})
        if found is not None and found.is_file():
            message = found.read_bytes()[:4096].decode(errors="replace")
            if message.strip():
                terminated["message"] = message
        if code != 0 and "message" not in terminated:
            # terminationMessagePolicy FallbackToLogsOnError: the log's last line says why.
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
            if lines:
                terminated["message"] = lines[-1][-1024:]
        self.state = {"terminated": terminated}

    def stop(self, grace: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def status(self) -> Json:
        status: Json = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"process://{self.proc.pid}" if self.proc else "",
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restarts,
            "state": self.state,
        }
        if self.last_state:
            status["lastState"] = self.last_state
        return status


class PodRunner(threading.Thread):
    """Runs one pod until it is deleted or the agent stops."""

    def __init__(self, agent: Agent, pod: Json) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.ip = agent.ips.take(pod.get("status", {}).get("podIP"))
        self.netns = Netns(self.uid, self.ip)
        self.dir = agent.state / self.uid
        self.stopping = threading.Event()
        self.grace = float(min(pod["spec"].get("terminationGracePeriodSeconds", 30), 10))
        self.inits = [Container(c) for c in pod["spec"].get("initContainers", [])]
        self.mains = [Container(c) for c in pod["spec"]["containers"]]
        self.initialized = not self.inits
        self.phase = "Pending"
        self.start_time = pod.get("status", {}).get("startTime") or now()
        self._last_status: Json = {}
        self.mounts: dict[str, Path] = {}

    # -- volumes -----------------------------------------------------------
    def prepare_volumes(self) -> None:
        ns = self.pod["metadata"]["namespace"]
        for vol in self.pod["spec"].get("volumes", []):
            path = self.dir / "volumes" / vol["name"]
            if path.exists() and "emptyDir" in vol:
                self.mounts[vol["name"]] = path
                continue
            path.mkdir(parents=True, exist_ok=True)
            if "hostPath" in vol:
                path = Path(vol["hostPath"]["path"])
            elif "configMap" in vol:
                self._write_items(path, self._config_map(ns, vol["configMap"]), vol["configMap"])
            elif "secret" in vol:
                self._write_items(
                    path, self._secret(ns, vol["secret"], "secretName"), vol["secret"]
                )
            elif "projected" in vol:
                for source in vol["projected"]["sources"]:
                    if "serviceAccountToken" in source:
                        sat = source["serviceAccountToken"]
                        token = self.agent.token(
                            self.pod, sat.get("audience"), sat.get("expirationSeconds", 3607)
                        )
                        (path / sat["path"]).write_text(token)
                    elif "configMap" in source:
                        self._write_items(
                            path, self._config_map(ns, source["configMap"]), source["configMap"]
                        )
                    elif "secret" in source:
                        self._write_items(
                            path, self._secret(ns, source["secret"], "name"), source["secret"]
                        )
                    elif "downwardAPI" in source:
                        for item in source["downwardAPI"]["items"]:
                            value = field_ref(self.pod, item["fieldRef"]["fieldPath"], self.ip)
                            (path / item["path"]).write_text(value)
            elif "emptyDir" not in vol:
                raise ValueError(
                    f"volume {vol['name']}: only emptyDir, hostPath, configMap, "
                    "secret and projected volumes run on the process node"
                )
            self.mounts[vol["name"]] = path

    def _config_map(self, ns: str, ref: Json) -> dict[str, str]:
        try:
            return dict(self.agent.core.read_namespaced_config_map(ref["name"], ns).data or {})
        except ApiException as e:
            if e.status == 404 and ref.get("optional"):
                return {}
            raise NotYet(f"configmap {ref['name']}: {e.reason}") from e

    def _secret(self, ns: str, ref: Json, key: str) -> dict[str, str]:
        try:
            data = self.agent.core.read_namespaced_secret(ref[key], ns).data or {}
        except ApiException as e:
            if e.status == 404 and ref.get("optional"):
                return {}
            raise NotYet(f"secret {ref[key]}: {e.reason}") from e
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    @staticmethod
    def _write_items(path: Path, data: dict[str, str], ref: Json) -> None:
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] in data:
                target = path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])

    # -- processes ---------------------------------------------------------
    def env_of(self, spec: Json) -> dict[str, str]:
        ns = self.pod["metadata"]["namespace"]
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "KUBECONFIG" and not k.startswith("KUBERNETES_")
        }
        env.update(self.agent.service_env)
        env["HOSTNAME"] = self.pod["metadata"]["name"]
        for source in spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._config_map(ns, source["configMapRef"])
            else:
                data = self._secret(ns, source["secretRef"], "name")
            env.update({prefix + k: v for k, v in data.items()})
        for var in spec.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
                continue
            ref = var.get("valueFrom", {})
            if "fieldRef" in ref:
                env[var["name"]] = field_ref(self.pod, ref["fieldRef"]["fieldPath"], self.ip)
            elif "configMapKeyRef" in ref:
                env[var["name"]] = self._config_map(ns, ref["configMapKeyRef"]).get(
                    ref["configMapKeyRef"]["key"], ""
                )
            elif "secretKeyRef" in ref:
                env[var["name"]] = self._secret(ns, ref["secretKeyRef"], "name").get(
                    ref["secretKeyRef"]["key"], ""
                )
            elif var.get("name"):
                env[var["name"]] = ""
        return env

    def argv_of(self, spec: Json, env: dict[str, str]) -> list[str]:
        argv = [expand(a, env) for a in [*spec.get("command", []), *spec.get("args", [])]]
        if not spec.get("command"):
            raise ValueError(
                f"container {spec['name']}: the process node has no images, so it needs a command"
            )
        binds = []
        for m in spec.get("volumeMounts", []):
            if m["name"] not in self.mounts:
                continue
            hidden = hides(m["mountPath"], self.agent.needed)
            if hidden is None:
                binds.append((self.mounts[m["name"]], m["mountPath"]))
            else:  # the host's directory stands in for the volume
                log.warning(
                    "pod %s: volume %s not mounted at %s: it would hide %s",
                    self.pod["metadata"]["name"], m["name"], m["mountPath"], hidden,
                )  # fmt: skip
        # A private mount namespace puts each volume at its mountPath, and the pod's own
        # /etc/hosts at /etc/hosts (as a kubelet writes one), for this process only.
        script = "; ".join(
            [
                f"mount --bind {shlex.quote(str(self.hosts_file()))} /etc/hosts",
                *(
                    f"mkdir -p {shlex.quote(d)} && mount --bind {shlex.quote(str(s))} "
                    f"{shlex.quote(d)}"
                    for s, d in binds
                ),
            ]
        )
        return self.netns.wrap(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-ec",
                f'{script}; exec "$@"',
                "sh",
                *argv,
            ]
        )

    def hosts_file(self) -> Path:
        """The API server's in-cluster names point at the bridge's host side: its serving
        certificate names kubernetes.default.svc but no address of ours, and there is no
        cluster DNS or kube-proxy to give the `kubernetes` Service's address a meaning."""
        path: Path = self.dir / "hosts"
        if not path.exists():
            names = " ".join(API_SERVER_NAMES)
            pod = self.pod["metadata"]["name"]
            path.write_text(f"127.0.0.1 localhost\n{GATEWAY} {names}\n{self.netns.ip} {pod}\n")
        return path

    def launch(self, c: Container) -> None:
        env = self.env_of(c.spec)
        c.start(
            self.argv_of(c.spec, env), env, c.spec.get("workingDir"), self.dir / f"{c.name}.log"
        )

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # the thread must report, not vanish
            log.exception("pod %s failed", self.pod["metadata"]["name"])
        finally:
            for c in [*self.inits, *self.mains]:
                c.stop(self.grace)
            self.netns.delete()
            self.agent.ips.give(self.ip)

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns.create()
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while not self.stopping.is_set():
            try:
                self.prepare_volumes()
                break
            except NotYet as e:
                self.report(message=str(e))
                self.stopping.wait(2)
            except ValueError as e:
                self.phase = "Failed"
                self.report(message=str(e))
                return
        for c in self.inits:
            if not self._run_to_completion(c, policy):
                return
        self.initialized = True
        self.phase = "Running"
        for c in self.mains:
            self.launch(c)
        self.report()
        while not self.stopping.wait(0.2):
            for c in self.mains:
                code = c.exited()
                if code is not None and "running" in c.state:
                    c.mark_exited(code, self.mounts)
                    # As the kubelet does, a container that ran well for a while starts
                    # its back-off afresh (the kubelet waits 10 min at a 5 min cap; here
                    # the cap is 30 s): a killed operator comes back in half a second.
                    if time.monotonic() - c.launched >= BACKOFF_RESET:
                        c.backoff = 0.5
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        c.last_state, c.state = c.state, {"waiting": {"reason": "CrashLoopBackOff"}}
                        c.restarts += 1
                        c.due = time.monotonic() + c.backoff
                        c.backoff = min(c.backoff * 2, 30)
                elif time.monotonic() < c.due:
                    continue
                elif c.state.get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    self.launch(c)
                elif "running" in c.state:
                    probe = c.spec.get("readinessProbe")
                    c.ready = self.probe(c, probe) if probe else True
                    c.due = time.monotonic() + (
                        float(probe.get("periodSeconds", 10)) if probe else 1.0
                    )
            if all("terminated" in c.state for c in self.mains):
                codes = [c.state["terminated"]["exitCode"] for c in self.mains]
                self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
                self.report()
                return
            self.report()

    def _run_to_completion(self, c: Container, policy: str) -> bool:
        delay = 0.5
        while not self.stopping.is_set():
            self.launch(c)
            self.report()
            while c.exited() is None and not self.stopping.wait(0.2):
                pass
            if self.stopping.is_set():
                return False
            code = c.exited() or 0
            c.mark_exited(code, self.mounts)
            if code == 0:
                self.report()
                return True
            if policy == "Never":
                self.phase = "Failed"
                self.report()
                return False
            c.last_state, c.state = c.state, {"waiting": {"reason": "CrashLoopBackOff"}}
            c.restarts += 1
            self.report()
            self.stopping.wait(delay)
            delay = min(delay * 2, 30)
        return False

    def probe(self, c: Container, probe: Json) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        ports = {p.get("name"): p["containerPort"] for p in c.spec.get("ports", [])}
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = ports.get(get["port"], get["port"])
                scheme, host = get.get("scheme", "HTTP").lower(), get.get("host", self.ip)
                url = f"{scheme}://{host}:{port}{get.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= int(response.status) < 400
            if "tcpSocket" in probe:
                port = ports.get(probe["tcpSocket"]["port"], probe["tcpSocket"]["port"])
                with socket.create_connection((self.ip, int(port)), timeout=timeout):
                    return True
            if "exec" in probe:
                env = self.env_of(c.spec)
                return (
                    subprocess.run(
                        self.netns.wrap(probe["exec"]["command"]),
                        env=env,
                        timeout=timeout,
                        capture_output=True,
                    ).returncode
                    == 0
                )
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired, ValueError):
            return False
        return True

    # -- status ------------------------------------------------------------
    def report(self, message: str = "") -> None:
        ready = self.phase == "Running" and all(c.ready for c in self.mains)
        stamp = now()

        def cond(kind: str, ok: bool) -> Json:
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
            }

        status: Json = {
            "phase": self.phase,
            "hostIP": GATEWAY,
            "hostIPs": [{"ip": GATEWAY}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", self.initialized),
                cond("ContainersReady", ready),
                cond("Ready", ready),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [c.status() for c in self.mains],
            "initContainerStatuses": [c.status() for c in self.inits],
            "message": message,
        }
        # Keep transition times from the last report where the status did not change.
        last = {c["type"]: c for c in self._last_status.get("conditions", [])}
        for c in status["conditions"]:
            if c["type"] in last and last[c["type"]]["status"] == c["status"]:
                c["lastTransitionTime"] = last[c["type"]]["lastTransitionTime"]
        if status == self._last_status:
            return
        try:
            self.agent.core.patch_namespaced_pod_status(
                self.pod["metadata"]["name"], self.pod["metadata"]["namespace"], {"status": status}
            )
            self._last_status = status
        except ApiException as e:
            if e.status != 404:
                log.warning("status of %s: %s", self.pod["metadata"]["name"], e.reason)


class Agent:
    def __init__(self, node: str, state: Path, kubeconfig: str) -> None:
        kubernetes.config.load_kube_config(kubeconfig)
        self.client = kubernetes.client.ApiClient()
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.coordination = kubernetes.client.CoordinationV1Api(self.client)
        self.node = node
        self.state = state
        # what pods' processes run from: the Python environment, this checkout, the state
        self.needed = [
            Path(sys.prefix).resolve(),
            Path(__file__).resolve().parents[2],
            state.resolve(),
        ]
        self.ips = IpPool()
        self.runners: dict[str, PodRunner] = {}
        self.stopping = threading.Event()
        port = self.client.configuration.host.rpartition(":")[2]
        # Pods reach the API server on the bridge, by a name its certificate holds (each
        # pod's /etc/hosts maps it to the bridge): there is no kube-proxy.
        self.service_env = {
            "KUBERNETES_SERVICE_HOST": API_SERVER_NAMES[2],
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        }

    def node_manifest(self) -> Json:
        cpus = str(os.cpu_count() or 1)
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
        resources = {"cpu": cpus, "memory": memory, "pods": "250"}
        uname = os.uname()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "type": "process",
                    "ciclo.dev/process-node": "true",
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "spec": {
                "taints": [
                    {"key": "ciclo.dev/process-node", "value": "true", "effect": "NoSchedule"}
                ]
            },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [
                    {"type": "InternalIP", "address": GATEWAY},
                    {"type": "Hostname", "address": self.node},
                ],
                "nodeInfo": {
                    "kubeletVersion": KUBE_VERSION,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "kernelVersion": uname.release,
                    "osImage": uname.sysname,
                    "containerRuntimeVersion": "process://1",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
                "conditions": self.node_conditions(),
            },
        }

    @staticmethod
    def node_conditions() -> list[Json]:
        stamp = now()
        rows = [
            ("Ready", "True", "KubeletReady"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]
        return [
            {
                "type": t,
                "status": s,
                "reason": r,
                "message": "process node",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
            for t, s, r in rows
        ]

    def register(self) -> None:
        manifest = self.node_manifest()
        try:
            self.core.create_node(manifest)
        except ApiException as e:
            if e.status != 409:
                raise
        self.core.patch_node_status(self.node, {"status": manifest["status"]})
        log.info("node %s registered", self.node)

    def heartbeat(self) -> None:
        last_status = 0.0
        while not self.stopping.wait(0 if last_status == 0 else 10):
            try:
                self.renew_lease()
                if time.monotonic() - last_status > 30:
                    self.core.patch_node_status(
                        self.node, {"status": {"conditions": self.node_conditions()}}
                    )
                    last_status = time.monotonic()
            except ApiException as e:
                log.warning("heartbeat: %s", e.reason)
            except Exception:
                log.exception("heartbeat")

    def renew_lease(self) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_now(),
            },
        }
        try:
            self.coordination.patch_namespaced_lease(
                self.node, "kube-node-lease", {"spec": body["spec"]}
            )
        except ApiException as e:
            if e.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)

    def token(self, pod: Json, audience: str | None, seconds: int) -> str:
        spec: Json = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        try:
            response = self.core.create_namespaced_service_account_token(
                pod["spec"].get("serviceAccountName", "default"),
                pod["metadata"]["namespace"],
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiException as e:
            raise NotYet(f"service account token: {e.reason}") from e
        return str(response.status.token)

    def events(self) -> Iterator[tuple[str, Json]]:
        """Pods bound to this node: a relist, then a watch from its resourceVersion."""
        selector = f"spec.nodeName={self.node}"
        while not self.stopping.is_set():
            try:
                listing = self.client.sanitize_for_serialization(
                    self.core.list_pod_for_all_namespaces(
                        field_selector=selector, _request_timeout=30
                    )
                )
            except Exception as e:  # the API server restarting: try again shortly
                log.warning("listing pods: %s", e)
                time.sleep(1)
                continue
            seen = set()
            for pod in listing["items"]:
                seen.add(pod["metadata"]["uid"])
                yield "MODIFIED", pod
            for uid in set(self.runners) - seen:
                yield "DELETED", self.runners[uid].pod
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                    # A watch the server forgets to end must not stall the node: the
                    # client gives up on a silent connection and relists.
                    _request_timeout=(5, 45),
                ):
                    if self.stopping.is_set():
                        return
                    yield event["type"], event["raw_object"]
            except ApiException as e:
                if e.status != 410:  # 410 Gone: the resourceVersion expired; relist
                    log.warning("watch: %s", e.reason)
                    time.sleep(1)
            except Exception as e:  # a read timeout or a dropped connection: relist
                log.warning("watch: %s", e)

    def serve(self) -> None:
        self.register()
        threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True).start()
        for kind, pod in self.events():
            try:
                self.dispatch(kind, pod)
            except Exception:  # one bad pod must not take the node down
                log.exception("pod %s", pod["metadata"].get("name"))

    def dispatch(self, kind: str, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner:
                runner.stopping.set()
                self.runners.pop(uid)
        elif pod["metadata"].get("deletionTimestamp"):
            if runner and not runner.stopping.is_set():
                threading.Thread(target=self.finish, args=(runner,), daemon=True).start()
            elif runner is None or not runner.is_alive():
                self.force_delete(pod)
        elif runner is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            runner = PodRunner(self, pod)
            self.runners[uid] = runner
            runner.start()

    def finish(self, runner: PodRunner) -> None:
        """Graceful deletion: stop the processes, then remove the pod as a kubelet does."""
        runner.stopping.set()
        runner.join(runner.grace + 5)
        self.force_delete(runner.pod)
        shutil.rmtree(runner.dir, ignore_errors=True)

    def force_delete(self, pod: Json) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                pod["metadata"]["name"],
                pod["metadata"]["namespace"],
                # In the body: with a body, the API server ignores the query parameter.
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}},
            )

    def shutdown(self) -> None:
        self.stopping.set()
        for runner in list(self.runners.values()):
            runner.stopping.set()
        for runner in list(self.runners.values()):
            runner.join(runner.grace + 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", default="ciclo-process-node")
    parser.add_argument("--state", type=Path, required=True, help="per-pod logs and volumes")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    agent = Agent(args.node, args.state, args.kubeconfig)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping every pod", signum)
        agent.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.serve()


if __name__ == "__main__":
    main()
