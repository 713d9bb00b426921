"""The Deployments and Service a Model's serving needs: pure functions of the resources."""

from __future__ import annotations

from typing import Any

from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import MonitorPolicy
from ciclo.planning import claims
from ciclo.planning.names import dns_label

Json = dict[str, Any]

MODEL_LABEL = "ciclo.dev/model"
VERSION_LABEL = "ciclo.dev/version"
ROLE_LABEL = "ciclo.dev/role"
MODEL_DIR = "/models"
# Where the runtime serves /metrics: the pods' prometheus.io/* annotations and the PodMonitor.
PORT_NAME = "http"
GRPC_PORT_NAME = "grpc"
GRPC_SERVICE_PORT = 8081
"""The Service's port for the protocol's gRPC service (KServe's and MLServer's too)."""
METRICS_PATH = "/metrics"
# The runtime's own user (the image's); the Pod Security "restricted" profile wants non-root.
RUNTIME_UID = 65532


def deployment_name(model: str, version: str) -> str:
    return dns_label(model, version)


def labels(model: str, version: str | None = None) -> dict[str, str]:
    out = {
        MODEL_LABEL: model,
        "app.kubernetes.io/name": model,
        "app.kubernetes.io/managed-by": "ciclo",
    }
    if version is not None:
        out[VERSION_LABEL] = version
    return out


def owner(obj: Model | MonitorPolicy) -> Json:
    """The controller reference that lets garbage collection remove what `obj` owns."""
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def restricted() -> Json:
    """A container's securityContext under the Pod Security "restricted" profile."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def artifact_file(version: ModelVersion) -> str:
    return f"{MODEL_DIR}/model.{version.spec.artifact.format}"


def deployment(model: Model, version: ModelVersion, replicas: int, role: str, image: str) -> Json:
    """One Deployment serving one version; `role` is serving or warm (a label for people)."""
    serving = model.spec.serving
    image = serving.image or image
    name = model.metadata.name
    pod_labels = labels(name, version.spec.version)
    fetch = [
        "ciclo",
        "fetch",
        version.spec.artifact.uri,
        artifact_file(version),
        "--sha256",
        version.spec.artifact.sha256,
    ]
    init = [
        {
            "name": "fetch",
            "image": image,
            "command": fetch,
            "securityContext": restricted(),
            "volumeMounts": _fetch_mounts(version.spec.artifact.uri),
            # `ciclo fetch` ends its log with why it failed: the kubelet makes that the
            # termination message the operator reads (pods.fetch_outcomes) when the image's
            # `ciclo fetch` wrote none to the file.
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    ]
    serve = [
        "ciclo",
        "serve",
        "--model",
        artifact_file(version),
        "--format",
        version.spec.artifact.format,
        "--name",
        name,
        "--version",
        version.spec.version,
        "--port",
        str(serving.port),
        "--grpc-port",
        str(grpc_port(serving.port)),
    ]
    baseline = version.spec.baseline
    if baseline is not None:
        fetch_baseline = ["ciclo", "fetch", baseline.uri, f"{MODEL_DIR}/baseline.json"]
        if baseline.sha256:
            fetch_baseline += ["--sha256", baseline.sha256]
        init.append(
            {
                **init[0],
                "name": "fetch-baseline",
                "command": fetch_baseline,
                "volumeMounts": _fetch_mounts(baseline.uri),
            }
        )
        serve += ["--baseline", f"{MODEL_DIR}/baseline.json"]
    container: Json = {
        "name": "serve",
        "image": image,
        "command": serve,
        "ports": [
            {"name": PORT_NAME, "containerPort": serving.port},
            {"name": GRPC_PORT_NAME, "containerPort": grpc_port(serving.port)},
        ],
        "env": [{"name": e.name, "value": e.value} for e in serving.env] + _store_env(model),
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        # A server that stops answering (a hung event loop) is restarted by the kubelet;
        # a minute of silence, so a busy pod under load is not killed for being slow.
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "securityContext": restricted(),
        "volumeMounts": [{"name": "models", "mountPath": MODEL_DIR, "readOnly": True}],
        # A server that cannot load its model logs why and exits: the crash-loop's
        # condition (pods.crash_loops) quotes it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources = serving.resources.model_dump(exclude_defaults=True)
    if resources:
        container["resources"] = resources
    pod_spec: Json = {
        "securityContext": pod_security(),
        "initContainers": init,
        "containers": [container],
        # the claims the fetch steps read, read-only; the server reads the fetched copy
        "volumes": [
            {"name": "models", "emptyDir": {}},
            *claims.volumes([version.spec.artifact.uri, *([baseline.uri] if baseline else [])]),
        ],
        "terminationGracePeriodSeconds": 10,
        **placement(model),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, version.spec.version),
            "namespace": model.metadata.namespace,
            "labels": {**pod_labels, ROLE_LABEL: role},
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {MODEL_LABEL: name, VERSION_LABEL: version.spec.version}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(serving.port),
                        "prometheus.io/path": METRICS_PATH,
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _fetch_mounts(uri: str) -> list[Json]:
    """A fetch step's mounts: where it writes, and the claim it reads when `uri` is pvc://."""
    return [{"name": "models", "mountPath": MODEL_DIR}, *claims.mounts([uri])]


