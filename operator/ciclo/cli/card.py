"""`ciclo card MODEL`: a model card from the cluster's state, never typed by hand.

`render` is pure: the Model, its ModelVersions and the MonitorPolicies that name it
(as the API server returns them) in, Markdown or HTML out. Everything on the card is
read from those resources: what the model is for and who owns it (Model spec), each
version with its offline metrics, dataset and lineage (the registry), what served
when (Model status.history), every action with its rule, value and threshold
(MonitorPolicy status.actions), and current health and drift (status.rules).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
CardFormat = Literal["markdown", "html"]
DRIFT_METRICS = ("feature_drift_psi", "feature_drift_ks", "prediction_drift_psi")


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    """Paragraphs, each one line of plain text."""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    empty: str = ""
    """What the table's absence means, said when it has no rows."""


def _value(x: Any) -> str:
    if x is None or x == "":
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _condition(obj: Json, kind: str) -> Json | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == kind), None
    )


def _version_key(v: Json) -> tuple[str, str]:
    return (v["metadata"].get("creationTimestamp", ""), v["spec"]["version"])


def sections(model: Json, versions: list[Json], policies: list[Json]) -> list[Section]:
    """The card's content, in order, from the resources."""
    spec, status = model["spec"], model.get("status", {})
    name = model["metadata"]["name"]
    ready = _condition(model, "Ready")
    overview = Section(
        "Overview",
        lines=[
            f"Purpose: {spec.get('description') or '- (spec.description is not set)'}",
            f"Owner: {spec.get('owner') or '- (spec.owner is not set)'}",
            f"Task: {spec.get('task', 'classification')}",
            f"Desired version (spec.version): {spec['version']}",
            f"Serving version: {status.get('servingVersion') or '-'}",
            "Ready: "
            + (
                f"{ready['status']} ({ready.get('reason') or '-'}): {ready.get('message') or '-'}"
                if ready
                else "Unknown"
            ),
            f"Endpoint: {status.get('endpoint') or '-'}",
        ]
        + (["Retired: spec.retired is true"] if spec.get("retired") else [])
        + (
            [
                f"Retired by policy: {status['retirement'].get('reason')} at "
                f"{status['retirement'].get('at')}: {status['retirement'].get('message')}"
            ]
            if status.get("retirement")
            else []
        ),
    )

    ordered = sorted(versions, key=_version_key)
    metric_names = sorted({m for v in ordered for m in v["spec"].get("metrics", {})})
    registry = Section(
        "Versions",
        lines=[
            "Each registered ModelVersion, oldest first, with its offline metrics "
            "(spec.metrics). Approvals: ciclo records none yet (no approval step exists); "
            "a version serves when spec.version names it."
        ],
        header=["version", "phase", "registered", "format", "sha256", *metric_names],
        rows=[
            [
                v["spec"]["version"],
                v.get("status", {}).get("phase") or "-",
                v["metadata"].get("creationTimestamp") or "-",
                v["spec"]["artifact"]["format"],
                v["spec"]["artifact"]["sha256"][:12],
                *[_value(v["spec"].get("metrics", {}).get(m)) for m in metric_names],
            ]
            for v in ordered
        ],
        empty="No ModelVersion is registered for this model.",
    )
    lineage = Section(
        "Lineage",
        header=[
            "version",
            "artifact",
            "dataset",
            "run",
            "commit",
            "author",
            "baseline",
            "parameters",
            "description",
        ],
        rows=[
            [
                v["spec"]["version"],
                v["spec"]["artifact"]["uri"],
                _value(v["spec"].get("dataset")),
                _value((v["spec"].get("source") or {}).get("runId")),
                _value((v["spec"].get("source") or {}).get("gitCommit")),
                _value((v["spec"].get("source") or {}).get("author")),
                _value((v["spec"].get("baseline") or {}).get("uri")),
                ", ".join(f"{k}={p}" for k, p in sorted(v["spec"].get("parameters", {}).items()))
                or "-",
                _value(v["spec"].get("description")),
            ]
            for v in ordered
        ],
        empty="No ModelVersion is registered for this model.",
    )
    served = Section(
        "What served when",
        lines=["From the Model's status.history, newest first."],
        header=["version", "since", "until", "outcome"],
        rows=[
            [h["version"], h["since"], h.get("until") or "(serving)", h.get("outcome", "-")]
            for h in status.get("history", [])
        ],
        empty="Nothing has served yet.",
    )
    marked = [v for v in ordered if v.get("status", {}).get("rolledBack")]
    rollbacks = Section(
        "Versions marked bad",
        header=["version", "at", "reason", "message"],
        rows=[
            [
                v["spec"]["version"],
                v["status"]["rolledBack"].get("at", "-"),
                v["status"]["rolledBack"].get("reason", "-"),
                _value(v["status"]["rolledBack"].get("message")),
            ]
            for v in marked
        ],
        empty="No version has been rolled back.",
    )
    records = sorted(
        (
            (a, p["metadata"]["name"])
            for p in policies
            for a in p.get("status", {}).get("actions", [])
        ),
        key=lambda pair: str(pair[0].get("at", "")),
    )
    actions = Section(
        "Actions",
        lines=["Every action the Model's MonitorPolicies took (status.actions), oldest first."],
        header=["at", "policy", "rule", "action", "version", "value", "threshold", "message"],
        rows=[
            [
                a.get("at", "-"),
                policy,
                a["rule"],
                a["action"],
                a["version"],
                _value(a.get("value")),
                _value(a.get("threshold")),
                _value(a.get("message")),
            ]
            for a, policy in records
        ],
        empty="No policy has acted on this model.",
    )
    metric_of = {
        (p["metadata"]["name"], r["name"]): r.get("metric") or "query"
        for p in policies
        for r in p["spec"].get("rules", [])
    }
    current = [
        (p["metadata"]["name"], r, metric_of.get((p["metadata"]["name"], r["name"]), "-"))
        for p in policies
        for r in p.get("status", {}).get("rules", [])
    ]

    def rule_rows(drift: bool) -> list[list[str]]:
        return [
            [
                policy,
                r["name"],
                metric,
                r.get("state", "-"),
                _value(r.get("value")),
                _value(r.get("threshold")),
                _value(r.get("samples")),
                _value(r.get("version")),
                _value(r.get("lastEvaluated")),
            ]
            for policy, r, metric in current
            if (metric in DRIFT_METRICS) == drift
        ]

    header = [
        "policy",
        "rule",
        "metric",
        "state",
        "value",
        "threshold",
        "samples",
        "version",
        "evaluated",
    ]
    healthy = [
        f"{p['metadata']['name']}: Healthy={c['status']} ({c.get('reason') or '-'})"
        for p in policies
        if (c := _condition(p, "Healthy"))
    ]
    health = Section(
        "Current health",
        lines=healthy,
        header=header,
        rows=rule_rows(drift=False),
        empty=f"No MonitorPolicy judges the quality of {name}.",
    )
    drift = Section(
        "Drift",
        lines=["Drift rules' last values against the version's baseline profile."],
        header=header,
        rows=rule_rows(drift=True),
        empty="No MonitorPolicy rule measures drift.",
    )
    return [overview, registry, lineage, served, rollbacks, actions, health, drift]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, preamble: str, parts: list[Section]) -> str:
    out = [f"# {title}", "", preamble, ""]
    for s in parts:
        out += [f"## {s.title}", ""]
        for line in s.lines:
            out += [line, ""]
        if s.header and s.rows:
            out.append("| " + " | ".join(s.header) + " |")
            out.append("|" + "---|" * len(s.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in s.rows]
            out.append("")
        elif s.header:
            out += [s.empty, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _html(title: str, preamble: str, parts: list[Section]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:72em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(preamble)}</p>",
    ]
    for s in parts:
        out.append(f"<h2>{e(s.title)}</h2>")
        out += [f"<p>{e(line)}</p>" for line in s.lines]
        if s.header and s.rows:
            out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in s.header))
            out.append("</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in s.rows]
            out.append("</tbody></table>")
        elif s.header:
            out.append(f"<p>{e(s.empty)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(
    model: Json,
    versions: list[Json],
    policies: list[Json],
    *,
    generated: str,
    fmt: CardFormat = "markdown",
) -> str:
    """The card of `model`; `versions` and `policies` are filtered to the ones that name it."""
    name, namespace = model["metadata"]["name"], model["metadata"].get("namespace", "")
    mine = [v for v in versions if v["spec"].get("model") == name]
    judged = [p for p in policies if p["spec"]["modelRef"]["name"] == name]
    title = f"Model card: {namespace}/{name}"
    preamble = (
        f"Generated by `ciclo card` at {generated} from the cluster's state: the Model, "
        f"{len(mine)} ModelVersion(s) and {len(judged)} MonitorPolicy(ies)."
    )
    parts = sections(model, mine, judged)
    return _html(title, preamble, parts) if fmt == "html" else _markdown(title, preamble, parts)
