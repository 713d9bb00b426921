"""The cost of drift tracking: 100 numeric features, a 10,000-row window.

Run: .venv/bin/python benchmarks/drift_update.py [--features 100] [--window 10000]

Times, each the median of several repeats: building the profile from 20,000
training rows; adding one request's row (amortised over the window's batching);
adding a 100-row batch; computing every statistic (PSI and KS for each feature)
over the full window; and "a drift update", a 100-row batch then every
statistic, which is what a scrape after traffic costs. The issue's target for
the update is under 50 ms.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from ciclo.drift.profile import build_profile
from ciclo.drift.window import DriftWindow


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--window", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    f, n = args.features, args.window
    train = rng.normal(size=(20_000, f))
    columns = {f"f{i}": train[:, i] for i in range(f)}
    rows: list[tuple[str, float]] = []
    rows.append(("build the profile (20,000 rows)", median_ms(lambda: build_profile(columns), 3)))
    window = DriftWindow(build_profile(columns), n)
    window.add(rng.normal(size=(n, f)))
    window.drift()
    one = rng.normal(size=(1, f))
    batch = rng.normal(size=(100, f))
    per_row = median_ms(lambda: [window.add(one) for _ in range(1000)], 5) / 1000
    rows.append(("add one request's row (amortised)", per_row))
    rows.append(("add a 100-row batch", median_ms(lambda: (window.add(batch), window.flush()), 20)))
    rows.append((f"every statistic over {n:,} rows", median_ms(window.drift, 20)))
    update = median_ms(lambda: (window.add(batch), window.drift()), 20)
    rows.append(("a drift update: 100 rows, then every statistic", update))
    rows.append(
        (
            f"refill the whole window ({n:,} rows)",
            median_ms(lambda: (window.add(rng.normal(size=(n, f))), window.flush()), 3),
        )
    )
    print(f"drift tracking, {f} numeric features, window {n:,} rows")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    for name, ms in rows:
        print(f"  {name:<48} {ms:9.3f} ms")


if __name__ == "__main__":
    main()
