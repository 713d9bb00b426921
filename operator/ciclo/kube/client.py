"""A small typed REST layer over the kubernetes client's transport.

Every write ciclo makes is a server-side apply under a named field manager or a
JSON merge patch, for any kind, so the operator needs only paths and JSON: the
client's generated model classes are not used.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from prometheus_client import Counter

import kubernetes

Json = dict[str, Any]

# Registered into the operator's registry by ciclo.controllers.metrics.
REQUESTS = Counter(
    "ciclo_api_requests",
    "Kubernetes API requests made by ciclo",
    ["verb", "code", "resource"],
    registry=None,
)

FIELD_MANAGER = "ciclo"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class NamespaceTerminating(ApiError):
    """A create refused because its namespace is being deleted: nothing to retry."""


@dataclass(frozen=True)
class Ref:
    """Where a kind lives in the API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


MODELS = Ref("ciclo.dev", "v1alpha1", "models")
MODEL_VERSIONS = Ref("ciclo.dev", "v1alpha1", "modelversions")
MONITOR_POLICIES = Ref("ciclo.dev", "v1alpha1", "monitorpolicies")
DEPLOYMENTS = Ref("apps", "v1", "deployments")
SERVICES = Ref("", "v1", "services")
PODS = Ref("", "v1", "pods")
JOBS = Ref("batch", "v1", "jobs")
REVIEWS = Ref("ciclo.dev", "v1alpha1", "reviews")
EVENTS = Ref("events.k8s.io", "v1", "events")
SECRETS = Ref("", "v1", "secrets")
JOBS = Ref("batch", "v1", "jobs")
CRON_JOBS = Ref("batch", "v1", "cronjobs")
# The Prometheus Operator's kinds: written only while the cluster serves them (Kube.serves).
POD_MONITORS = Ref("monitoring.coreos.com", "v1", "podmonitors")
PROMETHEUS_RULES = Ref("monitoring.coreos.com", "v1", "prometheusrules")
# The Gateway API's routes, for a Model whose spec.rollout names a Gateway.
HTTP_ROUTES = Ref("gateway.networking.k8s.io", "v1", "httproutes")
TRAEFIK_SERVICES = Ref("traefik.io", "v1alpha1", "traefikservices")


def resource_of(path: str) -> str:
    """The kind a request's path names, with its subresource: `models`, `models/status`;
    `discovery` for a group version's. Bounded: the kinds ciclo uses."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]  # after /api/v1, /apis/group/v
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "discovery"
    return "/".join([rest[0], *rest[2:3]])


CONNECTIONS = 64
"""Connections to the API server kept for reuse. urllib3's default (5 x cores) is fewer
than the operator's threads (kopf's handlers, the reconcile workers, the monitor workers):
each request beyond it opened a new TLS connection and threw it away afterwards."""


def load_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster configuration in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = kubernetes.client.Configuration()
    if (
        kubeconfig is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.environ.get("KUBECONFIG")
    ):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = CONNECTIONS
    return kubernetes.client.ApiClient(configuration)


class Kube:
    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self._discovered: dict[str, tuple[float, frozenset[str]]] = {}
        self._discovery_lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Json:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        m, url, hdrs, data, _ = self.client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(m, url, hdrs, data)
        response.read()  # type: ignore[no-untyped-call]
        REQUESTS.labels(method, str(response.status), resource_of(path)).inc()
        try:
            payload: Json = json.loads(response.data) if response.data else {}
        except ValueError:
            if response.status < 400:
                raise
            # not every error is a Status: an unknown API group is a plain "404 page not found"
            text = response.data if isinstance(response.data, bytes) else b""
            payload = {"message": text.decode(errors="replace").strip()[:300]}
        if response.status >= 400:
            error = {404: NotFound, 409: Conflict}.get(response.status, ApiError)
            causes = (payload.get("details") or {}).get("causes") or []
            if any(c.get("reason") == "NamespaceTerminating" for c in causes):
                error = NamespaceTerminating
            raise error(
                response.status, str(payload.get("reason", "")), str(payload.get("message", ""))
            )
        return payload

    def serves(self, ref: Ref, max_age: float = 60.0) -> bool:
        """Whether the API server serves `ref`'s kind, from API discovery of its group
        version. An answer younger than `max_age` seconds is reused: asking on every
        reconcile would double the reads, and a CRD installed (or removed) later is still
        noticed."""
        key = ref.path().rsplit("/", 1)[0]
        with self._discovery_lock:
            known = self._discovered.get(key)
        if known is None or time.monotonic() - known[0] >= max_age:
            try:
                found = self.request("GET", key).get("resources", [])
            except NotFound:
                found = []
            known = (time.monotonic(), frozenset(r.get("name", "") for r in found))
            with self._discovery_lock:
                self._discovered[key] = known
        return ref.plural in known[1]

    def forget_discovery(self, ref: Ref) -> None:
        """Ask discovery again next time (a write found the kind gone)."""
        with self._discovery_lock:
            self._discovered.pop(ref.path().rsplit("/", 1)[0], None)

    def get(self, ref: Ref, namespace: str, name: str) -> Json | None:
        try:
            return self.request("GET", ref.path(namespace, name))
        except NotFound:
            return None

    def get_fresh(self, ref: Ref, namespace: str, name: str) -> Json | None:
        """`get` from the API server itself, never from a memory of it (CachedKube's)."""
        return Kube.get(self, ref, namespace, name)

    def list(
        self,
        ref: Ref,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[Json]:
        query = {k: v for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v}
        items: list[Json] = self.request("GET", ref.path(namespace), query=query).get("items", [])
        return items

    def apply(
        self, ref: Ref, body: Json, *, manager: str = FIELD_MANAGER, status: bool = False
    ) -> Json:
        """Server-side apply, forcing: the operator is the authority for what it applies."""
        meta = body["metadata"]
        path = ref.path(meta.get("namespace"), meta["name"], "status" if status else None)
        return self.request(
            "PATCH",
            path,
            body,
            content_type=APPLY,
            query={"fieldManager": manager, "force": "true"},
        )

    def merge(
        self, ref: Ref, namespace: str, name: str, patch: Json, *, status: bool = False
    ) -> Json:
        return self.request(
            "PATCH",
            ref.path(namespace, name, "status" if status else None),
            patch,
            content_type=MERGE,
        )

    def delete(self, ref: Ref, namespace: str, name: str) -> bool:
        try:
            self.request("DELETE", ref.path(namespace, name), {"propagationPolicy": "Background"})
        except NotFound:
            return False
        return True

    def create(self, ref: Ref, namespace: str, body: Json) -> Json:
        return self.request("POST", ref.path(namespace), body)

    def log_tail(self, namespace: str, pod: str, lines: int) -> str:
        """The last `lines` lines of a pod's log (plain text, not JSON); "" when there is none."""
        m, url, hdrs, data, _ = self.client.param_serialize(
            "GET",
            PODS.path(namespace, pod, "log"),
            query_params=[("tailLines", str(lines))],
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(m, url, hdrs, data)
        response.read()  # type: ignore[no-untyped-call]
        REQUESTS.labels("GET", str(response.status), "pods/log").inc()
        if response.status >= 400 or not isinstance(response.data, bytes):
            return ""
        return response.data.decode(errors="replace")
