"""MonitorPolicy: evaluate each policy on schedule, and alert, roll back or retire.

Scheduling: one asyncio loop keeps every policy's next due time (a watch event adds,
changes or drops a policy; no kopf timers, so kopf writes nothing on the object). A
policy's first run is jittered over one interval so that many policies spread out;
after that it runs every interval measured from start to start, so the evaluation's
own duration is not added. Evaluations run on a thread pool of their own, never on
the event loop, and one policy never runs twice at once: a run still going when the
next is due skips that turn.

Each evaluation is level-based: read the policy, its Model and the metrics; judge
each rule (ciclo.monitoring.evaluation, pure); act on the rules whose breaches reached
failureThreshold; write status. An action is named by its rule, version and the start
of its run of breaches, and recorded in status.actions: one that is recorded is never
taken again. A rollback marks the version before it is recorded, and the mark carries
the action's name, so a restart between the two finds the mark and records it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import heapq
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
from prometheus_client import Counter, Gauge, Histogram

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.monitorpolicy import (
    ActionRecord,
    MonitorPolicy,
    MonitorPolicyStatus,
    Rule,
    RuleStatus,
)
from ciclo.controllers import logs, prometheus_operator, retirement, rollback
from ciclo.controllers.config import Config
from ciclo.controllers.metrics import POLICY_ACTIONS, REGISTRY, rule_thresholds
from ciclo.kube import events
from ciclo.kube.client import (
    MODEL_VERSIONS,
    MODELS,
    MONITOR_POLICIES,
    PODS,
    SECRETS,
    ApiError,
    Json,
    Kube,
    NamespaceTerminating,
)
from ciclo.monitoring.evaluation import Reading, Verdict, action_id, evaluate, seconds
from ciclo.monitoring.sources import (
    Credentials,
    MetricSource,
    PodsSource,
    PrometheusSource,
    Query,
)
from ciclo.planning.conditions import MESSAGE_LIMIT, status_of
from ciclo.planning.prometheusrule import alert_name

log = logging.getLogger(__name__)

MANAGER = "ciclo-monitoring"
MAX_ACTIONS = 50
WEBHOOK_ATTEMPTS = 5

EVALUATIONS = Counter(
    "ciclo_monitor_evaluations",
    "MonitorPolicy evaluations by result",
    ["result"],
    registry=REGISTRY,
)
LAG = Histogram(
    "ciclo_monitor_evaluation_lag_seconds",
    "How late an evaluation started (on its worker thread) after its scheduled time",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
EVALUATION_SECONDS = Histogram(
    "ciclo_monitor_evaluation_duration_seconds",
    "One policy's evaluation",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
ACTIONS = Counter(
    "ciclo_monitor_actions", "Actions taken by MonitorPolicies", ["action"], registry=REGISTRY
)
ALERTING = Gauge(
    "ciclo_monitor_alerting",
    "1 while a rule's alert is firing",
    ["namespace", "policy", "rule"],
    registry=REGISTRY,
)
RULE_VALUE = Gauge(
    "ciclo_monitor_rule_value",
    "A rule's last value",
    ["namespace", "policy", "rule"],
    registry=REGISTRY,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _stamp(when: dt.datetime | None, default: dt.datetime) -> str:
    return (when or default).isoformat().replace("+00:00", "Z")


def _dump(obj: Any) -> Json:
    dumped: Json = obj.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


# ---------------------------------------------------------------- sources


class SourceUnavailable(Exception):
    pass


def make_source(kube: Kube, config: Config, policy: MonitorPolicy) -> MetricSource:
    """The policy's source, with what it needs from the cluster read here (monitoring
    itself never talks to the API server)."""
    ns = policy.metadata.namespace
    spec = policy.spec.source
    if spec.type == "pods":
        return PodsSource(pod_targets(kube, ns, policy.spec.model_ref.name))
    url = (spec.prometheus.url if spec.prometheus else None) or config.prometheus_url
    if not url:
        raise SourceUnavailable(
            "no Prometheus URL: set spec.source.prometheus.url or the operator's --prometheus-url"
        )
    credentials = Credentials()
    ref = spec.prometheus.secret_ref if spec.prometheus else None
    if ref is not None:
        secret = kube.get(SECRETS, ns, ref.name)
        if secret is None:
            raise SourceUnavailable(f"secret {ref.name} not found")
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

        def key(k: str | None) -> str | None:
            if k is None:
                return None
            if k not in data:
                raise SourceUnavailable(f"secret {ref.name} has no key {k}")
            return data[k]

        credentials = Credentials(
            key(ref.bearer_token_key), key(ref.username_key), key(ref.password_key)
        )
    return PrometheusSource(url, credentials)


def pod_targets(kube: Kube, namespace: str, model: str) -> dict[str, list[str]]:
    """The Ready serving pods' /metrics URLs, by version."""
    selector = f"ciclo.dev/model={model},app.kubernetes.io/managed-by=ciclo"
    out: dict[str, list[str]] = {}
    for pod in kube.list(PODS, namespace, labels=selector):
        status = pod.get("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        ip = status.get("podIP")
        meta = pod["metadata"]
        annotations = meta.get("annotations", {})
        port = annotations.get("prometheus.io/port")
        if not (ready and ip and port) or meta.get("deletionTimestamp"):
            continue
        path = annotations.get("prometheus.io/path", "/metrics")
        version = meta.get("labels", {}).get("ciclo.dev/version", "")
        out.setdefault(version, []).append(f"http://{ip}:{port}{path}")
    return out


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    verdict: Verdict


def _baseline(
    rule: Rule,
    source: MetricSource,
    query: Query,
    versions: dict[str, ModelVersion],
    previous_version: str | None,
) -> float | None:
    if rule.baseline is None:
        return None
    if rule.baseline.source == "offline":
        mv = versions.get(query.version)
        name = rule.baseline.metric or rule.metric or rule.name
        return mv.spec.metrics.get(name) if mv else None
    if previous_version is None:
        return None
    reading = source.read(
        Query(
            query.namespace,
            query.model,
            previous_version,
            query.window,
            query.metric,
            query.promql,
            query.feature,
        )
    )
    return reading.value if reading.error is None else None


def _condition(
    kind: str,
    ok: bool | None,
    reason: str,
    message: str,
    generation: int,
    old: list[Condition],
    now: dt.datetime,
) -> Json:
    status = status_of(ok)
    previous = next((c for c in old if c.type == kind), None)
    since = previous.last_transition_time if previous and previous.status == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "observedGeneration": generation,
        "lastTransitionTime": _stamp(since, now),
    }


def evaluate_policy(
    kube: Kube, config: Config, namespace: str, name: str, notify: Callable[..., None]
) -> None:
    """One evaluation; one that raises leaves the policy Healthy=Unknown with the reason
    (not its last Healthy=True), then raises for the scheduler to retry sooner."""
    try:
        _evaluate_policy(kube, config, namespace, name, notify)
    except NamespaceTerminating:
        return
    except Exception as e:
        _report_failure(kube, namespace, name, f"{type(e).__name__}: {e}")
        raise


def _report_failure(kube: Kube, namespace: str, name: str, message: str) -> None:
    try:
        raw = kube.get(MONITOR_POLICIES, namespace, name)
        if raw is None:
            return
        policy = MonitorPolicy.model_validate(raw)
        condition = _condition(
            "Healthy",
            None,
            "EvaluationFailed",
            message,
            policy.metadata.generation,
            policy.status.conditions,
            _now(),
        )
        # The whole status again, so this manager keeps every field it owns.
        status = dict(raw.get("status") or {})
        status["conditions"] = [
            *(c for c in status.get("conditions", []) if c.get("type") != "Healthy"),
            condition,
        ]
        _write_status(kube, policy, status)
    except Exception:
        log.exception(
            "monitorpolicy %s/%s: could not report the failed evaluation", namespace, name
        )


def _write_status(kube: Kube, policy: MonitorPolicy, status: Json) -> None:
    """The policy's whole status, under the monitoring loop's field manager."""
    kube.apply(
        MONITOR_POLICIES,
        {
            "apiVersion": policy.api_version,
            "kind": "MonitorPolicy",
            "metadata": {"name": policy.metadata.name, "namespace": policy.metadata.namespace},
            "status": status,
        },
        manager=MANAGER,
        status=True,
    )


def _evaluate_policy(
    kube: Kube, config: Config, namespace: str, name: str, notify: Callable[..., None]
) -> None:
    raw = kube.get(MONITOR_POLICIES, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return
    policy = MonitorPolicy.model_validate(raw)
    now = _now()
    status = policy.status
    generation = policy.metadata.generation
    model_name = policy.spec.model_ref.name
    model_raw = kube.get(MODELS, namespace, model_name)
    model = Model.model_validate(model_raw) if model_raw else None
    version = model.status.serving_version if model else None
    previous_status = {r.name: r for r in status.rules}
    records = list(status.actions)
    recorded = {a.id for a in records}

    raw_versions = kube.list(MODEL_VERSIONS, namespace, fields=f"spec.model={model_name}")
    versions = {mv.spec.version: mv for mv in map(ModelVersion.model_validate, raw_versions)}
    # A rollback marked but not recorded (a restart in between): record it now.
    for mv in versions.values():
        mark = mv.status.rolled_back
        if mark and mark.reason == f"MonitorPolicy {name}" and "[" in mark.message:
            ident = mark.message.rsplit("[", 1)[1].rstrip("]")
            if ident not in recorded:
                records.append(
                    ActionRecord(
                        id=ident,
                        rule=ident.split("/")[0],
                        action="rollback",
                        version=mv.spec.version,
                        at=mark.at,
                        message=mark.message,
                    )
                )
                recorded.add(ident)

    # Likewise a retirement recorded on the Model (its action id is a typed field).
    retired = model.status.retirement if model else None
    mine = retired is not None and retired.reason == f"MonitorPolicy {name}"
    if retired and mine and retired.action and retired.action not in recorded:
        records.append(
            ActionRecord(
                id=retired.action,
                rule=retired.action.split("/")[0],
                action="retire",
                version=retired.version,
                at=retired.at,
                message=f"retired: {retired.message}",
            )
        )
        recorded.add(retired.action)

    source: MetricSource | None = None
    source_error = None
    if model is None:
        source_error = f"model {model_name} not found"
    else:
        try:
            source = make_source(kube, config, policy)
        except (SourceUnavailable, ApiError, ValueError) as e:
            source_error = str(e)
    previous_version = next(
        (h.version for h in (model.status.history if model else []) if h.version != version),
        None,
    )

    outcomes: list[Outcome] = []
    for rule in policy.spec.rules:
        if source is None or version is None:
            reading = Reading(error=source_error) if source_error else Reading()
            baseline = None
        else:
            query = Query(
                namespace, model_name, version, rule.window, rule.metric, rule.query, rule.feature
            )
            reading = source.read(query)
            baseline = _baseline(rule, source, query, versions, previous_version)
        verdict = evaluate(rule, reading, previous_status.get(rule.name), version, now, baseline)
        outcomes.append(Outcome(rule, verdict))
        if verdict.status.value is not None:
            RULE_VALUE.labels(namespace, name, rule.name).set(verdict.status.value)
        rule_thresholds(namespace, name, model_name, rule, baseline)
        if version is not None:
            # At 0 before any action, so that the first one shows as an increase.
            POLICY_ACTIONS.labels(namespace, name, model_name, rule.name, rule.action, version)

    alerting: list[str] = []
    for o in outcomes:
        if not o.verdict.act or version is None or model_raw is None:
            continue
        st = o.verdict.status
        ident = action_id(o.rule.name, version, st.breaching_since)
        what = o.rule.metric or "query"
        detail = (
            f"rule {o.rule.name}: {what} {st.value:g} outside {st.threshold} "
            f"({st.consecutive_breaches} evaluations in a row) on version {version}"
        )
        if o.rule.action == "alert":
            alerting.append(detail)
        if ident in recorded:
            continue
        message = act(kube, config, policy, raw, model_raw, o.rule, st, version, ident, detail)
        records.append(
            ActionRecord(
                id=ident,
                rule=o.rule.name,
                action=o.rule.action,
                version=version,
                value=st.value,
                threshold=st.threshold,
                at=now,
                message=message,
            )
        )
        recorded.add(ident)
        ACTIONS.labels(o.rule.action).inc()
        labels = (namespace, name, model_name, o.rule.name, o.rule.action, version)
        POLICY_ACTIONS.labels(*labels).inc()
        if o.rule.action == "alert" and policy.spec.alerting.webhook:
            notify(policy, o.rule, st, version, detail)
    for o in outcomes:
        firing = o.rule.action == "alert" and o.verdict.act
        ALERTING.labels(namespace, name, o.rule.name).set(1 if firing else 0)

    rules = [o.verdict.status for o in outcomes]
    no_data = [r for r in rules if r.state in ("NoData", "Error")]
    breaching = [r for r in rules if r.state == "Breaching"]
    old = status.conditions
    conditions = [
        _condition(
            "ModelFound",
            model is not None,
            "Found" if model else "ModelNotFound",
            f"model {model_name}" + ("" if model else " not found"),
            generation,
            old,
            now,
        ),
        _condition(
            "Healthy",
            not breaching and not no_data,
            "Breaching" if breaching else ("NoData" if no_data else "AllRulesOk"),
            "; ".join(f"{r.name}: {r.message}" for r in breaching + no_data) or "every rule ok",
            generation,
            old,
            now,
        ),
        _condition(
            "NoData",
            bool(no_data),
            (
                "QueryError"
                if any(r.state == "Error" for r in no_data)
                else ("NoData" if no_data else "DataAvailable")
            ),
            "; ".join(f"{r.name}: {r.message}" for r in no_data) or "every rule has data",
            generation,
            old,
            now,
        ),
        _condition(
            "Alerting",
            bool(alerting),
            "RuleBreached" if alerting else "NoAlert",
            "; ".join(alerting) or "no alert firing",
            generation,
            old,
            now,
        ),
    ]
    new = MonitorPolicyStatus(
        observed_generation=generation,
        rules=rules,
        actions=records[-MAX_ACTIONS:],
        last_evaluation_time=now,
    )
    body = _dump(new)
    body["conditions"] = conditions
    _write_status(kube, policy, body)
    if model is not None:
        _mirror_alert(kube, model, name, alerting, now)
    prometheus_operator.sync_prometheus_rule(kube, config, raw, policy, model, versions)


def _mirror_alert(
    kube: Kube, model: Model, policy: str, alerting: list[str], now: dt.datetime
) -> None:
    """The policy's Alerting condition on the Model too, under this controller's manager."""
    old = next((c for c in model.status.conditions if c.type == "Alerting"), None)
    status = status_of(bool(alerting))
    message = f"MonitorPolicy {policy}: " + ("; ".join(alerting) or "no alert firing")
    if old is None and not alerting:
        return  # nothing to say until something fires
    if old is not None and old.status == status and old.message == message[:MESSAGE_LIMIT]:
        return
    condition = {
        "type": "Alerting",
        "status": status,
        "reason": "RuleBreached" if alerting else "NoAlert",
        "message": message[:MESSAGE_LIMIT],
        "observedGeneration": model.metadata.generation,
        "lastTransitionTime": _stamp(
            old.last_transition_time if old and old.status == status else None, now
        ),
    }
    kube.apply(
        MODELS,
        {
            "apiVersion": model.api_version,
            "kind": "Model",
            "metadata": {"name": model.metadata.name, "namespace": model.metadata.namespace},
            "status": {"conditions": [condition]},
        },
        manager=MANAGER,
        status=True,
    )


# ---------------------------------------------------------------- actions


def act(
    kube: Kube,
    config: Config,
    policy: MonitorPolicy,
    policy_raw: Json,
    model_raw: Json,
    rule: Rule,
    st: RuleStatus,
    version: str,
    ident: str,
    detail: str,
) -> str:
    """Take one rule's action; what happened, for the record. Idempotent: Events are
    named after the action, a version already marked is not marked again."""
    ns = policy.metadata.namespace
    name = policy.metadata.name
    model = model_raw["metadata"]["name"]
    if rule.action == "alert":
        note = f"MonitorPolicy {name}: {detail}"
        events.emit(kube, policy_raw, "RuleBreached", note, f"alert/{ident}", "Warning")
        events.emit(kube, model_raw, "RuleBreached", note, f"alert/{name}/{ident}", "Warning")
        return f"alert: {detail}"
    if rule.action == "rollback":
        try:
            done = rollback.request(
                kube,
                config,
                ns,
                model,
                reason=f"MonitorPolicy {name}",
                message=f"{detail} [{ident}]",
                version=version,
            )
        except rollback.RollbackRefused as e:
            note = f"MonitorPolicy {name}: {detail}; not rolled back: {e}"
            events.emit(kube, policy_raw, "RollbackRefused", note, f"refused/{ident}", "Warning")
            return f"not rolled back: {e}"
        note = f"MonitorPolicy {name}: {detail}; rolled back from {done.bad} to {done.target}"
        events.emit(kube, policy_raw, "RolledBack", note, f"rollback/{ident}", "Warning")
        return f"rolled back from {done.bad} to {done.target}: {detail}"
    # retire: recorded in the Model's status, as a rollback is; the spec stays the user's
    retirement.request(kube, model_raw, f"MonitorPolicy {name}", detail, ident, _now())
    note = f"MonitorPolicy {name}: {detail}; model retired"
    events.emit(kube, policy_raw, "Retired", note, f"retire/{ident}", "Warning")
    return f"retired: {detail}"


def alertmanager_body(
    policy: MonitorPolicy, rule: Rule, st: RuleStatus, version: str, detail: str
) -> Json:
    """The JSON Alertmanager posts to a webhook receiver (version 4), for one alert."""
    labels = {
        "alertname": alert_name(rule.name),  # as in the mirrored PrometheusRule
        "namespace": policy.metadata.namespace,
        "monitorpolicy": policy.metadata.name,
        "model": policy.spec.model_ref.name,
        "version": version,
        "rule": rule.name,
        "severity": "warning",
    }
    since = (st.breaching_since or _now()).isoformat().replace("+00:00", "Z")
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"{policy.spec.model_ref.name} {version}: rule {rule.name} breached",
            "description": detail,
            "value": f"{st.value:g}" if st.value is not None else "",
            "threshold": st.threshold,
        },
        "startsAt": since,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": action_id(rule.name, version, st.breaching_since),
    }
    return {
        "version": "4",
        "groupKey": f"{{}}:{{monitorpolicy={policy.metadata.name!r}}}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ciclo",
        "groupLabels": {"monitorpolicy": policy.metadata.name},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "",
        "alerts": [alert],
    }


