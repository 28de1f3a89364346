"""The plain-socket dump backend: non-blocking netlink sockets under asyncio, no io_uring.

It runs the same jobs as the io_uring backend and returns the same raw bytes (see
``backend.py``), so it is the fallback where io_uring is disabled (``kernel.io_uring_disabled``,
container seccomp) and the oracle the io_uring path is tested against.

How a dump runs on a netlink socket: ``send`` of the request builds the first chunk inline,
and every ``recv`` that drains the socket builds the next one (one skb of at most ~32 KiB), so
reads rarely find the socket empty; ``EAGAIN`` is waited for with ``loop.add_reader``. A dump
ends with ``NLMSG_DONE`` (whose payload carries an errno if the dump failed midway), or
``NLMSG_ERROR`` when the kernel refused the request. Jobs are coroutines gathered together;
each yields to the loop every few milliseconds so one big namespace cannot stall the loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time
from typing import Sequence

from .backend import DumpJob, DumpResult
from .errors import NetlinkError

__all__ = ["SocketBackend", "dump_current_namespace", "RECV_BUFFER_SIZE"]

NETLINK_SOCK_DIAG = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
RECV_BUFFER_SIZE = 64 * 1024  # one recv is one skb of <= ~32 KiB; smaller buffers truncate (MSG_TRUNC)
DEFAULT_TIMEOUT = 10.0
_YIELD_AFTER = 0.002  # seconds of recv work before letting other tasks run
_MAX_DRAIN_RECVS = 100_000  # bound on discarding a stale dump (about 3 GB of messages)

_HDR = struct.Struct("=IHHI")  # nlmsg_len, nlmsg_type, nlmsg_flags, nlmsg_seq
_ERRNO = struct.Struct("=i")

_MORE, _DONE, _FAILED = 0, 1, 2


def scan_messages(buf, seq: int) -> tuple[int, int]:
    """Does this recv end the dump ``seq`` (0: any)? O(1) unless it looks like the end.

    Each recv is one skb: NLMSG_ERROR (the request was refused) is alone in its skb and
    NLMSG_DONE (20 bytes: we never enable NETLINK_EXT_ACK) is the last message of the last
    one. So only the first header and the last 20 bytes are looked at; when those look like
    the end, the buffer is walked to confirm (once per dump, not once per socket).

    Returns:
        (state, errno): ``_MORE`` (the dump goes on), ``_DONE`` (errno set if the dump failed
        midway) or ``_FAILED`` (NLMSG_ERROR: the request was refused; or EBADMSG: the buffer
        is malformed). Messages of another sequence number (a stale dump) never end it.
    """
    end = len(buf)
    if end < 16:
        return _FAILED, errno.EBADMSG
    unpack = _HDR.unpack_from
    _length, mtype, _flags, mseq = unpack(buf, 0)
    if mtype == NLMSG_ERROR or mtype == NLMSG_DONE:
        return _walk(buf, seq)
    if end >= 20:
        length, mtype, _flags, mseq = unpack(buf, end - 20)
        if length == 20 and mtype == NLMSG_DONE and (seq == 0 or mseq == seq):
            return _walk(buf, seq)
    return _MORE, 0


def _walk(buf, seq: int) -> tuple[int, int]:
    """The exact version of ``scan_messages``: every nlmsghdr of the buffer."""
    off, end = 0, len(buf)
    unpack = _HDR.unpack_from
    while off + 16 <= end:
        length, mtype, _flags, mseq = unpack(buf, off)
        if length < 16 or off + length > end:
            return _FAILED, errno.EBADMSG
        if (mtype == NLMSG_DONE or mtype == NLMSG_ERROR) and (seq == 0 or mseq == seq):
            code = -_ERRNO.unpack_from(buf, off + 16)[0] if length >= 20 else 0
            if mtype == NLMSG_DONE:
                return _DONE, code
            if code:  # an NLMSG_ERROR of 0 is an ack, not an error
                return _FAILED, code
        off += (length + 3) & ~3
    return _MORE, 0


def _request_seq(request: bytes) -> int:
    return _HDR.unpack_from(request, 0)[3] if len(request) >= 16 else 0


def _error(code: int, what: str) -> OSError:
    if code == errno.EBADMSG:
        return NetlinkError(code, f"{what}: malformed netlink message")
    return NetlinkError(code, f"{what}: {os.strerror(code)}")


class SocketBackend:
    """``backend.DumpBackend`` over plain non-blocking netlink sockets.

    Args:
        timeout: seconds one job (all its families) may take; a late job is reported with
            ``TimeoutError`` in its results and its socket drained before the next use.
        bufsize: recv buffer size (>= 32 KiB, or the kernel truncates messages).
    """

    name = "sockets"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, bufsize: int = RECV_BUFFER_SIZE):
        if bufsize < 32 * 1024:
            raise ValueError(f"bufsize {bufsize} < 32 KiB: the kernel would truncate dump chunks")
        self.timeout = timeout
        self.bufsize = bufsize
        self._dirty: set[int] = set()  # fds whose last dump did not reach its end
        self._closed = False
        self.stale_drained = 0  # recvs discarded from dumps that were cut short

    async def dump_all(self, jobs: Sequence[DumpJob]) -> list[DumpResult]:
        """Run every job; one DumpResult per (job, family), in job then request order."""
        if self._closed:
            raise RuntimeError("SocketBackend is closed")
        loop = asyncio.get_running_loop()
        per_job = await asyncio.gather(*(self._run_job(loop, job) for job in jobs))
        return [r for results in per_job for r in results]

    def close(self) -> None:
        self._closed = True
        self._dirty.clear()

    async def _run_job(self, loop, job: DumpJob) -> list[DumpResult]:
        results = [DumpResult(net_id=job.net_id, family=fam) for fam, _ in job.requests]
        deadline = loop.time() + self.timeout
        for result, (_fam, request) in zip(results, job.requests):
            t0 = time.monotonic_ns()
            try:
                if job.fd in self._dirty:
                    await self._drain(loop, job.fd, deadline)
                await self._dump(loop, job.fd, request, result, deadline)
            except TimeoutError:
                self._dirty.add(job.fd)
                result.error = TimeoutError(errno.ETIMEDOUT, f"dump not finished after {self.timeout:g} s")
            except OSError as exc:
                self._dirty.add(job.fd)
                result.error = exc
            except BaseException:  # cancelled: the dump may still be running in the kernel
                self._dirty.add(job.fd)
                raise
            finally:
                result.elapsed_ns = time.monotonic_ns() - t0
        return results

    async def _dump(self, loop, fd: int, request: bytes, result: DumpResult, deadline: float) -> None:
        seq = _request_seq(request)
        try:
            os.write(fd, request)
        except BlockingIOError:
            await _readable_or_writable(loop, fd, deadline, write=True)
            os.write(fd, request)
        slice_start = loop.time()
        bufsize = self.bufsize
        while True:
            try:
                data = os.read(fd, bufsize)
            except BlockingIOError:
                await _readable_or_writable(loop, fd, deadline)
                slice_start = loop.time()
                continue
            if not data:
                raise _error(errno.ECONNRESET, "netlink socket closed mid-dump")
            result.buffers.append(data)
            result.nbytes += len(data)
            result.recvs += 1
            state, code = scan_messages(data, seq)
            if state == _DONE:
                if code:
                    result.error = _error(code, "dump ended early")
                return
            if state == _FAILED:
                raise _error(code, "kernel refused the dump request")
            now = loop.time()
            if now >= deadline:
                raise TimeoutError
            if now - slice_start >= _YIELD_AFTER:
                await asyncio.sleep(0)
                slice_start = loop.time()

    async def _drain(self, loop, fd: int, deadline: float) -> None:
        """Discard what a cut-short dump left: recv (which builds the rest) until empty."""
        for _ in range(_MAX_DRAIN_RECVS):
            try:
                data = os.read(fd, self.bufsize)
            except BlockingIOError:
                self._dirty.discard(fd)
                return
            self.stale_drained += 1
            if not data:
                break
            if loop.time() >= deadline:
                raise TimeoutError
        self._dirty.discard(fd)


async def _readable_or_writable(loop, fd: int, deadline: float, write: bool = False) -> None:
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    add(fd, ready)
    try:
        async with asyncio.timeout_at(deadline):
            await fut
    finally:
        remove(fd)


def dump_current_namespace(requests: Sequence[bytes], *, timeout: float = DEFAULT_TIMEOUT) -> list[bytes]:
    """Blocking: run each request on a fresh SOCK_DIAG socket in this thread's namespace.

    Returns:
        One bytes per request: its recv buffers joined (whole netlink messages, ready for
        ``records.decode_buffers``).
    Raises:
        NetlinkError: the kernel refused a request or ended a dump with an error.
        TimeoutError: a dump took longer than ``timeout`` seconds.
    """
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(timeout)
        for request in requests:
            seq = _request_seq(request)
            sock.sendall(request)
            chunks = []
            deadline = time.monotonic() + timeout
            while True:
                data = sock.recv(RECV_BUFFER_SIZE)
                chunks.append(data)
                state, code = scan_messages(data, seq)
                if state == _DONE and code:
                    raise _error(code, "dump ended early")
                if state == _FAILED:
                    raise _error(code, "kernel refused the dump request")
                if state == _DONE:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(errno.ETIMEDOUT, f"dump not finished after {timeout:g} s")
            out.append(b"".join(chunks))
    return out