def pod_security() -> Json:
    """The pod's securityContext: the runtime's own non-root user, the default seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "fsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def placement(model: Model) -> Json:
    """Where and as whom the Model's pods run (serving and evaluation alike)."""
    serving = model.spec.serving
    out: Json = {}
    if serving.node_selector:
        out["nodeSelector"] = serving.node_selector
    if serving.tolerations:
        out["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in serving.tolerations
        ]
    if serving.affinity:
        out["affinity"] = serving.affinity
    if serving.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": s.name} for s in serving.image_pull_secrets]
    if serving.service_account_name:
        out["serviceAccountName"] = serving.service_account_name
    return out


def _store_env(model: Model) -> list[Json]:
    """The shared prediction store's URL, from its Secret (never in the pod spec), and the
    keys' prefix: namespace/name, so Models sharing one store never meet; and how long a
    prediction waits for its label, when the Model says."""
    feedback = model.spec.monitoring.feedback
    age = feedback.max_age_seconds
    env: list[Json] = [] if age is None else [{"name": "CICLO_FEEDBACK_MAX_AGE", "value": str(age)}]
    store = feedback.store
    if store is None:
        return env
    ref = store.secret_key_ref
    return [
        *env,
        {
            "name": "CICLO_FEEDBACK_STORE",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        },
        {
            "name": "CICLO_FEEDBACK_STORE_PREFIX",
            "value": f"{model.metadata.namespace}/{model.metadata.name}",
        },
    ]


def grpc_port(http_port: int) -> int:
    """The container's gRPC port: the one after its REST port (before it, at the top)."""
    return http_port + 1 if http_port < 65535 else http_port - 1


def service(model: Model, serving_version: str | None) -> Json:
    """One Service per Model; its selector names the version that serves, or none while a
    canary splits traffic by replica ratio (every pod of the Model: champion, candidate)."""
    name = model.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": model.metadata.namespace,
            "labels": labels(name),
            "ownerReferences": [owner(model)],
        },
        "spec": {
            "selector": {MODEL_LABEL: name}
            | ({VERSION_LABEL: serving_version} if serving_version else {}),
            "ports": service_ports(),
        },
    }


def service_ports() -> list[Json]:
    """A serving Service's ports: HTTP on 80 and gRPC, to the pods' named ports."""
    return [
        {"name": "http", "port": 80, "targetPort": PORT_NAME, "protocol": "TCP"},
        {
            "name": "grpc",
            "port": GRPC_SERVICE_PORT,
            "targetPort": GRPC_PORT_NAME,
            "protocol": "TCP",
        },
    ]


def endpoint(model: Model) -> str:
    return f"http://{model.metadata.name}.{model.metadata.namespace}.svc/v2/models/{model.metadata.name}"
