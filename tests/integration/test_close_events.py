"""Close events against the real kernel: real namespaces, real connections, real destroy broadcasts.

Every test here subscribes through the Poller (the library face the daemon uses) or the
NamespaceManager + CloseEvents pair, churns connections in namespaces made with ``ip netns
add`` (tests/support/close_churn.py, run inside each with ``ip netns exec``), and checks what
came out.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtcp_uring import native, records
from xtcp_uring.app.metrics import Metrics
from xtcp_uring.closes import CloseEvents
from xtcp_uring.native import closes as native_closes
from xtcp_uring.namespaces import NamespaceManager
from xtcp_uring.poller import Poller
from xtcp_uring.wire.netlink import NETLINK_SOCK_DIAG

CHURN = str(Path(__file__).resolve().parents[1] / "support" / "close_churn.py")
EVENT_CLOSE = 1  # proto Event.EVENT_CLOSE, written here so a renumbering in C is caught
CLONE_NEWNET = 0x40000000


def churn(ns: str, n: int, *, quiet: bool = False) -> list[dict] | int:
    """Run close_churn.py in namespace ns; its JSON lines (or, quiet, the number of ends closed)."""
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, CHURN, str(n)] + (["--quiet"] if quiet else []),
                         check=True, capture_output=True, text=True, timeout=120).stdout
    if quiet:
        return int(out.strip())
    return [json.loads(line) for line in out.splitlines()]


def rows(batches) -> list[dict]:
    """One dict per close record: its namespace and the fields the tests compare."""
    out = []
    for b in batches:
        assert b.event == "close"
        for d in b.dumps:
            a = d.array()
            for i in range(d.count):
                r = a[i]
                out.append({"netns": d.netns, "family": int(r["inet_diag_msg_family"]),
                            "sport": int(r["inet_diag_msg_socket_source_port"]),
                            "dport": int(r["inet_diag_msg_socket_destination_port"]),
                            "event": int(r["event"]), "event_time_ns": int(r["event_time_ns"]),
                            "bytes_acked": int(r["tcp_info_bytes_acked"]),
                            "bytes_received": int(r["tcp_info_bytes_received"]),
                            "total_retrans": int(r["tcp_info_total_retrans"]),
                            "cookie": int(r["inet_diag_msg_socket_cookie"])})
    return out


async def collect(events: CloseEvents, want: int, timeout: float = 15.0) -> list[dict]:
    """Close records until `want` arrived (then one more flush, to catch any duplicate)."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        try:
            batch = await asyncio.wait_for(events.next_batch(), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        got += rows([batch])
    await asyncio.sleep(2 * events.flush_interval)
    events.flush()
    got += rows(events.take_ready())
    return got


def check_against_tcp_info(got: list[dict], expected: dict[str, list[dict]], t0: int) -> None:
    """Exactly one close record per socket end (by SO_COOKIE), in its namespace, with its
    final counters."""
    by_cookie: dict[int, list[dict]] = {}
    for r in got:
        by_cookie.setdefault(r["cookie"], []).append(r)
    want = {e["cookie"]: (ns, e) for ns, ends in expected.items() for e in ends}
    assert set(by_cookie) == set(want), (f"missing {sorted(set(want) - set(by_cookie))[:5]}, "
                                         f"unexpected {sorted(set(by_cookie) - set(want))[:5]}")
    for cookie, (ns, e) in want.items():
        [r] = by_cookie[cookie]  # exactly one per end
        assert (r["netns"], r["family"], r["sport"]) == (ns, e["family"], e["sport"]), (r, e)
        # An abortive close (tcp_disconnect) clears the destination port before the socket dies:
        # the kernel reports 0 then. The accepted end, reset by its peer first, keeps it.
        assert r["dport"] in ((e["dport"], 0) if e["abort"] else (e["dport"],)), (r, e)
        assert r["event"] == EVENT_CLOSE and r["event_time_ns"] >= t0
        if e.get("listener"):
            continue
        final = (r["bytes_acked"], r["bytes_received"], r["total_retrans"])
        if e["abort"] and r["dport"] == 0:  # the kernel zeroed them in tcp_disconnect
            assert final == (0, 0, 0), (ns, e, r)
        else:
            assert final == (e["bytes_acked"], e["bytes_received"], e["total_retrans"]), (ns, e, r)


@pytest.mark.parametrize("n", [12])
def test_one_close_record_per_socket_end_ring_and_sockets_agree(netns_farm, n):
    """Three namespaces, N connections per family each, opened, used and closed while two
    pollers (io_uring, plain sockets) are subscribed: each gives exactly one record per end,
    in the right namespace, with the final counters TCP_INFO read just before close; and the
    two give the same records."""
    names = netns_farm.add(3, sockets=False)

    async def main():
        pollers = [Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=0.2,
                          use_uring=use, interval=3600) for use in (True, False)]
        for p in pollers:
            await p.start()
            await p.poll()  # reconcile: each namespace gets its close subscription
            assert p.close_events.stats.subscriptions == len(names)
        assert [p.close_events.stats.backend for p in pollers] == ["io_uring", "sockets"]
        t0 = time.time_ns()
        expected = {}
        for ns in names:
            expected[ns] = await asyncio.to_thread(churn, ns, n)
        want = sum(len(v) for v in expected.values())
        assert want == len(names) * 2 * (2 * n + 1)
        got = [await collect(p.close_events, want) for p in pollers]
        stats = [p.close_events.stats for p in pollers]
        for p in pollers:
            await p.close()
        return expected, got, stats, t0

    expected, (ring, plain), stats, t0 = asyncio.run(main())
    check_against_tcp_info(ring, expected, t0)
    check_against_tcp_info(plain, expected, t0)
    strip = lambda rs: sorted(tuple(sorted((k, v) for k, v in r.items() if k != "event_time_ns")) for r in rs)  # noqa: E731
    assert strip(ring) == strip(plain)
    for s in stats:
        assert s.lost == 0 and s.rejected_sender == 0
        assert s.records_by_netns == {ns: len(ends) for ns, ends in expected.items()}


