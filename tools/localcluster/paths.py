"""Where the local cluster keeps its binaries and state: all outside the repository."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Each binary and the make target that builds it.
BINARIES = {
    "kube-apiserver": "tools",
    "kube-controller-manager": "tools",
    "kube-scheduler": "tools",
    "kubectl": "tools",
    "etcd": "tools",
    "kwok": "tools",
    "kwokctl": "tools",
    "helm": "tools",
    "prometheus": "tools",
    "promtool": "tools",
    "traefik": "tools",
    # The real node's, not built by `make tools`: `tools/build.sh node coredns`.
    "kubelet": "node-tools",
    "kube-proxy": "node-tools",
    "coredns": "node-tools",
}


class MissingBinaryError(RuntimeError):
    """A tool the cluster needs has not been built."""


@dataclass(frozen=True)
class Paths:
    cache: Path
    name: str

    @classmethod
    def from_env(cls) -> Paths:
        cache = Path(os.environ.get("CICLO_CACHE", Path.home() / ".cache" / "ciclo"))
        return cls(cache=cache, name=os.environ.get("CICLO_CLUSTER", "ciclo"))

    @property
    def bin(self) -> Path:
        return self.cache / "bin"

    @property
    def kwok_workdir(self) -> Path:
        return self.cache / "kwok"

    @property
    def state(self) -> Path:
        """Our own per-cluster state: kubeconfig, the real node's files, pids and logs."""
        return self.cache / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def binary(self, name: str) -> Path:
        path = self.bin / name
        if not os.access(path, os.X_OK):
            raise MissingBinaryError(f"{path} is missing: run `make {BINARIES[name]}`")
        return path


def pid_alive(pid_file: Path) -> int | None:
    """The pid a pid file names, while that process lives; None otherwise."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid
