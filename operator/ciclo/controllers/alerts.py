"""A MonitorPolicy's alerts, posted to its webhook as Alertmanager posts them (version 4),
so a receiver written for Alertmanager takes them unchanged."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from ciclo.api.monitorpolicy import MonitorPolicy, Rule, RuleStatus
from ciclo.kube.client import Json
from ciclo.monitoring.evaluation import action_id
from ciclo.planning.prometheusrule import alert_name

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = 5


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
    since = st.breaching_since or dt.datetime.now(dt.UTC).replace(microsecond=0)
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"{policy.spec.model_ref.name} {version}: rule {rule.name} breached",
            "description": detail,
            "value": f"{st.value:g}" if st.value is not None else "",
            "threshold": st.threshold,
        },
        "startsAt": since.isoformat().replace("+00:00", "Z"),
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
