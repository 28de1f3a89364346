"""Close events, seen from C: what a subscription hands over, and the plain reader's decode.

The subscriptions themselves live on the dump ring (``Ring.close_add`` … over
csrc/close_events.c): their SQEs carry the ring's ``user_data`` scheme with ``OP_CLOSE`` (the
multishot RECV) and ``OP_CLOSE_CANCEL`` (its cancel): op | subscription index | net id. The
policy (which namespaces are subscribed, when a batch is cut, how losses are counted per
namespace) lives in ``closes``; this module only crosses into C and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InternalError
from . import codec, ffi, lib

__all__ = ["OP_CLOSE", "OP_CLOSE_CANCEL", "EVENT_CLOSE", "RECV_LEN", "COUNTERS", "CloseOutput", "close_output",
           "socket_drops", "decode_closes"]

OP_CLOSE = lib.XTCP_RING_OP_CLOSE  # user_data op of a subscription's RECV
OP_CLOSE_CANCEL = lib.XTCP_RING_OP_CLOSE_CANCEL  # and of its cancel
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


def close_output(out) -> CloseOutput:
    """Take ownership of what a ``struct xtcp_closes_output`` names (once per take)."""
    count, recs, owner = out.count, None, None
    if count:
        owner = codec.own(out.records, count * codec.RECORD_SIZE)
        recs = ffi.cast("struct xtcp_record *", owner)
    return CloseOutput(recs, owner, count, out.lost, out.overflow, out.datagrams, out.bytes, out.decode_ns,
                       out.error, codec.stats_from_c(out.stats))


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
