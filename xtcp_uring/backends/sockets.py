"""The plain-socket dump backend: non-blocking netlink sockets under asyncio, no io_uring.

It runs the same jobs as the io_uring backend and returns the same result: the records of each
dump, decoded by the same C decoder once the dump has ended (and the raw bytes it received, the
oracle the io_uring path is tested against). It is the fallback where io_uring is disabled
(``kernel.io_uring_disabled``, container seccomp).

How a dump runs on a netlink socket: ``send`` of the request builds the first chunk inline,
and every ``recv`` that drains the socket builds the next one (one skb of at most ~32 KiB), so
reads rarely find the socket empty; ``EAGAIN`` is waited for with ``loop.add_reader``. A dump
ends with ``NLMSG_DONE`` (whose payload carries an errno if the dump failed midway), or
``NLMSG_ERROR`` when the kernel refused the request (``native.scan_chunk``, the ring's own
end-of-dump scan). Jobs are coroutines gathered together; each yields to the loop every few
milliseconds so one big namespace cannot stall the loop.

Only the kernel may feed these sockets (``csrc/nl.h``): they are connected to it, every recv
checks that the sender is the kernel (nl_pid 0; others are dropped unread and counted in
``DumpResult.rejected_sender``), and the decoder drops messages of another nlmsg_seq.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from typing import Sequence

from .. import native, records
from ..errors import NetlinkError
from ..wire.netlink import KERNEL_PORT_ID, message_seq

from . import DumpJob, DumpResult

__all__ = ["SocketBackend", "RECV_BUFFER_SIZE"]

RECV_BUFFER_SIZE = 64 * 1024  # one recv is one skb of <= ~32 KiB; smaller buffers truncate (MSG_TRUNC)
DEFAULT_TIMEOUT = 10.0
_YIELD_AFTER = 0.002  # seconds of recv work before letting other tasks run
_MAX_DRAIN_RECVS = 100_000  # bound on discarding a stale dump (about 3 GB of messages)

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
        tcp_info_layout: ``native.tcp_info_layout(release)`` of the kernel being dumped.
    """

    name = "sockets"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, bufsize: int = RECV_BUFFER_SIZE,
                 tcp_info_layout: int = native.HOST_TCP_INFO_LAYOUT):
        if bufsize < 32 * 1024:
            raise ValueError(f"bufsize {bufsize} < 32 KiB: the kernel would truncate dump chunks")
        self.timeout = timeout
        self._layout = tcp_info_layout
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
        for i, (result, (_fam, request)) in enumerate(zip(results, job.requests)):
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
            # Decoded as the io_uring backend does, so both hand the poller the same result;
            # strict=False: what the kernel sent before an error or a bad length is kept.
            result.dump = records.decode_buffers(result.buffers, layout=self._layout, strict=False,
                                                 labels=job.labels[i] if i < len(job.labels) else b"",
                                                 seq=message_seq(request))
        return results

    async def _dump(self, loop, fd: int, request: bytes, result: DumpResult, deadline: float) -> None:
        seq = message_seq(request)
        try:
            os.write(fd, request)
        except BlockingIOError:
            await _readable_or_writable(loop, fd, deadline, write=True)
            os.write(fd, request)
        slice_start = loop.time()
        bufsize = self.bufsize
        sock = socket.socket(fileno=fd)  # for recvfrom's sender; detached below, never closed
        try:
            while True:
                try:
                    data, (sender, _groups) = sock.recvfrom(bufsize)
                except BlockingIOError:
                    await _readable_or_writable(loop, fd, deadline)
                    slice_start = loop.time()
                    continue
                if sender != KERNEL_PORT_ID:
                    # Only the kernel answers a dump (our sockets are connected to it, so this
                    # should never pass the kernel's own check): dropped unread, counted.
                    result.rejected_sender += 1
                    continue
                if not data:
                    raise _error(errno.ECONNRESET, "netlink socket closed mid-dump")
                result.buffers.append(data)
                result.nbytes += len(data)
                result.recvs += 1
                state, code = native.scan_chunk(data, seq)
                if state == native.SCAN_DONE:
                    if code:
                        result.error = _error(code, "dump ended early")
                    return
                if state == native.SCAN_REFUSED:
                    if code:
                        raise _error(code, "kernel refused the dump request")
                    return  # an ACK: the kernel is done with the request
                if state == native.SCAN_MALFORMED:
                    raise _error(code, "dump reply")
                now = loop.time()
                if now >= deadline:
                    raise TimeoutError
                if now - slice_start >= _YIELD_AFTER:
                    await asyncio.sleep(0)
                    slice_start = loop.time()
        finally:
            sock.detach()

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
