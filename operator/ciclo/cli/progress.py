"""`ciclo fetch`'s progress on a terminal: one line rewritten in place."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

MIB = 1 << 20
# Below this an artifact arrives before a meter would be worth reading.
LARGE = 8 * MIB


class ProgressMeter:
    """Copied bytes, the total when known, the percentage and the rate, at most every
    `interval` seconds, for artifacts of at least `large` bytes (or of unknown size, once
    that many have arrived)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        large: int = LARGE,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.large = large
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.last: float | None = None
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        if (total if total is not None else done) < self.large:
            return
        now = self.clock()
        finished = total is not None and done >= total
        if self.last is not None and now - self.last < self.interval and not finished:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9) / MIB
        line = f"ciclo fetch: {done / MIB:.1f} MiB"
        if total is not None:
            line += f" / {total / MIB:.1f} MiB ({100 * done / total:.0f}%)"
        self.stream.write(f"\r{line}, {rate:.1f} MiB/s\x1b[K")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        """End the meter's line, so that what follows starts on its own."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
