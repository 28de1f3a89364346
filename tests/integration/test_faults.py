"""Faults a fleet meets, each produced for real: a broker that stops answering for 60 s, 1000
namespaces coming and going while polling, malformed netlink from the fuzz corpus, SIGHUP,
and io_uring disabled by sysctl."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kafka_broker import consume, envelope_rows, kafka_broker, recreate_topic
from netns_farm import THREAD_IN_NEW_NETNS, open_fds
from test_daemon import Daemon, free_port, metric, scrape
from xtcp_uring import native, records
from xtcp_uring.poller import Poller

CORPUS = Path(__file__).resolve().parent.parent / "data" / "fuzz-corpus"


@pytest.mark.root
def test_broker_unresponsive_for_60s_buffers_within_bound_counts_drops_and_recovers(netns_farm):
    """The broker is SIGSTOPped (up but silent, the nastier outage) for 60 s while the daemon
    polls twice a second: its queue stays within bound, drops are counted, and everything not
    counted as dropped arrives once the broker answers again."""
    names = netns_farm.add(2)
    bound = 64 * 1024
    with kafka_broker() as broker:
        asyncio.run(recreate_topic(broker.bootstrap, "xtcp"))
        port = free_port()
        sink = (f"kafka://{broker.bootstrap}/xtcp?queue_bytes={bound}&write_timeout_s=2&retry_max_s=1"
                "&request_timeout_ms=1000")
        d = Daemon("--interval", "0.5", "--jitter", "0", "--namespaces", netns_farm.glob, "--sink", sink,
                   "--metrics-listen", f"127.0.0.1:{port}")
        try:
            d.wait_for_polls(2)
            os.kill(broker.proc.pid, signal.SIGSTOP)
            try:
                queue_max, t_end = 0.0, time.monotonic() + 60
                while time.monotonic() < t_end:
                    body = scrape(port, "/metrics")[1]
                    queue_max = max(queue_max, metric(body, "xtcp_sink_queue_bytes"))
                    time.sleep(1)
                assert metric(body, "xtcp_polls_total") >= 100, "polling went on during the outage"
                assert metric(body, "xtcp_records_dropped_total", reason="queue_full") > 0
                assert 0 < queue_max <= bound
            finally:
                os.kill(broker.proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + 60
            while metric(scrape(port, "/metrics")[1], "xtcp_sink_queue_bytes") > 0:
                assert time.monotonic() < deadline, "the queue did not drain after the outage"
                time.sleep(0.5)
        finally:
            assert d.stop() == 0, "".join(d.lines[-20:])
        polls = {p[0]: p[2] for p in d.polls()}
        assert all(p[1] == len(names) for p in d.polls())
        summary = [line for line in d.lines if "sent" in line and "dropped" in line][-1]
        sent, dropped = (int(x) for x in __import__("re").search(r"sent (\d+) records, dropped (\d+)", summary).groups())
        messages = asyncio.run(consume(broker.bootstrap, "xtcp", expect=10**6, timeout=15))
        delivered: dict[int, int] = {}
        for m in messages:
            rows = envelope_rows(m.value)
            delivered[rows[0].poll_id] = len(rows)  # at-least-once: a retried batch may repeat
        assert all(delivered[p] == polls[p] for p in delivered)
        assert sum(delivered.values()) + dropped == sum(polls.values()), "every record delivered or counted"
        assert dropped > 0 and sent >= sum(delivered.values())


_CHURN = textwrap.dedent("""
    import subprocess, sys
    prefix, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    def ip(verb, names):
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns {verb} {n}\\n" for n in names),
                       text=True, check=True)
    for r in range(rounds):
        names = [f"{prefix}{r}-{i}" for i in range(per_round)]
        ip("add", names)
        print("added", r, flush=True)
        sys.stdin.readline()   # the poller has seen this round: delete it while it keeps polling
        ip("del", names)
    print("done", flush=True)
