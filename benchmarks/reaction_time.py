"""The monitoring loop's reaction time, over several runs of `make demo`.

    .venv/bin/python benchmarks/reaction_time.py [--runs 3]

Each run tells the demo's whole story on the local cluster (real Prometheus scraping
the real node's serving pods every 2 s, the operator from the Helm chart, the
MonitorPolicy at a 5 s interval with failureThreshold 3). The demo measures the figure
itself from Prometheus' data (tools/demo/reaction.py): from the first scrape at which
the accuracy rule's PromQL is under 0.85 to the Service selecting the good version.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REACTION = re.compile(r"reaction time: ([\d.]+) s .*= (\d+) s\)")
ROLLBACK = re.compile(r"rolled back to v1 by the operator after ([\d.]+) s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reactions: list[float] = []
    rollbacks: list[float] = []
    target = None
    for n in range(args.runs):
        start = time.monotonic()
        done = subprocess.run(
            ["make", "--no-print-directory", "demo"], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            return 1
        found = REACTION.search(done.stdout)
        rolled = ROLLBACK.search(done.stdout)
        if found is None or rolled is None:
            print(done.stdout[-3000:])
            return 1
        reactions.append(float(found.group(1)))
        rollbacks.append(float(rolled.group(1)))
        target = int(found.group(2))
        print(
            f"run {n + 1}: reaction {reactions[-1]:.1f} s, rollback {rollbacks[-1]:.1f} s after "
            f"the labels turned wrong; make demo {time.monotonic() - start:.0f} s",
            flush=True,
        )
    print(
        f"reaction time over {args.runs} runs: median {statistics.median(reactions):.1f} s, "
        f"max {max(reactions):.1f} s (target {target} s); from labels turning wrong to the "
        f"rollback: median {statistics.median(rollbacks):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
