"""Rows per poll with ``--emit all`` and ``--emit changed``: ``python -m benchmarks.emit``.

A socket farm (``farm.py``) with ``--active`` of its connections exchanging a message every
second is polled ``--polls`` times, ``--interval`` apart, by the real poller with
``emit="changed"``. Each poll reports the sockets seen (what ``all`` sends), the records kept
and why. The first poll (every socket ``new``) is reported apart. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

from xtcp_uring.wire import request
from xtcp_uring.poller import Poller

from .farm import SocketFarm


async def run(args) -> dict:
    with SocketFarm(args.sockets // 2, 1, private_ehash=True, active_fraction=args.active,
                    log=lambda m: print(m, file=sys.stderr)) as farm:
        async with Poller(namespaces=farm.glob, groups=request.ALL_GROUPS, interval=3600.0, emit="changed",
                          keyframe_every=args.keyframe_every) as poller:
            polls = []
            for _ in range(args.polls):
                t0 = time.monotonic()
                batch = await poller.poll()
                last = dict(poller.stats.emit.last_poll)
                polls.append({"seen": sum(last.values()), "kept": len(batch), **last})
                await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    steady = polls[1:]
    seen = statistics.mean(p["seen"] for p in steady)
    kept = statistics.mean(p["kept"] for p in steady)
    reasons = {k: round(statistics.mean(p[k] for p in steady), 1) for k in polls[0] if k not in ("seen", "kept")}
    return {"sockets": args.sockets, "active": args.active, "interval_s": args.interval,
            "keyframe_every": args.keyframe_every, "polls": args.polls, "first_poll_kept": polls[0]["kept"],
            "all_rows_per_poll": round(seen), "changed_rows_per_poll": round(kept, 1),
            "reduction": round(seen / kept, 1) if kept else None,
            "changed_rows_per_s": round(kept / args.interval, 1), "by_reason": reasons}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.emit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--active", type=float, default=0.02, help="share of connections with a message per second")
    p.add_argument("--polls", type=int, default=12)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    p.add_argument("--keyframe-every", type=int, default=60)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: the farm's namespaces", file=sys.stderr)
        return 2
    r = asyncio.run(run(args))
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['sockets']} sockets, {r['active']:.0%} active, every {r['interval_s']:g} s: all sends "
              f"{r['all_rows_per_poll']} rows/poll, changed {r['changed_rows_per_poll']} "
              f"({r['reduction']}x fewer; keyframe every {r['keyframe_every']} polls); kept by reason "
              f"{r['by_reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
