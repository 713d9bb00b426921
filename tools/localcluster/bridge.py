"""A Linux bridge with the host's address on it: the real node's pods' network."""

from __future__ import annotations

import subprocess


def ensure(name: str, host_address: str) -> None:
    """Make bridge `name` with `host_address`/24 and bring it up, unless it exists."""
    if subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0:
        return
    for argv in (
        ["ip", "link", "add", name, "type", "bridge"],
        ["ip", "addr", "add", f"{host_address}/24", "dev", name],
        ["ip", "link", "set", name, "up"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
