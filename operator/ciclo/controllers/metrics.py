"""The operator's own metrics (prometheus-client, its own registry and port)."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from ciclo.api.monitorpolicy import Rule
from ciclo.kube import client
from ciclo.monitoring.evaluation import bounds

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "ciclo_reconciles", "Reconciles by kind and result", ["kind", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "ciclo_reconcile_duration_seconds", "Reconcile duration", ["kind"], registry=REGISTRY
)
ROLLBACKS = Counter("ciclo_rollbacks", "Rollbacks carried out", registry=REGISTRY)
RETIREMENTS = Counter("ciclo_retirements", "Models retired", registry=REGISTRY)
TRAINING_RUNS = Counter("ciclo_training_runs", "Training Jobs started", registry=REGISTRY)
REGISTRY.register(client.REQUESTS)

MODELS = Gauge(
    "ciclo_models",
    "Models by condition type and status",
    ["condition", "status"],
    registry=REGISTRY,
)

# What the Grafana dashboard (charts/ciclo/dashboards/ciclo.json) shows per Model besides the
# runtime's own metrics: each version's phase, each rule's limits, and each action taken.
VERSION_PHASE = Gauge(
    "ciclo_modelversion_phase",
    "1 for the phase each ModelVersion is in",
    ["namespace", "model", "version", "phase"],
    registry=REGISTRY,
)
RULE_THRESHOLD = Gauge(
    "ciclo_monitor_rule_threshold",
    "A rule's limit (a baseline's allowed drop included) at its last evaluation",
    ["namespace", "policy", "model", "rule", "bound"],
    registry=REGISTRY,
)
POLICY_ACTIONS = Counter(
    "ciclo_monitor_rule_actions",
    "Actions taken, by Model, policy, rule, action and the version judged",
    ["namespace", "policy", "model", "rule", "action", "version"],
    registry=REGISTRY,
)

_phases: dict[tuple[str, str, str], str] = {}
_phases_lock = threading.Lock()


def version_phase(namespace: str, model: str, version: str, phase: str | None) -> None:
    """One series per ModelVersion, for its current phase; None (deleted) removes it."""
    key = (namespace, model, version)
    with _phases_lock:
        old = _phases.pop(key, None)
        if old is not None and old != phase:
            VERSION_PHASE.remove(namespace, model, version, old)
        if phase is not None:
            _phases[key] = phase
            VERSION_PHASE.labels(namespace, model, version, phase).set(1)


def rule_thresholds(
    namespace: str, policy: str, model: str, rule: Rule, baseline: float | None
) -> None:
    """The limits the rule was judged against; a side without one has no series."""
    limits = bounds(rule, baseline)
    for side in ("min", "max"):
        limit = getattr(limits, side) if limits else None
        labels = (namespace, policy, model, rule.name, side)
        if limit is None:
            with contextlib.suppress(KeyError):
                RULE_THRESHOLD.remove(*labels)
        else:
            RULE_THRESHOLD.labels(*labels).set(limit)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks its own name up (socket.getfqdn): a reverse DNS
        # lookup that, where the resolver does not answer, held the operator's start for
        # 10 s. The name is never used; the address will do.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape every few seconds is not worth a log line


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """The operator's /metrics on a daemon thread (prometheus_client's start_http_server,
    without its DNS lookup)."""
    server = _Server((addr, port), _Quiet)
    server.set_app(make_wsgi_app(REGISTRY))
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
