"""A Gateway API implementation for the local cluster: Traefik's Kubernetes Gateway
provider as a host process (tools/traefik pins it), reading the API server through the
kubeconfig and routing to pod addresses on the real node's bridge (10.246.0.N) from
EndpointSlices (not through kube-proxy's ClusterIPs: Traefik balances by itself).

Traefik maps a Gateway listener to the entry point with the same port, so the Gateway
made here listens on the port Traefik's `web` entry point binds. Its conformance report
(Gateway API v1.5.1) passes HTTPRoute backend weights (core) but lists RequestMirror
unsupported, so its Kubernetes CRD provider runs too (the traefik.io CRDs, which
tools/build.sh copies from the pinned module, must be installed): a shadow's route names
a TraefikService that mirrors (spec.rollout.gateway.mirror: TraefikService,
docs/rollout.md).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from localcluster.paths import Paths

CONTROLLER = "traefik.io/gateway-controller"


@dataclass
class Traefik:
    proc: subprocess.Popen[bytes]
    port: int
    """The `web` entry point: where requests through the Gateway go, on 127.0.0.1."""
    ping_port: int
    log: Path

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start(paths: Paths, kubeconfig: Path, home: Path, port: int, ping_port: int) -> Traefik:
    """Start Traefik with its Gateway provider; returns once it answers its ping."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "traefik.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(paths.binary("traefik")),
                f"--entrypoints.web.address=127.0.0.1:{port}",
                f"--entrypoints.traefik.address=127.0.0.1:{ping_port}",
                "--ping=true",
                "--ping.entrypoint=traefik",
                "--providers.kubernetesgateway=true",
                "--providers.kubernetescrd=true",
                "--log.level=INFO",
                "--log.nocolor=true",
                "--global.checknewversion=false",
                "--global.sendanonymoususage=false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        )
    traefik = Traefik(proc, port, ping_port, log)
    deadline = time.monotonic() + 30
    while not _pings(ping_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            traefik.stop()
            raise RuntimeError(f"traefik did not start: see {log}")
        time.sleep(0.2)
    return traefik


def _pings(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def gateway_class(name: str = "traefik") -> dict[str, object]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": CONTROLLER},
    }


def gateway(name: str, port: int, class_name: str = "traefik") -> dict[str, object]:
    """A Gateway whose one HTTP listener is Traefik's `web` entry point; routes from every
    namespace may attach."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [
                {
                    "name": "web",
                    "protocol": "HTTP",
                    "port": port,
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            ],
        },
    }