def test_close_records_carry_the_poll_labels_and_encode(netns_farm):
    """Close records reach the sinks' encoders like poll records: the namespace labels of a
    poll, plus event=EVENT_CLOSE and the receive time in the protobuf message."""
    [ns] = netns_farm.add(1, sockets=False)

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=0.2,
                          interval=3600, hostname="closes-test") as p:
            poll = await p.poll()
            await asyncio.to_thread(churn, ns, 2)
            batch = await asyncio.wait_for(p.close_events.next_batch(), 10)
            return poll, batch

    poll, batch = asyncio.run(main())
    msgs = list(batch)
    assert msgs and all(m.netns == ns and m.hostname == "closes-test" and m.event == EVENT_CLOSE for m in msgs)
    poll_ns = [d for d in poll.dumps if d.netns == ns]
    assert poll_ns, "the namespace was polled"
    from xtcp_uring import schema
    record_cls, _ = schema.message_classes()
    poll_labels = record_cls.FromString(poll_ns[0].labels)
    assert poll_labels.netns_inode and all(m.netns_inode == poll_labels.netns_inode and
                                           m.netns_cookie == poll_labels.netns_cookie for m in msgs)
    assert all(m.event_time_ns >= batch.timestamp_ns - 10**10 for m in msgs)
    assert len(batch.envelope()) > 0


def test_namespace_deleted_while_subscribed(netns_farm):
    """A namespace deleted while subscribed: what it closed before still arrives, its
    subscription ends at the next reconcile (its sockets closed, nothing leaked), the others
    go on."""
    names = netns_farm.add(2, sockets=False)
    doomed, kept = names

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=0.2,
                          interval=3600) as p:
            await p.poll()
            events = p.close_events
            assert events.stats.subscriptions == 2
            before = await asyncio.to_thread(churn, doomed, 3)
            subprocess.run(["ip", "netns", "del", doomed], check=True)
            netns_farm._ip_names.discard(doomed)
            await p.poll()  # the reconcile that finds it gone
            assert events.stats.subscriptions == 1
            assert {ns.name for ns in p.manager.namespaces} == {kept}
            after = await asyncio.to_thread(churn, kept, 3)
            got = await collect(events, len(before) + len(after))
            return before, after, got

    before, after, got = asyncio.run(main())
    assert sum(1 for r in got if r["netns"] == doomed) == len(before)
    assert sum(1 for r in got if r["netns"] == kept) == len(after)


def test_flood_past_a_small_receive_buffer_counts_lost_events(netns_farm):
    """Closes faster than we read, into a 4 KiB receive buffer: the kernel drops events and we
    count them per namespace; every close is either a record or counted lost, none silent."""
    [ns] = netns_farm.add(1, sockets=False)

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_events_rcvbuf=4096,
                          close_flush_interval=0.2, interval=3600) as p:
            await p.poll()
            events = p.close_events
            # Blocking call on purpose: the event loop, which re-arms the RECVs, waits with it.
            ends = churn(ns, 1000, quiet=True)  # > the ring's 512 provided buffers + the queue
            got = await collect(events, ends, timeout=3)
            metrics = Metrics()
            metrics.observe_closes(events.stats)
            text = metrics.registry.get_sample_value("xtcp_close_events_lost_total", {"netns": ns})
            return ends, got, events.stats, text

    ends, got, stats, lost_metric = asyncio.run(main())
    assert stats.lost_by_netns.get(ns, 0) > 0
    assert lost_metric == stats.lost_by_netns[ns]
    assert len(got) + stats.lost == ends, (len(got), stats.lost, ends)
    assert len({r["cookie"] for r in got}) == len(got)  # no duplicates after the overrun