""")


@pytest.mark.root
async def test_1000_namespaces_created_and_deleted_while_polling(netns_farm):
    """10 rounds of 100 namespaces: each round is added, seen by the running poller, then
    deleted while it keeps polling. What must hold whatever the machine's speed: every
    namespace is seen while it exists, none is reported by a poll that began after its
    deletion, and no fd of a deleted namespace is kept. The pace follows the poller, not the
    clock. A poll "began after" time t when an earlier batch was stamped after t: a batch's
    stamp is its send time, and its namespaces were reconciled just before it."""
    netns_farm.add(1)
    prefix = f"{netns_farm.prefix}churn-"
    rounds, per_round = 10, 100
    fds_before = open_fds()
    async with Poller(interval=0.05, jitter=0, namespaces=netns_farm.prefix + "*") as poller:
        churn = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHURN, prefix, str(rounds), str(per_round),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        seen: set[str] = set()
        pending: list[tuple[int, set[str]]] = []  # (deleted by this time, names) not yet settled
        gone: set[str] = set()  # deleted before a poll that already ran: never reported again

        async def next_batch():
            batch = await asyncio.wait_for(poller.__anext__(), 60)
            got = {d.netns for d in batch.dumps if d.netns.startswith(prefix)}
            assert not got & gone, f"deleted namespaces reported again: {sorted(got & gone)[:5]}"
            for when, names in list(pending):
                if batch.timestamp_ns > when:
                    gone.update(names)
                    pending.remove((when, names))
            return got, batch

        async def churn_says() -> bytes:
            return (await asyncio.wait_for(churn.stdout.readline(), 60)).strip()

        deleting: set[str] = set()
        for r in range(rounds):
            assert (await churn_says()).split() == [b"added", str(r).encode()]
            if deleting:  # the previous round's deletion finished before this round was added
                pending.append((time.time_ns(), deleting))
            names = {f"{prefix}{r}-{i}" for i in range(per_round)}
            for _ in range(200):
                if names <= seen:
                    break
                seen |= (await next_batch())[0]
            assert names <= seen, f"round {r}: {len(names - seen)} namespaces never seen"
            deleting = names
            churn.stdin.write(b"next\n")  # delete this round while the poller keeps polling
            await churn.stdin.drain()
        assert await churn_says() == b"done"
        assert await churn.wait() == 0
        pending.append((time.time_ns(), deleting))
        for _ in range(200):
            if not pending:
                break
            await next_batch()
        _, final = await next_batch()
        assert not pending and gone == seen and len(seen) == rounds * per_round
        assert {d.netns for d in final.dumps} == set(netns_farm.namespaces), "only the farm's namespace is left"
        assert len(final.dumps) == 2 * 1  # the farm's namespace, v4 and v6
    assert open_fds() == fds_before, "no fd of a deleted namespace is kept"


def test_fuzz_corpus_replays_without_a_crash():
    """Inputs the coverage-guided fuzzer (make fuzz) kept: every one decodes or is counted."""
    files = sorted(CORPUS.iterdir())
    assert len(files) >= 100
    malformed = 0
    for f in files:
        data = f.read_bytes()
        dump = records.decode_buffers([data], strict=False)
        assert dump.count <= native.count_socket_messages(data)
        malformed += dump.stats.malformed_offset is not None or dump.stats.bad_attributes > 0
        if dump.count:
            assert len(dump.encode(native.FRAME_DELIMITED)) > 0
    assert malformed > 10, "the corpus holds malformed input, not only clean dumps"


@pytest.mark.root
def test_sighup_rescans_threads_for_namespaces():
    """A namespace only a thread sits in is found by the (slow-cadence) task scan; SIGHUP asks
    for it before the next poll."""
    d = Daemon("--interval", "0.3", "--jitter", "0", "--namespaces", "pid:*", "--sink", "file:///dev/null",
               "--metrics-listen", "off")
    holder = None
    try:
        d.wait_for_polls(2)  # the first poll did the full task scan; the next one is 60 s away
        holder = subprocess.Popen([sys.executable, "-c", THREAD_IN_NEW_NETNS], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"
        before = d.wait_for_polls(len(d.polls()) + 3)[-1][1]
        d.proc.send_signal(signal.SIGHUP)
        after = d.wait_for_polls(len(d.polls()) + 2)[-1][1]
        assert after == before + 1
    finally:
        if holder is not None:
            holder.kill()
        assert d.stop() == 0


@pytest.mark.root
def test_io_uring_disabled_by_sysctl_falls_back_to_sockets_and_says_so(tmp_path):
    path = Path("/proc/sys/kernel/io_uring_disabled")
    old = path.read_text().strip()
    path.write_text("2")
    try:
        port = free_port()
        d = Daemon("--interval", "0.3", "--namespaces", "host", "--sink", "file:///dev/null",
                   "--metrics-listen", f"127.0.0.1:{port}")
        try:
            d.wait_for_polls(2)
            body = scrape(port, "/metrics")[1]
            assert metric(body, "xtcp_backend_info", backend="sockets", fallback="true") == 1
        finally:
            assert d.stop() == 0
        said = [line for line in d.lines if "io_uring unavailable" in line and "plain netlink sockets" in line]
        assert len(said) == 1, "said once, clearly"
    finally:
        path.write_text(old)
