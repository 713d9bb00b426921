"""Waiting for the cluster to reach a state, for the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 30,
    explain: Callable[[], str] | None = None,
) -> Any:
    """check()'s first truthy value, polled every 0.1 s; an AssertionError after `timeout`,
    saying what `explain` says of the state then (what the objects' status was)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    said = f"; {explain()}" if explain is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{said}")


def wait_turns(what: str, read: Callable[[], Any], turns: int, timeout: float = 60) -> None:
    """Wait until read() has taken `turns` new values: observable progress (an evaluation
    time advancing, a counter rising) where a test must show that nothing happened, instead
    of a sleep that proves nothing when the operator is slow."""
    seen = [read()]

    def advanced() -> bool:
        value = read()
        if value != seen[-1]:
            seen.append(value)
        return len(seen) > turns

    wait_for(f"{turns} {what}", advanced, timeout)