def test_batches_a_slow_consumer_leaves_are_dropped_counted_and_exported(netns_farm):
    """Nobody takes the close batches: past queue_size the oldest go, and every record in them
    is counted (stats and /metrics), so kept + dropped is every close."""
    [ns] = netns_farm.add(1, sockets=False)

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=3600,
                          interval=3600) as p:
            await p.poll()
            events = p.close_events
            events.queue_size = 2
            total = 0
            for _ in range(4):
                total += len(await asyncio.to_thread(churn, ns, 2))
                deadline = time.monotonic() + 10
                while events.stats.records < total and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    events.flush()  # one batch per round at least: nobody consumes them
            metrics = Metrics()
            metrics.observe_closes(events.stats)
            kept = events.take_ready()
            return total, kept, events.stats, metrics

    total, kept, stats, metrics = asyncio.run(main())
    assert stats.records == total and stats.batches >= 4
    assert len(kept) == 2 and stats.dropped_batches == stats.batches - 2
    assert stats.dropped_records == total - sum(len(b) for b in kept) > 0
    sample = metrics.registry.get_sample_value
    assert sample("xtcp_close_batches_dropped_total") == stats.dropped_batches
    assert sample("xtcp_close_records_dropped_total", {"reason": "queue_full"}) == stats.dropped_records
    assert sample("xtcp_close_records_dropped_total", {"reason": "overflow"}) == 0
    assert sample("xtcp_close_subscriptions", {"state": "open"}) == 1


def test_forged_unicast_to_the_close_socket_is_refused(netns_farm):
    """Only the kernel may feed a close-event socket: a well-formed forged destroy message
    unicast to its port id is refused, while an unconnected control socket takes it; the
    kernel's multicast still arrives after connect (the other tests)."""
    [ns] = netns_farm.add(1, sockets=False)

    def forged() -> bytes:
        body = struct.pack("=BBBBHH16s16sIIIIIIII", socket.AF_INET, 7, 0, 0, socket.htons(31337),
                           socket.htons(4444), socket.inet_aton("198.51.100.7"), socket.inet_aton("203.0.113.9"),
                           0, 0xDEAD, 0xBEEF, 0, 0, 0, 0, 1234)
        return struct.pack("=IHHII", 16 + len(body), 20, 0, 0, 0) + body  # seq 0 and pid 0, as the kernel's

    async def main():
        manager = NamespaceManager(netns_farm.glob, close_events_rcvbuf=1 << 20)
        events = CloseEvents(labels=lambda ns_, ts: records.encode_labels(netns=ns_.name), flush_interval=0.2)
        manager.before_close.append(events.forget)
        events.start()
        await manager.reconcile()
        events.sync(manager.namespaces)
        [target] = manager.namespaces
        peek = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG, fileno=os.dup(target.close_fd))
        port = peek.getsockname()[0]
        peek.close()
        nsfd = os.open(target.path, os.O_RDONLY)
        try:
            result = await asyncio.to_thread(_send_from_namespace, nsfd, port, forged())
        finally:
            os.close(nsfd)
        await asyncio.sleep(0.5)
        events.flush()
        got = rows(events.take_ready())
        await events.close()
        manager.close()
        return result, got

    (to_target, to_control), got = asyncio.run(main())
    assert to_target == errno.ECONNREFUSED
    assert to_control == 0  # the same send to a socket that is not connected is delivered
    assert not [r for r in got if r["sport"] == 31337]


