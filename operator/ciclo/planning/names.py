"""Kubernetes object names made from ours. Pure, and a leaf: every planner may import it."""

from __future__ import annotations

import hashlib
import re


def dns_label(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from parts; long names keep a hash of the whole so they stay unique."""
    raw = "-".join(parts).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")
    if len(name) <= limit and name == raw:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"