def send_webhook(url: str, body: Json, attempts: int = WEBHOOK_ATTEMPTS, base: float = 0.5) -> bool:
    """POST with exponential backoff (0.5, 1, 2, 4 s); a 4xx other than 429 is not retried."""
    data = json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code != 429:
                log.warning("webhook %s refused the alert: %s", url, e)
                return False
            log.warning("webhook %s: %s (attempt %d)", url, e, attempt + 1)
        except OSError as e:
            log.warning("webhook %s: %s (attempt %d)", url, e, attempt + 1)
        if attempt + 1 < attempts:
            time.sleep(base * 2**attempt)
    return False


def notify_in_background(
    policy: MonitorPolicy, rule: Rule, st: RuleStatus, version: str, detail: str
) -> None:
    hook = policy.spec.alerting.webhook
    if hook is None:
        return
    body = alertmanager_body(policy, rule, st, version, detail)
    threading.Thread(target=send_webhook, args=(hook.url, body), daemon=True).start()


# ---------------------------------------------------------------- scheduling


Key = tuple[str, str]


class Scheduler:
    """Every policy's next due time; runs each on a thread pool every interval."""

    def __init__(self, run: Callable[[Key], None], workers: int) -> None:
        self.run = run
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="monitor")
        self.intervals: dict[Key, float] = {}
        self.due: dict[Key, float] = {}
        self.heap: list[tuple[float, Key]] = []
        self.running: set[Key] = set()
        self.failures: dict[Key, int] = {}
        self.wake: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def upsert(self, key: Key, interval: float) -> None:
        """Called from kopf's handler threads: hand over to the loop."""
        if self.intervals.get(key) == interval:
            return
        if self.loop is None:
            raise RuntimeError("the scheduler has not started")
        self.loop.call_soon_threadsafe(self._upsert, key, interval)

    def remove(self, key: Key) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._remove, key)

    def _upsert(self, key: Key, interval: float) -> None:
        first = key not in self.intervals
        self.intervals[key] = interval
        now = time.monotonic()
        # the first run somewhere in the first interval, so that policies spread out
        due = now + random.uniform(0, interval) if first else min(self.due[key], now + interval)
        self.due[key] = due
        heapq.heappush(self.heap, (due, key))
        if self.wake:
            self.wake.set()

    def _remove(self, key: Key) -> None:
        self.intervals.pop(key, None)
        self.due.pop(key, None)

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        while True:
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                due, key = heapq.heappop(self.heap)
                if self.due.get(key) != due:
                    continue  # stale entry: removed or rescheduled
                interval = self.intervals[key]
                following = due + interval
                while following <= now:  # missed turns are skipped, not queued up
                    following += interval
                self.due[key] = following
                heapq.heappush(self.heap, (following, key))
                if key in self.running:
                    EVALUATIONS.labels("skipped").inc()
                    continue
                self.running.add(key)
                future = self.loop.run_in_executor(self.pool, self._run, key, due)
                future.add_done_callback(lambda _, k=key: self.running.discard(k))  # type: ignore[misc]
            timeout = self.heap[0][0] - time.monotonic() if self.heap else 3600.0
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(timeout, 0))

    def _run(self, key: Key, due: float) -> None:
        with logs.about(*key, kind="MonitorPolicy"):
            self._evaluate(key, due)

    def _evaluate(self, key: Key, due: float) -> None:
        start = time.monotonic()
        LAG.observe(start - due)  # the loop's delay and the wait for a free worker
        try:
            self.run(key)
            EVALUATIONS.labels("ok").inc()
            self.failures.pop(key, None)
        except Exception:
            EVALUATIONS.labels("error").inc()
            n = self.failures[key] = self.failures.get(key, 0) + 1
            # Sooner than the interval, backing off: 1, 2, 4 ... s, never later than it.
            retry = min(2.0 ** (n - 1), self.intervals.get(key, 60.0))
            log.exception("monitorpolicy %s/%s; again in %.0f s", *key, retry)
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self._retry, key, time.monotonic() + retry)
        finally:
            EVALUATION_SECONDS.observe(time.monotonic() - start)

    def _retry(self, key: Key, when: float) -> None:
        if key in self.due and when < self.due[key]:
            self.due[key] = when
            heapq.heappush(self.heap, (when, key))
            if self.wake:
                self.wake.set()


def register(kube: Kube, config: Config) -> Scheduler:
    scheduler = Scheduler(
        lambda key: evaluate_policy(kube, config, key[0], key[1], notify_in_background),
        config.monitor_workers,
    )

    @kopf.on.startup()
    async def start_scheduler(**_: Any) -> None:
        asyncio.get_running_loop().create_task(scheduler.serve())
        await asyncio.sleep(0)  # let serve() take the loop before the first watch event

    @kopf.on.event("ciclo.dev", "v1alpha1", "monitorpolicies")
    def policy_event(
        namespace: str | None, name: str, type: str, body: kopf.Body, **_: Any
    ) -> None:
        if namespace is None or (config.namespaces and namespace not in config.namespaces):
            return
        key = (namespace, name)
        if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            scheduler.remove(key)
            return
        try:
            interval = seconds(body.get("spec", {}).get("interval", "30s"))
        except ValueError:
            return  # admission rejects what is not a duration
        scheduler.upsert(key, interval)

    return scheduler