def _send_from_namespace(nsfd: int, port: int, payload: bytes) -> tuple[int, int]:
    """In a thread: enter the namespace, unicast payload to port and to a fresh control
    socket there; (errno or 0) for each."""
    import ctypes

    setns = ctypes.CDLL(None, use_errno=True).setns  # os.setns is 3.12+
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    assert setns(nsfd, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
    try:
        control = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        control.bind((0, 0))
        sender = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        sender.bind((0, 0))
        results = []
        for dest in (port, control.getsockname()[0]):
            try:
                sender.sendto(payload, (dest, 0))
                results.append(0)
            except OSError as exc:
                results.append(exc.errno)
        control.close()
        sender.close()
        return tuple(results)
    finally:
        assert setns(home, CLONE_NEWNET) == 0
        os.close(home)


def test_native_decode_marks_close_records():
    """The plain reader's decode: seq 0 messages become close records stamped with the time
    given; a message of another seq (not a broadcast) is dropped and counted."""
    body = struct.pack("=BBBBHH16s16sIIIIIIII", socket.AF_INET, 7, 0, 0, socket.htons(1), socket.htons(2),
                       socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"), 0, 1, 2, 0, 0, 0, 0, 9)
    msg = lambda seq: struct.pack("=IHHII", 16 + len(body), 20, 0, seq, 0) + body  # noqa: E731
    buf = msg(0) + msg(77)
    recs, owner, n, stats = native_closes.decode_closes([(buf, 12345)], native.HOST_TCP_INFO_LAYOUT)
    assert n == 1 and recs[0].event == EVENT_CLOSE and recs[0].event_time_ns == 12345
    assert native_closes.EVENT_CLOSE == EVENT_CLOSE
    assert stats.rejected_seq == 1


def test_close_events_follow_the_pollers_sampling_by_cookie(netns_farm):
    """Poller(sample=N): close records are thinned by the same cookie hash as poll records, so
    a socket is either in both or in neither."""
    from xtcp_uring.poller import _COOKIE_MIX

    [ns] = netns_farm.add(1, sockets=False)

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=0.2,
                          interval=3600, sample=3) as p:
            await p.poll()
            ends = await asyncio.to_thread(churn, ns, 30)
            got = await collect(p.close_events, 1, timeout=5)
            return ends, got, p.stats.sampled_out

    ends, got, sampled_out = asyncio.run(main())
    mix = int(_COOKIE_MIX)
    kept = {e["cookie"] for e in ends if ((e["cookie"] * mix) % 2**64 >> 32) % 3 == 0}
    assert 0 < len(kept) < len(ends)
    assert {r["cookie"] for r in got} == kept
    assert sampled_out == len(ends) - len(kept)


def test_close_records_reach_a_store_made_before_close_events(netns_farm, tmp_path):
    """A chDB store whose table predates the event columns: the sink adds them at start, and
    the close records go in as EVENT_CLOSE with their receive time (the polls' rows as EVENT_POLL)."""
    pytest.importorskip("chdb")
    from xtcp_uring import clickhouse
    from xtcp_uring.sinks import open_sink

    [ns] = netns_farm.add(1, sockets=False)
    path = tmp_path / "store"
    store = clickhouse.open_store(path)
    try:
        old = "\n".join(line for line in clickhouse.table_ddl().splitlines()
                        if not line.startswith(("    `event` ", "    `event_time_ns` ")))
        store.query("CREATE DATABASE IF NOT EXISTS xtcp")
        store.query(old)
    finally:
        store.release()

    async def main():
        async with Poller(namespaces=netns_farm.glob, close_events=True, close_flush_interval=0.2,
                          interval=3600, families="inet") as p:
            await p.poll()
            ends = await asyncio.to_thread(churn, ns, 3)
            batches, n = [], 0
            deadline = time.monotonic() + 15
            while n < len(ends) and time.monotonic() < deadline:
                batch = await asyncio.wait_for(p.close_events.next_batch(), 15)
                batches.append(batch)
                n += len(batch)
            poll = await p.poll()  # a poll's rows too (the churn's TIME_WAIT sockets, if any)
        async with open_sink(f"chdb://{path}") as sink:
            for b in [*batches, poll]:
                await sink.send(b)
            await sink.flush(timeout=60)
        return ends, batches, poll

    ends, batches, poll = asyncio.run(main())
    store = clickhouse.open_store(path)
    try:
        got = str(store.query("SELECT event, count(), min(event_time_ns) > 0, uniqExact(inet_diag_msg_socket_cookie) "
                              "FROM xtcp.xtcp_records GROUP BY event", "CSV")).strip().splitlines()
    finally:
        store.release()
    rows = {event.strip('"'): tuple(map(int, rest)) for event, *rest in (line.split(",") for line in got)}
    closes = sum(len(b) for b in batches)
    assert closes == len(ends)
    assert rows.pop("EVENT_CLOSE") == (closes, 1, closes)
    assert rows == ({"EVENT_POLL": (len(poll), 0, len(poll))} if len(poll) else {})
    # The dashboard's "sockets by state (average per poll)" counts a poll's sockets only.
    from xtcp_uring.view import StoreBackend, ViewServer, charts, filters

    async def states() -> dict:
        backend = StoreBackend(path)
        try:
            return await ViewServer(backend).chart(charts.CHARTS["states"], filters.parse({"range": ["1h"]}))
        finally:
            backend.close()

    series = asyncio.run(states())["series"]
    polled = collections.Counter(int(s) for d in poll.dumps for s in d.array()["inet_diag_msg_state"])
    assert {name: sum(v for v in values if v) for name, values in series.items()} == \
        {charts.STATE_NAMES[state]: n for state, n in polled.items()}
