"""python -m demo [run|down] [--operator helm|process]"""

from __future__ import annotations

import argparse
import os
import sys

from demo.story import DemoError, down, run
from localcluster.paths import MissingBinaryError


def main() -> int:
    parser = argparse.ArgumentParser(prog="demo", description="the model lifecycle, end to end")
    parser.add_argument("command", nargs="?", default="run", choices=["run", "down"])
    parser.add_argument(
        "--operator",
        choices=["helm", "process"],
        default=os.environ.get("CICLO_DEMO_OPERATOR", "helm"),
        help="install ciclo with its Helm chart (default), or run it from this checkout",
    )
    args = parser.parse_args()
    if args.command == "down":
        return down()
    try:
        return run(args.operator)
    except (DemoError, MissingBinaryError) as e:
        print(f"\ndemo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
