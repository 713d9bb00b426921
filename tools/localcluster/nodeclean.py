"""Undo what the real node did to the host, whether or not it stopped cleanly.

kubelet, containerd's shims, runc and the CNI plugins leave things outside the node's
directory: processes in the kubepods cgroups, mounts, a bridge and its veths, iptables
chains, cgroup directories, net.ipv4.ip_forward=1 and symlinks in /var/log/containers.
Each step here removes only what is ours: found under our directory, on our bridge,
named by our socket, or one of the chains kubelet and the portmap plugin create.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup")
# kubelet's chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and
# kube-proxy's (KUBE-SERVICES, KUBE-SVC-..., KUBE-SEP-...), in iptables and ip6tables;
# portmap's. No other Kubernetes runs on this host, so every KUBE- chain is ours.
CHAIN_PREFIXES = ("KUBE-", "CNI-HOSTPORT-", "CNI-DN-")
# iptables-nft makes its tables on first use; nft names them by family.
FAMILIES = {"iptables": "ip", "ip6tables": "ip6"}
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.removeprefix("table ").strip() for line in out.splitlines()}


def remember_host(root: Path) -> None:
    """What `down` puts back: forwarding (the bridge plugin turns it on) and which nftables
    tables existed (kubelet's first iptables call makes filter, nat and mangle)."""
    saved = root / "ip_forward.before"
    if not saved.exists():
        saved.write_text(IP_FORWARD.read_text())
        (root / "nft-tables.before").write_text("\n".join(sorted(nft_tables())))


def remove_tasks(ctr: list[str]) -> None:
    """Kill every container containerd still runs, while it can still clean up after them."""
    tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True)
    for task in tasks.stdout.split():
        subprocess.run([*ctr, "tasks", "kill", "-a", "-s", "SIGKILL", task], capture_output=True)
    for task in tasks.stdout.split():
        subprocess.run([*ctr, "tasks", "rm", "-f", task], capture_output=True)
    containers = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True)
    for container in containers.stdout.split():
        subprocess.run([*ctr, "containers", "rm", container], capture_output=True)


def kubepods() -> list[Path]:
    """kubelet's top cgroup in every hierarchy (cgroupfs driver, cgroup root /)."""
    return [d / "kubepods" for d in CGROUPS.iterdir() if (d / "kubepods").is_dir()]


def pod_pids() -> set[int]:
    pids: set[int] = set()
    for top in kubepods():
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def shim_pids(socket: Path) -> set[int]:
    """containerd's shims outlive containerd; each names our socket on its command line."""
    needle = str(socket).encode()
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes():
                    pids.add(int(proc.name))
    return pids


def kill_leftovers(socket: Path) -> None:
    for _ in range(50):
        pids = pod_pids() | shim_pids(socket)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise RuntimeError(f"processes of the real node would not die: {sorted(pids)}")


def remove_task_leftovers(containerd_state: Path) -> None:
    """What a shim killed before containerd cleaned up after it leaves outside our state:
    its socket (named in the task's `address` file) and the sandbox's CNI result cache."""
    for task in containerd_state.glob("io.containerd.runtime.v2.task/*/*"):
        with contextlib.suppress(OSError):
            address = (task / "address").read_text().strip()
            if address.startswith("unix:///run/containerd/s/"):
                Path(address.removeprefix("unix://")).unlink(missing_ok=True)
        for cached in Path("/var/lib/cni/results").glob(f"*-{task.name}-*"):
            cached.unlink(missing_ok=True)


def mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return found


def unmount(root: Path) -> None:
    for _ in range(5):
        points = mounts_under(root)
        if not points:
            return
        for point in sorted(set(points), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    if mounts_under(root):
        raise RuntimeError(f"mounts left under {root}: {mounts_under(root)}")


def remove_bridge(bridge: str) -> None:
    ports = subprocess.run(
        ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
    )
    for line in ports.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def ours(chain: str) -> bool:
    return chain.startswith(CHAIN_PREFIXES)


def remove_chains() -> None:
    for tool in ("iptables", "ip6tables"):
        saved = subprocess.run([f"{tool}-save"], capture_output=True, text=True)
        table, chains, jumps = "", [], []
        for line in saved.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and ours(line[1:].split()[0]):
                chains.append((table, line[1:].split()[0]))
            elif line.startswith("-A "):
                rule = shlex.split(line)
                target = rule[rule.index("-j") + 1] if "-j" in rule else ""
                if ours(target) and not ours(rule[1]):
                    jumps.append((table, rule[1:]))
        for table, rule in jumps:
            subprocess.run([tool, "-t", table, "-D", *rule], capture_output=True)
        for table, chain in chains:
            subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
        for table, chain in chains:
            subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)


def remove_new_tables(root: Path) -> None:
    """Tables that were not there before `up` and hold no rule and no chain of their own
    now: only the built-in chains iptables-nft made, with their default ACCEPT policy."""
    before_file = root / "nft-tables.before"
    if not before_file.exists():
        return
    before = set(before_file.read_text().split("\n"))
    for tool, family in FAMILIES.items():
        for table in ("filter", "nat", "mangle", "raw", "security"):
            if f"{family} {table}" in before or f"{family} {table}" not in nft_tables():
                continue
            saved = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True)
            lines = [ln for ln in saved.stdout.splitlines() if ln[:1] in (":", "-")]
            if all(ln.startswith(":") and " ACCEPT " in ln for ln in lines):
                subprocess.run(["nft", "delete", "table", family, table], capture_output=True)


def remove_cgroups() -> None:
    for _ in range(20):
        for top in kubepods():
            for d, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):
                    Path(d).rmdir()
        if not kubepods():
            return
        time.sleep(0.2)
    raise RuntimeError(f"cgroups left: {kubepods()}")


def restore_ip_forward(root: Path) -> None:
    saved = root / "ip_forward.before"
    if saved.exists():
        IP_FORWARD.write_text(saved.read_text())


def remove_log_links(root: Path) -> None:
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            if link.is_symlink() and str(link.readlink()).startswith(f"{root}/"):
                link.unlink()


# Paths kubelet, containerd's CNI library and the shims use whatever they are told: the
# device-plugin socket, the CNI result cache, log links, shim sockets.
FIXED_FILES = ("/var/lib/kubelet/device-plugins/kubelet.sock",)
FIXED_DIRS = (
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet",
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/var/log/containers",
    "/run/containerd/s",
    "/run/containerd",
)


def remove_fixed_paths() -> None:
    """Directories are removed only once empty: a host without a container runtime is
    left without them, one with its own keeps its files."""
    for f in FIXED_FILES:
        Path(f).unlink(missing_ok=True)
    for d in FIXED_DIRS:
        with contextlib.suppress(OSError):
            Path(d).rmdir()


def clean(root: Path, *, socket: Path, containerd_state: Path, bridge: str) -> None:
    """Everything but the logs goes; each step is harmless when its part is already gone."""
    kill_leftovers(socket)
    remove_task_leftovers(containerd_state)
    unmount(root)
    remove_bridge(bridge)
    remove_chains()
    remove_new_tables(root)
    remove_cgroups()
    restore_ip_forward(root)
    remove_log_links(root)
    remove_fixed_paths()
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.suffix != ".log":
            entry.unlink()
