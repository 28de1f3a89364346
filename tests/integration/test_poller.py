"""Poller end to end on real namespaces, on every backend; lifecycle and failure behaviour.

Over 450 lines on purpose: one Poller, one fixture set (farms, backends); its lifecycle and
failure cases read best beside each other.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import sys
import textwrap
import threading
import time
import warnings
from collections import Counter

import numpy as np
import pytest

from netns_farm import TCP_ESTABLISHED, TCP_LISTEN, NetnsFarm, open_fds, run_unprivileged
from xtcp_uring import poller as poller_mod
from xtcp_uring.app import options
from xtcp_uring import records
from xtcp_uring.wire import request
from xtcp_uring.backends import DumpResult
from xtcp_uring.errors import ConfigError, RingUnavailableError
from xtcp_uring.poller import Poller, poll_once

root = pytest.mark.root
INODE = "inet_diag_msg_inode"


def by_namespace(batch: records.Batch) -> dict[str, list[int]]:
    """netns name -> socket inodes (every record, duplicates kept)."""
    out: dict[str, list[int]] = {}
    for d in batch.dumps:
        out.setdefault(d.netns, []).extend(int(i) for i in d.array()[INODE])
    return out


def assert_every_socket_once(batch: records.Batch, farm: NetnsFarm) -> None:
    got = by_namespace(batch)
    for name, expected in farm.expected().items():
        inodes = got.get(name, [])
        dupes = [i for i, c in Counter(inodes).items() if c > 1]
        assert not dupes, f"{name}: sockets {dupes} came back twice"
        # TIME_WAIT leftovers have inode 0; everything we hold open must be there, nothing else.
        assert set(inodes) - {0} == expected, f"{name}: got {sorted(set(inodes))}, want {sorted(expected)}"
    assert not [d for d in batch.dumps if d.error], [d.error for d in batch.dumps if d.error]


@pytest.fixture(scope="module", params=[1, 20, 200], ids=lambda n: f"N{n}")
def farm(request):
    """N bind-mounted namespaces plus one unshared one, shared by the tests of one N."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces); CI runs as root")
    with NetnsFarm() as f:
        f.add(request.param)
        f.add_unshared()
        yield f


