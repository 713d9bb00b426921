"""python -m localcluster up|down|kubeconfig"""

from __future__ import annotations

import argparse
import sys
import time

from localcluster import launcher, prometheus
from localcluster.paths import MissingBinaryError, Paths


def main() -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description="the local control plane")
    parser.add_argument("command", choices=["up", "down", "kubeconfig"])
    parser.add_argument("--fake-nodes", type=int, default=2, help="KWOK nodes to add (default 2)")
    parser.add_argument(
        "--prometheus", action="store_true", help="also start Prometheus scraping the serving pods"
    )
    parser.add_argument(
        "--no-real-node",
        action="store_true",
        help="do not start the real node (kubelet and containerd: docs/real-node.md)",
    )
    args = parser.parse_args()
    paths = Paths.from_env()
    try:
        if args.command == "up":
            start = time.monotonic()
            kubeconfig = launcher.up(
                paths,
                fake_nodes=args.fake_nodes,
                with_prometheus=args.prometheus,
                real_node=not args.no_real_node,
            )
            print(
                f"cluster {paths.name} ready in {time.monotonic() - start:.1f} s", file=sys.stderr
            )
            print(f"export KUBECONFIG={kubeconfig}", file=sys.stderr)
            if args.prometheus:
                print(f"prometheus: {prometheus.url()}", file=sys.stderr)
        elif args.command == "down":
            launcher.down(paths)
        else:
            print(launcher.external_kubeconfig() or paths.kubeconfig)
    except MissingBinaryError as e:
        print(f"localcluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
