"""python -m benchmarks --scenario big|many|churn|soak|store|emit|fleet|daemon|closes [options]; see README.md."""

from __future__ import annotations

import argparse
import sys

from .harness import DEFAULT_OUT, main
from .runner import XTCP_TOOLS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--scenario", choices=("big", "many", "churn", "soak"), default="big")
    p.add_argument("--sockets", type=int, help="established sockets in total (2 per connection); "
                   "default big/soak 100000, many/churn 50 per namespace")
    p.add_argument("--namespaces", type=int, help="default: big/soak 1, many 200, churn 20 (+ churning ones)")
    p.add_argument("--rounds", type=int, help="rounds; each runs every tool once (default 10, churn 40)")
    p.add_argument("--json", action="store_true", help="write JSON lines and a PNG chart into --out")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--tools", help="comma list to run (raw always runs): "
                   "ss,pyroute2,xtcp-sockets,xtcp-uring,xtcp-uring-async")
    p.add_argument("--pyroute2", choices=("auto", "on", "off"), default="auto", help="auto: only up to 5k sockets")
    ehash = p.add_mutually_exclusive_group()
    ehash.add_argument("--private-ehash", dest="private_ehash", action="store_true", default=None,
                       help="namespaces with their own TCP hash (default for big and soak)")
    ehash.add_argument("--shared-ehash", dest="private_ehash", action="store_false",
                       help="namespaces share the host's TCP hash (default for many and churn)")
    p.add_argument("--active", type=float, default=0.02, help="share of connections with traffic (1 exchange/s)")
    p.add_argument("--duration", type=float, default=600.0, help="soak: seconds")
    p.add_argument("--interval", type=float, default=1.0, help="soak: seconds between polls")
    p.add_argument("--soak-tool", default="xtcp-uring", choices=tuple(XTCP_TOOLS))
    p.add_argument("--churn-period", type=float, default=0.1, help="churn: seconds between namespace adds")
    p.add_argument("--churn-live", type=int, default=20, help="churn: churning namespaces alive at once")
    p.add_argument("--churn-connections", type=int, default=10, help="churn: connections per churning namespace")
    p.add_argument("--churn-gap", type=float, default=0.25, help="churn: seconds between rounds")
    p.add_argument("--strict", action="store_true", help="exit 1 when a budget line of an io_uring path fails (the fallback is reported)")
    p.add_argument("--chart-from", nargs="+", metavar="JSONL", help="only draw one chart from result files")
    p.add_argument("--chart-out", default="benchmarks/latest.png")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 40 if args.scenario == "churn" else 10
    return args


# Scenarios with their own options, in their own modules: `--scenario store --polls 20` is
# `python -m benchmarks.store --polls 20`.
OWN_MODULES = ("store", "emit", "fleet", "daemon", "closes")


def _own_module(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--scenario=") else (
            argv[i + 1] if arg == "--scenario" and i + 1 < len(argv) else None)
        if value in OWN_MODULES:
            return value
    return None


if __name__ == "__main__":
    argv = sys.argv[1:]
    module = _own_module(argv)
    if module is not None:
        import importlib

        rest = [a for i, a in enumerate(argv) if not (a == "--scenario" or a.startswith("--scenario=")
                                                         or (i and argv[i - 1] == "--scenario"))]
        sys.exit(importlib.import_module(f"benchmarks.{module}").main(rest))
    try:
        sys.exit(main(parse_args()))
    except KeyboardInterrupt:
        print("interrupted: farm and tools torn down", file=sys.stderr)
        sys.exit(130)
