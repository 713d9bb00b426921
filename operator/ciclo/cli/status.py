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
    if c.get("phase") == "Progressing" and c.get("strategy") == "shadow":
        return f"{c['version']} 0% (mirrored)"
    if c.get("phase") == "Progressing":
        return f"{c['version']} {c.get('weight', 0)}% (step {c.get('step', 0) + 1})"
    return f"{c['version']} {c.get('phase', '').lower()}"


def _kind(status: dict[str, Any]) -> str:
    return "shadow" if (status.get("canary") or {}).get("strategy") == "shadow" else "canary"


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
                + (
                    f" + {_kind(status)} {shown}"
                    if (shown := canary(status)) and "%" in shown
                    else ""
                ),
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
        "strategy": c.get("strategy", "canary"),
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


WAY_IN = ("Evaluating", "AwaitingApproval", "Rejected")


def version_documents(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The versions worth a person's eye: tagged, reviewed, or on the way in."""
    out = []
    for v in sorted(
        versions,
        key=lambda v: (
            v["metadata"].get("namespace", ""),
            v["spec"]["model"],
            v["spec"]["version"],
        ),
    ):
        status, spec = v.get("status", {}), v["spec"]
        reviews = status.get("reviews") or []
        if not (spec.get("tags") or reviews or status.get("phase") in WAY_IN):
            continue
        validated: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c.get("type") == "Validated"), {}
        )
        out.append(
            {
                "namespace": v["metadata"].get("namespace", ""),
                "model": spec["model"],
                "version": spec["version"],
                "phase": status.get("phase"),
                "validated": validated.get("reason"),
                "tags": spec.get("tags") or [],
                "reviews": [
                    {k: r.get(k) for k in ("decision", "user", "comment", "at")} for r in reviews
                ],
            }
        )
    return out


def version_rows(versions: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["NAMESPACE", "MODEL", "VERSION", "PHASE", "VALIDATED", "TAGS", "LATEST REVIEW"]]
    for d in version_documents(versions):
        latest = d["reviews"][0] if d["reviews"] else None
        said = (
            f"{latest['decision']} by {latest['user']}"
            + (f": {latest['comment']}" if latest.get("comment") else "")
            if latest
            else "-"
        )
        rows.append(
            [
                d["namespace"],
                d["model"],
                d["version"],
                d["phase"] or "-",
                d["validated"] or "-",
                ",".join(d["tags"]) or "-",
                said,
            ]
        )
    return rows


def render_status(
    models: list[dict[str, Any]],
    policies: list[dict[str, Any]],
    output: str | None,
    versions: list[dict[str, Any]] | None = None,
) -> str:
    """The Models; then, when some are tagged, reviewed or on the way in, their versions."""
    shown = version_documents(versions or [])
    if output in ("json", "yaml"):
        documents = status_documents(models, policies)
        if shown:
            documents["versions"] = shown
        if output == "json":
            return json.dumps(documents, indent=2) + "\n"
        return yaml.safe_dump(documents, sort_keys=False)
    out = table(status_rows(models, policies, wide=output == "wide"))
    if shown:
        out += "\n" + table(version_rows(versions or []))
    return out
