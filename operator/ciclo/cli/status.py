"""`ciclo status`: one line per Model (what serves, readiness, health, the last action),
or the same as JSON or YAML documents."""

from __future__ import annotations

import json
from typing import Any

import yaml


def _ready(model: dict[str, Any]) -> str:
    for c in model.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return (
                str(c["status"])
                if c["status"] == "True"
                else f"{c['status']} ({c.get('reason', '')})"
            )
    return "Unknown"


def health(policies: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, model) -> each policy rule's last value and state, e.g. accuracy=0.97 Ok."""
    out: dict[tuple[str, str], list[str]] = {}
    for p in policies:
        key = (p["metadata"]["namespace"], p["spec"]["modelRef"]["name"])
        for rule in p.get("status", {}).get("rules", []):
            value = rule.get("value")
            shown = "-" if value is None else f"{value:.3g}"
            out.setdefault(key, []).append(f"{rule['name']}={shown} {rule.get('state', '?')}")
    return {k: ", ".join(v) for k, v in out.items()}


def canary(status: dict[str, Any]) -> str | None:
    """A running canary for people: v2 10% (step 1/3); or how the last one ended."""
    c = status.get("canary")
    if not c:
        return None
    if c.get("phase") == "Progressing":
        return f"{c['version']} {c.get('weight', 0)}% (step {c.get('step', 0) + 1})"
    return f"{c['version']} {c.get('phase', '').lower()}"


def _by_name(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(models, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))


def status_rows(
    models: list[dict[str, Any]], policies: list[dict[str, Any]] | None = None, wide: bool = False
) -> list[list[str]]:
    """The table: one row per Model; wide adds replicas, the version coming up, the endpoint."""
    rules = health(policies or [])
    head = ["NAMESPACE", "MODEL", "DESIRED", "SERVING", "READY"]
    more = ["REPLICAS", "ROLLOUT", "ENDPOINT"] if wide else []
    rows = [[*head, *more, "HEALTH", "LAST ACTION"]]
    for m in _by_name(models):
        status = m.get("status", {})
        extra = (
            [
                str(status.get("readyReplicas", 0)),
                (status.get("rollout") or {}).get("version") or "-",
                status.get("endpoint") or "-",
            ]
            if wide
            else []
        )
        rows.append(
            [
                m["metadata"]["namespace"],
                m["metadata"]["name"],
                m["spec"]["version"],
                (status.get("servingVersion") or "-")
                + (f" + canary {shown}" if (shown := canary(status)) and "%" in shown else ""),
                _ready(m),
                *extra,
                rules.get((m["metadata"]["namespace"], m["metadata"]["name"]), "-"),
                status.get("lastAction") or "-",
            ]
        )
    return rows


def status_documents(
    models: list[dict[str, Any]], policies: list[dict[str, Any]]
) -> dict[str, Any]:
    """`ciclo status -o json|yaml`: what the table shows, as structured data."""
    rules: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in policies:
        key = (p["metadata"]["namespace"], p["spec"]["modelRef"]["name"])
        for rule in p.get("status", {}).get("rules", []):
            rules.setdefault(key, []).append(
                {
                    "policy": p["metadata"]["name"],
                    "rule": rule["name"],
                    "state": rule.get("state"),
                    "value": rule.get("value"),
                    "threshold": rule.get("threshold") or None,
                    "version": rule.get("version"),
                }
            )
    out = []
    for m in _by_name(models):
        status = m.get("status", {})
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
        key = (m["metadata"]["namespace"], m["metadata"]["name"])
        out.append(
            {
                "namespace": key[0],
                "model": key[1],
                "desired": m["spec"]["version"],
                "serving": status.get("servingVersion"),
                "ready": ready["status"] if ready else "Unknown",
                "reason": (ready or {}).get("reason") or None,
                "readyReplicas": status.get("readyReplicas", 0),
                "rollout": (status.get("rollout") or {}).get("version"),
                "canary": _canary_document(status),
                "endpoint": status.get("endpoint"),
                "health": rules.get(key, []),
                "lastAction": status.get("lastAction"),
            }
        )
    return {"models": out}


def _canary_document(status: dict[str, Any]) -> dict[str, Any] | None:
    c = status.get("canary")
    if not c:
        return None
    weight = c.get("weight", 0)
    return {
        "version": c["version"],
        "champion": c.get("champion"),
        "phase": c.get("phase"),
        "step": c.get("step", 0) + 1,
        "weights": {c["version"]: weight, c.get("champion"): 100 - weight},
        "message": c.get("message"),
    }


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last one is left as it is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        + "\n"
        for row in rows
    )


def render_status(
    models: list[dict[str, Any]], policies: list[dict[str, Any]], output: str | None
) -> str:
    if output == "json":
        return json.dumps(status_documents(models, policies), indent=2) + "\n"
    if output == "yaml":
        return yaml.safe_dump(status_documents(models, policies), sort_keys=False)
    return table(status_rows(models, policies, wide=output == "wide"))
