"""Close events, seen from C: class CloseRing (csrc/close_events.c) and the plain reader's decode.

The policy (which namespaces are subscribed, when a batch is cut, how losses are counted per
namespace) lives in ``closes``; this module only crosses into C and back. Every ``-errno``
becomes an ``OSError`` (``native.errno_error``), io_uring refused by the host a
``RingUnavailableError``, and what only a bug can cause an ``InternalError``.

The ring's SQEs carry the dump ring's ``user_data`` scheme with ``OP_CLOSE`` (csrc/ring.h):
op | subscription index | net id.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass

from ..errors import InternalError
from . import codec, errno_error, ffi, lib
from .ring import _unavailable

__all__ = ["OP_CLOSE", "EVENT_CLOSE", "RECV_LEN", "COUNTERS", "CloseOutput", "CloseRing", "socket_drops",
           "decode_closes"]

OP_CLOSE = lib.XTCP_RING_OP_CLOSE  # user_data op of a subscription's RECV
EVENT_CLOSE = lib.XTCP_CLOSES_EVENT_CLOSE  # the records' `event` (proto Event.EVENT_CLOSE)
RECV_LEN = lib.XTCP_CLOSES_RECV_LEN  # one provided buffer; a destroy message is ~400-600 B

COUNTERS = ("subscriptions", "cqes", "recvs", "records", "lost", "enobufs", "starved", "rearm_errors",
            "unknown_completions", "recv_errors", "remove_timeouts")


@dataclass(frozen=True, slots=True)
class CloseOutput:
    """What one subscription hands over at a take: its records (pooled, owned by ``owner``) and
    its counters since the last take."""

    records: object  # cdata struct xtcp_record * for records.Dump (None when count is 0)
    owner: object
    count: int
    lost: int  # events the kernel dropped (receive queue full)
    overflow: int  # records dropped in C because nobody took them
    datagrams: int
    bytes: int
    decode_ns: int
    error: int  # last recv error other than ENOBUFS/ECANCELED (positive errno), or 0
    stats: codec.DecodeStats


class CloseRing:
    """One ``xtcp_closes`` ring: a multishot RECV armed on every subscribed socket, decoded in C.

    Args:
        entries: SQ ring size.
        layout: tcp_info tail layout of this kernel (``native.HOST_TCP_INFO_LAYOUT``).

    Raises:
        RingUnavailableError: io_uring is disabled (sysctl) or blocked (seccomp).
        OSError: io_uring setup failed otherwise (ENOMEM, EINVAL on a kernel without provided
            buffer rings…).
    """

    def __init__(self, entries: int, layout: int):
        err = ffi.new("int *")
        ring = lib.xtcp_closes_new(entries, layout, err)
        if ring == ffi.NULL:
            e = err[0]
            if e in (_errno.EPERM, _errno.ENOSYS, _errno.EACCES):
                raise _unavailable(e)
            raise errno_error(e, "io_uring for close events")
        self._ring = ring
        self._ready = ffi.new("uint32_t[]", 1024)
        self._out = ffi.new("struct xtcp_closes_output *")
        self.fd = lib.xtcp_closes_eventfd(ring)  # readable when completions are waiting

    def add(self, net_id: int, fd: int) -> int:
        """Subscribe ``fd`` (a close socket, kept open by the caller until ``remove``) under
        ``net_id``: its first RECV is armed. Returns the subscription index.

        Raises:
            OSError: no slot, or the RECV could not be armed.
        """
        idx = lib.xtcp_closes_add(self._ring, net_id, fd)
        if idx < 0:
            raise errno_error(idx, "close-event subscription")
        return idx

    def remove(self, index: int) -> bool:
        """Stop a subscription while its fd is still open: its RECV is cancelled and waited for,
        what it delivered and what is left on the socket is decoded for one last ``take``.
        False (never expected): the cancel did not complete, its last records are dropped
        (counted in ``remove_timeouts``). The caller may close the fd afterwards either way.

        Raises:
            InternalError: no such subscription (a bug in the caller's bookkeeping).
        """
        rc = lib.xtcp_closes_remove(self._ring, index)
        if rc == -_errno.ETIMEDOUT:
            return False
        if rc < 0:
            raise InternalError(f"close-event subscription {index} could not be removed: {errno_error(rc)}")
        return True

    def reap(self) -> list[int]:
        """Process what completed, decode it, re-arm. The indices of subscriptions with
        something to take (records, losses, an error)."""
        ready: list[int] = []
        buf = self._ready
        while True:
            n = lib.xtcp_closes_reap(self._ring, buf, len(buf))
            if n < 0:
                raise errno_error(n, "reaping close events")
            ready += [buf[i] for i in range(n)]
            if n < len(buf):
                return ready

    def take(self, index: int) -> CloseOutput | None:
        """A subscription's records and counters since the last take (None: no such slot)."""
        out = self._out
        if lib.xtcp_closes_take(self._ring, index, out) < 0:
            return None
        count, recs, owner = out.count, None, None
        if count:
            owner = codec.own(out.records, count * codec.RECORD_SIZE)
            recs = ffi.cast("struct xtcp_record *", owner)
        return CloseOutput(recs, owner, count, out.lost, out.overflow, out.datagrams, out.bytes, out.decode_ns,
                           out.error, codec.stats_from_c(out.stats))

    def pending(self) -> int:
        """Records held by every subscription, not taken yet."""
        return lib.xtcp_closes_pending(self._ring)

    def stats(self) -> dict[str, int]:
        """Counters since creation (``COUNTERS``)."""
        st = ffi.new("struct xtcp_closes_stats *")
        lib.xtcp_closes_stats(self._ring, st)
        return {name: getattr(st, name) for name in COUNTERS}

    def free(self) -> None:
        """Cancel and reap everything in flight, free every buffer. Once; later calls do nothing."""
        ring, self._ring = self._ring, None
        if ring is not None:
            lib.xtcp_closes_free(ring)


def socket_drops(fd: int) -> int | None:
    """The kernel's drop counter of a socket (``SK_MEMINFO_DROPS``), None where the kernel has
    none (before 4.6) or the call fails."""
    n = lib.xtcp_socket_drops(fd)
    return None if n < 0 else n


def decode_closes(datagrams: list[tuple[bytes, int]], layout: int):
    """Decode destroy datagrams, each with its receive time (epoch ns), into close records.

    Returns (records, owner, count, DecodeStats): the array lives as long as ``owner``.
    Anything but a destroy message (another seq than 0) is dropped and counted in the stats.
    """
    total = sum(codec.count_socket_messages(d) for d, _ in datagrams)
    recs, owner, cap = codec.new_records(total)
    cstats = ffi.new("struct xtcp_decode_stats *")
    n = 0
    for data, received_ns in datagrams:
        src = ffi.from_buffer(data)
        k = lib.xtcp_closes_decode(src, len(src), recs + n, cap - n, layout, received_ns, cstats)
        if k < 0:  # the array was sized by count_socket_messages: a bug, not bad input
            raise InternalError(f"close records array too small: {cap - n} slots for more sockets")
        n += k
    return recs, owner, n, codec.stats_from_c(cstats)