@root
async def test_every_socket_exactly_once_in_its_namespace(farm, backend_options):
    batch = await poll_once(namespaces=farm.selection(), **backend_options)
    assert batch.backend == ("io_uring" + ("+async" if backend_options.get("async_dumps") else "") + (
        "" if backend_options.get("decode_thread", True) else "+inline-decode")
        if backend_options["use_uring"] else "sockets")
    assert {d.netns for d in batch.dumps} == set(farm.namespaces)
    assert len(batch.dumps) == 2 * len(farm.namespaces)  # one per family
    assert_every_socket_once(batch, farm)
    # The records say where they came from: labels match the namespace, per record.
    sample = list(farm.namespaces)[:: max(1, len(farm.namespaces) // 5)]
    inode_of = {name: ns.inode for name, ns in farm.namespaces.items()}
    pids = {name: ns.holder.pid for name, ns in farm.namespaces.items() if ns.holder}
    for d in batch.dumps:
        if d.netns not in sample or not d.count:
            continue
        one = records.Batch([d])
        for msg in one:
            assert msg.netns == d.netns and msg.netns_inode == inode_of[d.netns]
            assert msg.netns_cookie > 0 and msg.dump_family == d.family == msg.inet_diag_msg_family
            assert msg.netns_pid == pids.get(d.netns, 0)
            assert msg.timestamp_ns == batch.timestamp_ns and msg.poll_id == batch.poll_id
    states = Counter(int(s) for s in batch.column("inet_diag_msg_state"))
    n = len(farm.namespaces)
    assert states[TCP_LISTEN] == 2 * n and states[TCP_ESTABLISHED] == 4 * n


@root
async def test_backends_return_the_same_records(netns_farm):
    netns_farm.add(5)
    netns_farm.add_unshared()
    cols = ("inet_diag_msg_inode", "inet_diag_msg_state", "inet_diag_msg_socket_source_port",
            "inet_diag_msg_socket_destination_port", "inet_diag_msg_family", "inet_diag_msg_socket_cookie")

    def key(batch):
        rows = set()
        for d in batch.dumps:
            a = d.array()
            rows |= {(d.netns, *(int(a[c][i]) for c in cols)) for i in range(d.count) if a[INODE][i]}
        return rows

    results = {}
    for label, options in (("sockets", {"use_uring": False}), ("io_uring", {"use_uring": True}),
                           ("io_uring+async", {"use_uring": True, "async_dumps": True})):
        results[label] = key(await poll_once(namespaces=netns_farm.selection(), **options))
    assert results["sockets"] == results["io_uring"] == results["io_uring+async"]
    assert len(results["sockets"]) == 6 * 6


@root
async def test_poll_time(farm, backend_options, record_property):
    """Poll time for N + 1 namespaces (the number for the notes is N = 200)."""
    async with Poller(namespaces=farm.selection(), **backend_options) as p:
        await p.poll()  # opens the namespaces
        times = []
        for _ in range(5):
            batch = await p.poll()
            times.append(batch.duration_ns / 1e6)
        assert_every_socket_once(batch, farm)
    times.sort()
    record_property("poll_ms_median", times[2])
    print(f"{batch.backend}: {len(farm.namespaces)} namespaces, poll median {times[2]:.1f} ms "
          f"(min {times[0]:.1f}, reconcile {p.stats.last_reconcile_ns / 1e6:.1f} ms)")


@root
async def test_churn_between_polls_no_stale_namespace_no_fd_leak(netns_farm, backend_options):
    netns_farm.add(5)
    unshared = netns_farm.add_unshared()
    before = open_fds()
    rng = random.Random(7)
    async with Poller(namespaces=netns_farm.selection(), **backend_options) as p:
        for step in range(8):
            batch = await p.poll()
            assert {d.netns for d in batch.dumps} == set(netns_farm.namespaces)
            assert_every_socket_once(batch, netns_farm)
            assert len(p.manager.namespaces) == len(netns_farm.namespaces)
            # One fd per live namespace, plus whatever the backend holds (a ring): constant.
            if step == 0:
                backend_fds = open_fds() - before - len(netns_farm.namespaces)
            assert open_fds() == before + backend_fds + len(netns_farm.namespaces)
            # Churn: remove two, add up to three; the unshared one goes away at step 3.
            bound = sorted(n for n in netns_farm.namespaces if not n.startswith("pid:"))
            for name in rng.sample(bound, k=min(2, len(bound))):
                netns_farm.remove(name)
            netns_farm.add(rng.randint(1, 3))
            if step == 3:
                netns_farm.remove(unshared)
        assert p.stats.namespaces.vanished >= 15
    assert open_fds() == before


@root
async def test_churn_during_polls_never_crashes(netns_farm, backend_options):
    netns_farm.add(10, sockets=False)
    before = open_fds()
    stop = threading.Event()
    errors: list[BaseException] = []
    churner = NetnsFarm(prefix=netns_farm.prefix + "c")  # same glob: polled too

    def churn():
        try:
            while not stop.is_set():
                names = churner.add(3)
                time.sleep(0.002)
                for n in names:
                    churner.remove(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    t = threading.Thread(target=churn)
    t.start()
    try:
        async with Poller(interval=0.01, max_polls=40, namespaces=netns_farm.glob, **backend_options) as p:
            polls = 0
            async with asyncio.timeout(60):
                async for batch in p:
                    polls += 1
                    names = {d.netns for d in batch.dumps}
                    assert set(netns_farm.namespaces) <= names
                    for d in batch.dumps:  # a namespace deleted mid-poll: empty or an error, never a crash
                        assert d.count >= 0
            assert polls == 40
    finally:
        stop.set()
        t.join()
        churner.close()
    assert not errors, errors
    assert open_fds() == before
    # After the churn stops, one more poll sees exactly what exists.
    batch = await poll_once(namespaces=netns_farm.glob, **backend_options)
    assert {d.netns for d in batch.dumps} == set(netns_farm.namespaces)


_UNPRIVILEGED_POLL = textwrap.dedent("""
    import asyncio, json, logging, sys
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    from xtcp_uring.poller import poll_once
    batch = asyncio.run(poll_once(namespaces=sys.argv[1].split(","), use_uring=sys.argv[2] == "1"))
    print(json.dumps({"backend": batch.backend,
                      "dumps": [[d.netns, d.family, d.count, d.error] for d in batch.dumps]}))
""")


@root
@pytest.mark.parametrize("uring", [False, True], ids=["sockets", "io_uring"])
def test_not_root_polls_host_and_reports_the_others_once(netns_farm, uring):
    names = netns_farm.add(4)
    proc = run_unprivileged(_UNPRIVILEGED_POLL, f"host,{netns_farm.glob}", "1" if uring else "0")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    host = [d for d in out["dumps"] if d[0] == "host"]
    assert sorted(d[1] for d in host) == [2, 10] and not any(d[3] for d in host)
    failed = {d[0]: d[3] for d in out["dumps"] if d[0] != "host"}
    assert set(failed) == set(names)
    assert all("CAP_SYS_ADMIN" in msg for msg in failed.values())
    lines = [ln for ln in proc.stderr.splitlines() if "CAP_SYS_ADMIN" in ln]
    assert len(lines) == 1, proc.stderr


# --- behaviour that needs no namespace: a fake backend, the host namespace -------------------

class SlowBackend:
    """Records concurrency; each dump_all takes `delay` seconds and returns empty dumps."""

    name = "fake"

    def __init__(self, delay=0.0, fail_on=None):
        self.delay, self.fail_on = delay, fail_on
        self.running = self.max_running = self.calls = 0
        self.closed = False

    async def dump_all(self, jobs):
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.fail_on == self.calls:
                raise RuntimeError("backend exploded")
            await asyncio.sleep(self.delay)
            return [DumpResult(j.net_id, fam) for j in jobs for fam, _ in j.requests]
        finally:
            self.running -= 1

    def close(self):
        self.closed = True


async def test_slow_poll_skips_ticks_instead_of_doubling():
    fake = SlowBackend(delay=0.25)
    async with Poller(interval=0.05, max_polls=3, namespaces="host", backend=fake) as p:
        ids = [b.poll_id async for b in p]
    assert ids == [1, 2, 3] and fake.max_running == 1
    assert p.stats.skipped_ticks >= 6 and p.stats.polls == 3
    assert fake.closed


async def test_a_failing_poll_makes_async_for_raise_not_hang():
    fake = SlowBackend(fail_on=2)
    got = []
    with pytest.raises(RuntimeError, match="exploded"):
        async with asyncio.timeout(10):
            async with Poller(interval=0.01, namespaces="host", backend=fake) as p:
                async for b in p:
                    got.append(b.poll_id)
    assert got == [1]


async def test_slow_consumer_bounds_the_queue():
    fake = SlowBackend()
    async with Poller(interval=0.01, max_polls=6, queue_size=1, namespaces="host", backend=fake) as p:
        async for b in p:
            await asyncio.sleep(0.05)
            assert len(p._ready) <= 1
    assert p.stats.skipped_ticks > 0 and p.stats.polls == 6


async def test_first_poll_immediately_or_after_one_interval():
    for immediate, low, high in ((True, 0.0, 0.15), (False, 0.3, 0.6)):
        t0 = time.monotonic()
        async with Poller(interval=0.3, immediate=immediate, max_polls=1, namespaces="host",
                          backend=SlowBackend()) as p:
            async for _ in p:
                elapsed = time.monotonic() - t0
        assert low <= elapsed < high, (immediate, elapsed)


async def test_jitter_stays_within_its_fraction():
    t0 = time.monotonic()
    async with Poller(interval=0.1, jitter=0.5, max_polls=4, namespaces="host", backend=SlowBackend()) as p:
        stamps = [time.monotonic() - t0 async for _ in p]
    for k, t in enumerate(stamps[1:], start=1):
        assert k * 0.1 - 0.01 <= t <= k * 0.1 + 0.05 + 0.05, stamps


async def test_lifecycle_no_io_in_init_idempotent_close_and_resource_warning():
    before, threads = open_fds(), threading.active_count()
    p = Poller(namespaces="host", use_uring=False)
    assert open_fds() == before and threading.active_count() == threads
    await p.start()
    await p.start()
    batch = await p.poll()
    assert batch.backend == "sockets" and {d.netns for d in batch.dumps} == {"host"}
    await p.close()
    await p.close()
    assert open_fds() == before
    with pytest.raises(RuntimeError):
        await p.poll()

    leaked = Poller(namespaces="host", use_uring=False)
    await leaked.start()
    await leaked.poll()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del leaked
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "Unclosed Poller" in str(w.message) for w in caught)
    assert open_fds() == before  # __del__ still freed what it could


async def test_not_started_and_mixing_poll_with_iteration_are_errors():
    p = Poller(namespaces="host", backend=SlowBackend())
    with pytest.raises(RuntimeError, match="not started"):
        await p.__anext__()
    async with p:
        await p.__anext__()
        with pytest.raises(RuntimeError, match="mixed"):
            await p.poll()


def test_options_are_checked_before_any_io():
    for bad in ({"interval": 0}, {"jitter": 1.0}, {"max_polls": 0}, {"sample": 0},
                {"use_uring": "yes"}, {"families": ["unix"]}, {"states": ["nope"]},
                {"filter": "dport 99999"}, {"namespaces": ""}, {"states": 0}):
        with pytest.raises((ConfigError, request.RequestError)):
            Poller(**bad)


async def test_auto_falls_back_to_sockets_once_and_says_so(monkeypatch, caplog):
    def unavailable(*a, **k):
        raise RingUnavailableError("io_uring disabled by kernel.io_uring_disabled=2")

    monkeypatch.setattr(poller_mod, "_uring_backend", unavailable)
    monkeypatch.setattr(poller_mod, "_fallback_logged", False)
    for _ in range(2):
        async with Poller(namespaces="host", use_uring="auto") as p:
            batch = await p.poll()
            assert batch.backend == "sockets" and p.stats.fallback
            assert "io_uring_disabled" in p.stats.fallback_reason
    assert len([r for r in caplog.records if "io_uring unavailable" in r.getMessage()]) == 1
    with pytest.raises(RingUnavailableError):
        async with Poller(namespaces="host", use_uring=True):
            pass


async def test_auto_falls_back_when_the_ring_fails_at_first_use(monkeypatch):
    class RefusingRing(SlowBackend):
        name = "io_uring"

        async def dump_all(self, jobs):
            raise RingUnavailableError("seccomp refused io_uring_enter")

    monkeypatch.setattr(poller_mod, "_uring_backend", lambda **options: RefusingRing())
    async with Poller(namespaces="host", use_uring="auto") as p:
        batch = await p.poll()
    assert batch.backend == "sockets" and p.stats.fallback


async def test_sampling_is_deterministic_by_cookie():
    # Enough sockets in the host namespace to sample from.
    import socket

    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]
    only_ours = {"namespaces": "host", "use_uring": False, "families": ["inet"],
                 "filter": f"sport {port} or dport {port}"}
    conns = [socket.create_connection(lst.getsockname()) for _ in range(60)]
    accepted = [lst.accept()[0] for _ in conns]
    try:
        async with Poller(**only_ours) as p:
            full = set(int(c) for c in (await p.poll()).column("inet_diag_msg_socket_cookie"))
        kept = []
        for _ in range(2):
            async with Poller(**only_ours, sample=3) as p:
                batch = await p.poll()
                kept.append(set(int(c) for c in batch.column("inet_diag_msg_socket_cookie")))
                assert p.stats.sampled_out > 0
        mixed = (np.array(sorted(full), dtype=np.uint64) * poller_mod._COOKIE_MIX) >> np.uint64(32)
        want = {c for c, m in zip(sorted(full), mixed) if int(m) % 3 == 0}
        assert len(full) == 121
        assert kept[0] == kept[1] == want
        assert 0.15 < len(kept[0]) / len(full) < 0.55
    finally:
        for s in conns + accepted + [lst]:
            s.close()


def test_works_under_uvloop():
    uvloop = pytest.importorskip("uvloop")
    batch = uvloop.run(poll_once(namespaces="host", use_uring=False))
    assert {d.netns for d in batch.dumps} == {"host"} and not any(d.error for d in batch.dumps)


@root
def test_works_under_uvloop_with_namespaces(netns_farm):
    uvloop = pytest.importorskip("uvloop")
    netns_farm.add(3)
    batch = uvloop.run(poll_once(namespaces=netns_farm.selection(), use_uring=False))
    assert_every_socket_once(batch, netns_farm)


async def test_list_namespaces_and_cli_options():
    rows = await poller_mod.list_namespaces("host", use_uring=False)
    assert [r["name"] for r in rows] == ["host"] and rows[0]["sockets"] >= 0

    class Args:
        namespaces, families, states, filter, groups, sample, uring, async_dumps = (
            "host", "inet", "0x2", "sport 22", "info,cong", 1, "off", False)

    opts = options.poller_options(Args)
    p = Poller(**opts)
    assert p.families == (2,) and p.states == 2 and p.use_uring is False
    assert p.ext == request.ext_for(["info", "cong"])


async def test_label_bytes_equal_one_encode_labels_call():
    from xtcp_uring import __version__, schema

    async with Poller(namespaces="host", use_uring=False) as p:
        for _ in range(2):  # the second poll uses the cached namespace part
            batch = await p.poll()
            [ns] = p.manager.namespaces
            for d in batch.dumps:
                assert d.labels == records.encode_labels(
                    timestamp_ns=batch.timestamp_ns, poll_id=batch.poll_id, hostname=p.hostname,
                    kernel_release=os.uname().release, netns="host", netns_inode=ns.inode,
                    netns_cookie=ns.cookie, netns_pid=ns.pid, dump_family=d.family,
                    schema_version=schema.SCHEMA_VERSION, daemon_version=__version__)


@pytest.mark.root
async def test_stop_during_a_poll_still_yields_that_batch(netns_farm):
    """What SIGTERM relies on: the poll in flight is finished and handed over, not dropped."""
    names = netns_farm.add(20)
    async with Poller(interval=3600, namespaces=netns_farm.glob, use_uring=False) as poller:
        it = poller.__aiter__()
        first = asyncio.ensure_future(it.__anext__())
        while not poller.polling:
            await asyncio.sleep(0)
        await poller.stop()
        batch = await first
        assert {d.netns for d in batch.dumps} == set(names)
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()


_MANY_SOCKETS = textwrap.dedent("""
    import socket, sys, time
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(128)
    keep = []
    for _ in range(60):
        c = socket.create_connection(l.getsockname()); s, _ = l.accept(); keep += [c, s]
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.mark.root
async def test_a_socket_left_with_a_pending_dump_is_reopened(netns_farm):
    """A real abandoned dump (first chunk read, rest never): the kernel answers the next request
    on that socket with EBUSY until the socket is replaced. The poller replaces it."""
    import socket as socketmod
    import subprocess

    [name] = netns_farm.add(1, sockets=False)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    holder = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", _MANY_SOCKETS],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        async with Poller(namespaces=name, use_uring=True) as poller:
            first = await poller.poll()
            assert sum(d.count for d in first.dumps) >= 121 and not any(d.error for d in first.dumps)
            [ns] = poller.manager.namespaces
            stuck = socketmod.socket(fileno=os.dup(ns.fd))
            stuck.send(request.build_request(request.AF_INET, seq=7))
            stuck.recv(65536)  # first chunk only: the dump stays pending in the kernel
            stuck.detach()
            second = await poller.poll()
            assert any("busy" in (d.error or "") for d in second.dumps)
            assert sum(d.count for d in second.dumps) == 0, "no record of the abandoned dump"
            assert sum(d.stats.rejected_seq for d in second.dumps) > 0
            assert poller.stats.namespaces.reopened == 1
            third = await poller.poll()
            assert not any(d.error for d in third.dumps)
            assert sum(d.count for d in third.dumps) == sum(d.count for d in first.dumps)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
