"""Traffic through a Gateway API Gateway (spec.rollout.gateway): a Service per version and
one HTTPRoute per Model whose backend weights split requests between the champion and a
canary's candidate. The operator owns both (ownerReference, server-side apply).

The route matches the Model's own paths (/v2/models/NAME), so many Models share a
Gateway. Weights are exact, whatever the replica counts; the Model's own Service stays,
for clients inside the cluster, and selects the serving version only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ciclo.api.model import Model
from ciclo.api.rollout import CanaryStatus
from ciclo.planning.manifests import (
    MODEL_LABEL,
    VERSION_LABEL,
    Json,
    labels,
    owner,
    service_ports,
)
from ciclo.planning.names import dns_label

ROUTE_API = "gateway.networking.k8s.io/v1"
TRAEFIK_API = "traefik.io/v1alpha1"


def version_service_name(model: str, version: str) -> str:
    return dns_label(model, "v", version)


def version_service(model: Model, version: str) -> Json:
    """A Service selecting one version's pods: a backend the HTTPRoute can weigh."""
    name = model.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": version_service_name(name, version),
            "namespace": model.metadata.namespace,
            "labels": labels(name, version),
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "selector": {MODEL_LABEL: name, VERSION_LABEL: version},
            "ports": service_ports(),
        },
    }


def shadow_service_name(model: str) -> str:
    return dns_label(model, "shadow")


def _backend(name: str, weight: int | None = None) -> Json:
    ref: Json = {"group": "", "kind": "Service", "name": name, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    return ref


def traefik_mirror(model: Model, serving: str, shadow: str) -> Json:
    """A Traefik TraefikService that answers from the serving version's Service and sends
    a copy of each request to the shadow's, whose answers Traefik discards."""
    name = model.metadata.name
    return {
        "apiVersion": TRAEFIK_API,
        "kind": "TraefikService",
        "metadata": {
            "name": shadow_service_name(name),
            "namespace": model.metadata.namespace,
            "labels": labels(name),
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "mirroring": {
                "name": version_service_name(name, serving),
                "port": 80,
                "mirrors": [
                    {"name": version_service_name(name, shadow), "port": 80, "percent": 100}
                ],
            }
        },
    }


def http_route(model: Model, weights: dict[str, int], shadow: str | None = None) -> Json:
    """The Model's HTTPRoute: its paths to each version's Service, weighted (percent).

    With a `shadow`, inference requests (only they: feedback must not reach the store
    twice) are also copied to the shadow's Service: by the RequestMirror filter, or
    through a TraefikService (`traefik_mirror`), as spec.rollout.gateway.mirror says."""
    gateway = model.spec.rollout.gateway
    assert gateway is not None
    name = model.metadata.name
    parent: Json = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
    if gateway.namespace:
        parent["namespace"] = gateway.namespace
    if gateway.section_name:
        parent["sectionName"] = gateway.section_name
    rules: list[Json] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": f"/v2/models/{name}"}}],
            "backendRefs": [
                _backend(version_service_name(name, version), weight)
                for version, weight in weights.items()
            ],
        }
    ]
    if shadow is not None:
        (serving,) = weights
        infer = {"path": {"type": "Exact", "value": f"/v2/models/{name}/infer"}}
        if gateway.mirror == "TraefikService":
            backend = {"group": "traefik.io", "kind": "TraefikService"}
            backend["name"] = shadow_service_name(name)
            rules.append({"matches": [infer], "backendRefs": [backend]})
        else:
            mirror = {"backendRef": _backend(version_service_name(name, shadow))}
            rules.append(
                {
                    "matches": [infer],
                    "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
                    "backendRefs": [_backend(version_service_name(name, serving))],
                }
            )
    return {
        "apiVersion": ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": model.metadata.namespace,
            "labels": labels(name),
            "ownerReferences": [owner(model)],
        },
        "spec": {"parentRefs": [parent], "rules": rules},
    }


@dataclass
class Routing:
    """The Gateway's children of a Model: a Service per backend, the route, and a shadow's
    TraefikService when the Gateway is Traefik's (spec.rollout.gateway.mirror)."""

    version_services: list[Json]
    route: Json
    traefik_mirror: Json | None = None


def routing(
    model: Model, serving: str, pending: str | None, canary: CanaryStatus | None
) -> Routing:
    """What the Gateway needs while `serving` serves and, with a running canary, shadow or
    A/B test (`canary`), `pending` takes its share or a copy of each request."""
    weights = {serving: 100}
    shadow = None
    if canary is not None and pending is not None:
        if canary.strategy == "shadow":
            shadow = pending  # a copy of each request; none of the answers
        else:
            weights = {serving: 100 - canary.weight, pending: canary.weight}
    backends = [*weights, *([shadow] if shadow else [])]
    gateway = model.spec.rollout.gateway
    mirror = shadow is not None and gateway is not None and gateway.mirror == "TraefikService"
    return Routing(
        version_services=[version_service(model, v) for v in backends],
        route=http_route(model, weights, shadow),
        traefik_mirror=traefik_mirror(model, serving, shadow) if mirror and shadow else None,
    )
