"""--emit changed on real sockets with real traffic: every socket that moved is sent, idle ones
are left out, and the reasons add up; checked against an independent per-socket comparison of
two full polls."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from xtcp_uring import emit
from xtcp_uring.poller import Poller

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is not an installed package
from benchmarks.farm import SocketFarm  # noqa: E402

pytestmark = pytest.mark.root


def by_cookie(batch) -> dict[int, tuple]:
    out = {}
    for d in batch.dumps:
        arr = d.array()
        for row in arr:
            out[int(row["inet_diag_msg_socket_cookie"])] = tuple(int(row[f]) for f in emit.WATCHED)
    return out


async def test_changed_keeps_every_socket_that_moved_and_leaves_idle_ones_out():
    # 200 connections, 10% with a message every 0.1 s: ~40 busy sockets of ~400.
    with SocketFarm(connections=200, namespaces=1, active_fraction=0.1, active_interval=0.1) as farm:
        change = emit.ChangeFilter(keyframe_every=10_000)
        previous = None
        async with Poller(namespaces=farm.names[0]) as poller:
            for poll in range(4):
                batch = await poller.poll()
                full = by_cookie(batch)
                change.apply(batch.dumps, batch.poll_id)
                kept = by_cookie(batch)
                if previous is None:
                    assert kept == full and change.stats.last_poll["new"] == len(full)
                else:
                    moved = {c for c, v in full.items() if previous.get(c) != v}
                    mix = int(emit._COOKIE_MIX)
                    keyframes = {c for c in full
                                 if (((c * mix) % 2**64 >> 32) + batch.poll_id) % 10_000 == 0}
                    assert set(kept) == moved | keyframes
                    assert 20 <= len(moved) < 0.5 * len(full)  # the busy ones, not the idle ones
                    last = change.stats.last_poll
                    assert sum(last.values()) == len(full) and last["unchanged"] == len(full) - len(kept)
                previous = full
                await asyncio.sleep(0.5)


async def test_poller_emit_changed_rules_and_counts():
    with SocketFarm(connections=100, namespaces=1, active_fraction=0.0) as farm:
        # No traffic: after the first poll only keyframes (one poll in 2, by cookie) and the RTT
        # rule keep records.
        async with Poller(namespaces=farm.names[0], emit="changed", keyframe_every=2) as poller:
            first = await poller.poll()
            second = await poller.poll()
            third = await poller.poll()
        total = len(first)
        assert poller.stats.emit.total["new"] == total
        # Each socket is a keyframe in exactly one of two consecutive polls.
        assert len(second) + len(third) == total and 0 < len(second) < total
        async with Poller(namespaces=farm.names[0], emit="changed", keyframe_every=1000,
                          keep_rtt_above_us=1) as poller:
            await poller.poll()
            again = await poller.poll()
        with_rtt = sum(int(np.count_nonzero(d.array()["tcp_info_rtt"] > 1)) for d in first.dumps)
        assert poller.stats.emit.last_poll["rtt"] >= 0.9 * with_rtt > 0  # established sockets have an RTT
        assert len(again) >= poller.stats.emit.last_poll["rtt"]
