"""UringBackend against the real kernel, in the test's own network namespace (no root needed).

Known sockets (listeners and connected pairs on 127.0.0.1 and ::1, some with unread data) must
come back exactly once, the same as a plain blocking netlink dump sees them, in every mode:
decoded by the ring's decode thread (the default) or inline, and with IOSQE_ASYNC (io-wq). Other processes share this namespace, so sockets are
compared on the ports the test owns, never on the whole dump.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import gc
import os
import platform
import socket
import struct
import subprocess
import sys
import textwrap

import pytest

from xtcp_uring import native, records
from xtcp_uring.backends import DumpJob
from xtcp_uring.errors import XtcpError
from xtcp_uring.backends.uring import UringBackend

AF_INET, AF_INET6 = 2, 10
TCP_TIME_WAIT = 6

try:
    from xtcp_uring.wire.request import build_request
except ImportError:  # request.py is written in parallel; the 72-byte request it will build
    def build_request(family: int, *, seq: int = 0) -> bytes:
        hdr = struct.pack("=IHHII", 72, 20, 0x301, seq, 0)
        sockid = bytes(40) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
        return hdr + struct.pack("=BBBBI", family, 6, 0xFF, 0, 0x1FFE) + sockid


def _requests(seq: int) -> tuple[tuple[int, bytes], ...]:
    return ((AF_INET, build_request(AF_INET, seq=seq)), (AF_INET6, build_request(AF_INET6, seq=seq + 1)))


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Farm:
    """TCP sockets whose (family, sport, dport) the test knows."""

    def __init__(self):
        self.socks: list[socket.socket] = []
        self.expected: set[tuple[int, int, int]] = set()
        self.ports: set[int] = set()

    def listener(self, host: str, backlog: int = 128) -> socket.socket:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.create_server((host, 0), family=fam, backlog=backlog)
        port = s.getsockname()[1]
        self.socks.append(s)
        self.ports.add(port)
        self.expected.add((int(fam), port, 0))
        return s

    def pair(self, lst: socket.socket, unread: int = 0) -> None:
        host, port = lst.getsockname()[:2]
        c = socket.create_connection((host, port))
        a, _ = lst.accept()
        self.socks += [c, a]
        cport = c.getsockname()[1]
        fam = int(lst.family)
        self.expected |= {(fam, cport, port), (fam, port, cport)}
        if unread:
            c.sendall(b"x" * unread)  # sits in a's receive queue: rqueue > 0

    def close(self) -> None:
        for s in self.socks:
            # RST instead of FIN: no TIME_WAIT left on ports a later test may reuse.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def ours(self, dumps) -> collections.Counter:
        """(family, sport, dport) of every decoded socket on one of our listener ports."""
        seen = collections.Counter()
        for d in dumps:
            a = d.array()
            for fam, sp, dp, st in zip(a["inet_diag_msg_family"], a["inet_diag_msg_socket_source_port"],
                                       a["inet_diag_msg_socket_destination_port"], a["inet_diag_msg_state"]):
                # TIME_WAIT: another test's connection on a port number we now reuse.
                if st != TCP_TIME_WAIT and (int(sp) in self.ports or int(dp) in self.ports):
                    seen[(int(fam), int(sp), int(dp))] += 1
        return seen


@pytest.fixture
def farm():
    f = Farm()
    hosts = ["127.0.0.1"] + (["::1"] if _has_ipv6_loopback() else [])
    for host in hosts:
        lst = f.listener(host)
        for i in range(5):
            f.pair(lst, unread=1000 * i)
        f.listener(host)  # one with no connections
    yield f
    f.close()


def diag_socket() -> socket.socket:
    """A SOCK_DIAG socket opened the one way the package opens them: connected to the kernel."""
    return socket.socket(fileno=native.open_diag_socket()[0])


@pytest.fixture
def diag():
    s = diag_socket()
    yield s
    s.close()


@pytest.fixture(params=[{}, {"decode_thread": False}, {"async_dumps": True},
                        {"async_dumps": True, "async_recv": True}, {"async_dumps": True, "decode_thread": False}],
                ids=["decode-thread", "inline-decode", "async", "async-recv", "async-inline-decode"])
def backend(request):
    b = UringBackend(**request.param)
    yield b
    assert b.counters()["leaked_buffers"] == 0
    b.close()


def _decode(results):
    """The ring decodes as it receives: each result carries its Dump, never raw bytes."""
    assert all(r.buffers == [] and r.dump is not None for r in results)
    return [r.dump for r in results]


def blocking_dump(req: bytes) -> list[bytes]:
    """The oracle: one plain blocking socket, recv until NLMSG_DONE / NLMSG_ERROR."""
    with diag_socket() as s:
        s.setblocking(True)
        s.send(req)
        bufs = []
        while True:
            b = s.recv(65536)
            bufs.append(b)
            off = 0
            while off + 16 <= len(b):
                mlen, mtype = struct.unpack_from("=IH", b, off)
                if mtype in (2, 3):
                    return bufs
                off += (mlen + 3) & ~3


async def test_every_known_socket_once(backend, farm, diag):
    results = await backend.dump_all([DumpJob(net_id=42, fd=diag.fileno(), requests=_requests(100))])
    assert [(r.net_id, r.family, r.error) for r in results] == [(42, AF_INET, None), (42, AF_INET6, None)]
    for r in results:
        assert r.nbytes == r.dump.bytes_received > 0 and r.recvs >= 1 and r.elapsed_ns > 0
        assert r.dump.decode_ns > 0 and r.dump.encoded is None  # not asked to encode
    dumps = _decode(results)
    assert all(d.stats.done for d in dumps)
    seen = farm.ours(dumps)
    assert set(seen) == farm.expected
    assert all(c == 1 for c in seen.values()), {k: c for k, c in seen.items() if c != 1}
    assert all(r.dump.stats.rejected_seq == 0 and r.dump.stats.rejected_malformed == 0 for r in results)


async def test_same_sockets_as_blocking_dump(backend, farm, diag):
    reqs = _requests(7)
    results = await backend.dump_all([DumpJob(net_id=1, fd=diag.fileno(), requests=reqs)])
    oracle = [records.decode_buffers(blocking_dump(req)) for _, req in reqs]

    def keyed(dumps):
        out = set()
        for d in dumps:
            a = d.array()
            for row, st in zip(zip(a["inet_diag_msg_family"], a["inet_diag_msg_socket_source_port"],
                                   a["inet_diag_msg_socket_destination_port"], a["inet_diag_msg_socket_cookie"]),
                               a["inet_diag_msg_state"]):
                if st != TCP_TIME_WAIT and (int(row[1]) in farm.ports or int(row[2]) in farm.ports):
                    out.add(tuple(int(x) for x in row))
        return out

    ours = keyed(_decode(results))
    assert ours == keyed(oracle)
    assert len(ours) == len(farm.expected)


async def test_many_sockets_take_several_recvs(backend, diag):
    f = Farm()
    try:
        lst = f.listener("127.0.0.1", backlog=1024)
        for _ in range(1100):
            f.pair(lst)
        results = await backend.dump_all([DumpJob(net_id=3, fd=diag.fileno(), requests=_requests(1))])
        v4 = results[0]
        assert v4.error is None and v4.recvs > 1
        seen = f.ours(_decode(results))
        assert len(f.expected) > 2000
        assert set(seen) == f.expected and set(seen.values()) == {1}
    finally:
        f.close()


@pytest.mark.parametrize("framing", [native.FRAME_ENVELOPE_ROWS, native.FRAME_DELIMITED], ids=["envelope", "delimited"])
@pytest.mark.parametrize("mode", [{}, {"decode_thread": False}], ids=["decode-thread", "inline-decode"])
async def test_encoded_as_received_equals_encoding_the_records(framing, mode, diag):
    """Chunk by chunk encoding (with each dump's own label) gives the bytes that encoding the
    whole dump's records at once gives, so Batch.envelope() may hand them out as they are."""
    f = Farm()
    try:
        lst = f.listener("127.0.0.1", backlog=1024)
        for _ in range(600):
            f.pair(lst, unread=7)
        labels = (records.encode_labels(netns="a", dump_family=AF_INET), records.encode_labels(netns="b"))
        with UringBackend(encode=framing, **mode) as b:
            results = await b.dump_all([DumpJob(net_id=5, fd=diag.fileno(), requests=_requests(11), labels=labels)])
        v4 = results[0]
        assert v4.error is None and v4.recvs > 1 and v4.dump.count > 1200
        for r, label in zip(results, labels):
            d = r.dump
            assert d.framing == framing and d.labels == label
            assert bytes(d.encoded) == bytes(native.encode(d.records, 0, d.count, label, framing))
        batch = records.Batch([r.dump for r in results])
        assert bytes(batch.encode(framing)) == bytes(native.encode_parts(
            [(r.dump.records, 0, r.dump.count, r.dump.labels) for r in results if r.dump.count], framing))
        other = native.FRAME_DELIMITED if framing == native.FRAME_ENVELOPE_ROWS else native.FRAME_ENVELOPE_ROWS
        assert v4.dump.encoded_as(other) is None  # another framing is encoded on demand
    finally:
        f.close()


async def test_bad_fds_fail_alone(backend, farm, diag):
    r_pipe, w_pipe = os.pipe()
    closed = diag_socket()
    closed_fd = closed.fileno()
    closed.close()  # nothing opens an fd from here to the dump, so the number stays free
    try:
        jobs = [
            DumpJob(net_id=1, fd=closed_fd, requests=_requests(10)),
            DumpJob(net_id=2, fd=diag.fileno(), requests=_requests(20)),
            DumpJob(net_id=3, fd=-1, requests=_requests(30)),
            DumpJob(net_id=4, fd=w_pipe, requests=_requests(40)),
        ]
        results = await backend.dump_all(jobs)
    finally:
        os.close(r_pipe)
        os.close(w_pipe)
    errs = {(r.net_id, r.family): r.error.errno if r.error else None for r in results}
    assert errs == {
        (1, AF_INET): errno.EBADF, (1, AF_INET6): errno.EBADF,
        (2, AF_INET): None, (2, AF_INET6): None,
        (3, AF_INET): errno.EBADF, (3, AF_INET6): errno.EBADF,
        (4, AF_INET): errno.ENOTSOCK, (4, AF_INET6): errno.ENOTSOCK,
    }
    good = _decode([r for r in results if r.net_id == 2])
    assert set(farm.ours(good)) == farm.expected
    assert all(r.dump.count == 0 for r in results if r.error)


async def test_stuck_dump_times_out_and_ring_stays_usable(farm, diag):
    # A connected UDP socket takes the SEND and never answers: its RECV waits forever.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    stuck = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stuck.connect(sink.getsockname())
    b = UringBackend(timeout=0.2)
    try:
        jobs = [DumpJob(net_id=9, fd=stuck.fileno(), requests=_requests(1)),
                DumpJob(net_id=10, fd=diag.fileno(), requests=_requests(3))]
        results = await asyncio.wait_for(b.dump_all(jobs), 5)
        by = {(r.net_id, r.family): r for r in results}
        assert isinstance(by[9, AF_INET].error, TimeoutError)
        assert by[9, AF_INET6].error.errno == errno.ECANCELED  # same fd: not tried after a timeout
        assert by[10, AF_INET].error is None and by[10, AF_INET6].error is None
        assert 0.15e9 < by[9, AF_INET].elapsed_ns < 2e9
        assert b.counters()["timeouts"] == 1
        again = await b.dump_all([DumpJob(net_id=10, fd=diag.fileno(), requests=_requests(5))])
        assert set(farm.ours(_decode(again))) == farm.expected
    finally:
        b.close()
        stuck.close()
        sink.close()
    assert b.counters()["leaked_buffers"] == 0


async def test_caller_cancel_reaps_in_flight_and_next_dump_works(farm, diag):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    stuck = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stuck.connect(sink.getsockname())
    b = UringBackend()
    try:
        task = asyncio.ensure_future(b.dump_all([DumpJob(net_id=1, fd=stuck.fileno(), requests=_requests(1))]))
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        results = await b.dump_all([DumpJob(net_id=2, fd=diag.fileno(), requests=_requests(3))])
        assert set(farm.ours(_decode(results))) == farm.expected
        c = b.counters()
        assert c["leaked_buffers"] == 0 and c["cqe_errors"].get("ECANCELED", 0) >= 1
    finally:
        b.close()
        stuck.close()
        sink.close()


async def test_close_during_dump_and_results_outlive_the_ring(farm, diag):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    stuck = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stuck.connect(sink.getsockname())
    b = UringBackend()
    try:
        earlier = await b.dump_all([DumpJob(net_id=2, fd=diag.fileno(), requests=_requests(3))])
        task = asyncio.ensure_future(b.dump_all([DumpJob(net_id=1, fd=stuck.fileno(), requests=_requests(1))]))
        await asyncio.sleep(0.05)
        b.close()
        with pytest.raises(XtcpError, match="closed during dump_all"):
            await task
        with pytest.raises(XtcpError, match="closed"):
            await b.dump_all([])
        gc.collect()
        # The records moved to the results: still readable after the next dump_all and close.
        assert set(farm.ours(_decode(earlier))) == farm.expected
        assert b.counters()["leaked_buffers"] == 0
    finally:
        b.close()
        stuck.close()
        sink.close()


def test_close_idle_twice_and_context_manager():
    b = UringBackend()
    b.close()
    b.close()
    with UringBackend(async_dumps=True) as b2:
        assert b2.name == "io_uring+async"
    with UringBackend(decode_thread=False, async_dumps=True) as b3:
        assert b3.name == "io_uring+async+inline-decode"
    b2.close()


async def test_no_jobs():
    with UringBackend() as b:
        assert await b.dump_all([]) == []
        assert await b.dump_all([DumpJob(net_id=1, fd=-1, requests=())]) == []


async def test_net_id_out_of_range(diag):
    with UringBackend() as b:
        with pytest.raises(ValueError, match="net_id"):
            await b.dump_all([DumpJob(net_id=1 << 32, fd=diag.fileno(), requests=_requests(1))])


_SECCOMP_CHILD = textwrap.dedent("""
    import ctypes, struct, sys
    errno_value = int(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    # ld arch; jne x86_64 -> allow; ld nr; jeq io_uring_setup(425) -> errno; allow
    prog = [
        (0x20, 0, 0, 4), (0x15, 0, 3, 0xC000003E), (0x20, 0, 0, 0), (0x15, 0, 1, 425),
        (0x06, 0, 0, 0x00050000 | errno_value), (0x06, 0, 0, 0x7FFF0000),
    ]
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) == 0, ctypes.get_errno()
    from xtcp_uring.errors import RingUnavailableError
    from xtcp_uring.backends.uring import UringBackend
    try:
        UringBackend()
    except RingUnavailableError as exc:
        print("unavailable:", exc)
    else:
        print("available")
""")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is written for x86_64")
@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM], ids=["ENOSYS", "EPERM"])
def test_blocked_io_uring_raises_ring_unavailable(err):
    out = subprocess.run([sys.executable, "-c", _SECCOMP_CHILD, str(err)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("unavailable: io_uring is unavailable"), out.stdout
    assert errno.errorcode[err] in out.stdout and "plain socket backend" in out.stdout


async def test_results_are_freed_without_the_cyclic_gc():
    """A poll's arenas go when its batch goes: no reference cycle may hold them (the soak's
    RSS sawtooth until this was fixed)."""
    import gc

    from xtcp_uring.backends import DumpResult
    from xtcp_uring.poller import Poller

    gc.collect()
    gc.disable()
    try:
        async with Poller(namespaces="host", use_uring=True) as poller:
            for _ in range(3):
                batch = await poller.poll()
                del batch
            assert sum(isinstance(o, DumpResult) for o in gc.get_objects()) == 0
    finally:
        gc.enable()
