"""class Ring: the io_uring dump driver of csrc/ring.c, one method per C call, Python values out.

The policy (when to reap, expire, reset, replace a ring; how results become records) lives in
``backends.uring``; this module only crosses into C and back. Every ``-errno`` becomes an
``OSError`` (``native.errno_error``), io_uring refused by the host a ``RingUnavailableError``,
and what only a bug can cause an ``InternalError``.

``user_data`` of every SQE packs ``op`` (bits 56..63) | request id = job index, or a close
subscription's index (32..55) | net id (0..31); ``pack_user_data``/``unpack_user_data`` are the
Python side of that codec.

The same ring keeps the close-event subscriptions (``close_add`` …, csrc/close_events.c): a
multishot RECV armed on each namespace's destroy-group socket, spared by ``reset`` (which
cancels the dumps by user_data), decoded by every ``reap``.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass

from ..errors import InternalError, RingUnavailableError
from . import codec, errno_error, ffi, lib
from .closes import OP_CLOSE, OP_CLOSE_CANCEL, CloseOutput, close_output
from .closes import COUNTERS as CLOSE_COUNTERS

__all__ = [
    "OP_NONE", "OP_SEND", "OP_RECV", "OP_CANCEL", "OP_NOP", "OP_CLOSE", "OP_CLOSE_CANCEL", "OP_MAX",
    "REQUEST_ID_MAX", "NET_ID_MAX",
    "DECODE_THREAD", "ASYNC", "ASYNC_RECV", "COUNTERS",
    "pack_user_data", "unpack_user_data", "RingEvent", "RingOutput", "Ring",
]

OP_NONE = 0  # never issued, so a zeroed user_data is always unknown
OP_SEND = 1
OP_RECV = 2
OP_CANCEL = 3
OP_NOP = 4
OP_MAX = (1 << 8) - 1
REQUEST_ID_MAX = (1 << 24) - 1
NET_ID_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1

DECODE_THREAD = lib.XTCP_RING_DECODE_THREAD  # flags of Ring()
ASYNC = lib.XTCP_RING_ASYNC
ASYNC_RECV = lib.XTCP_RING_ASYNC_RECV

COUNTERS = (
    "submits", "enters", "sqes", "cqes", "recvs", "bytes", "jobs", "jobs_failed", "timeouts",
    "unknown_completions", "submit_errors", "leaked_buffers",
)


def check_int(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} out of range 0..{maximum}")


def pack_user_data(op: int, request_id: int, net_id: int) -> int:
    """Pack an SQE's user_data: op in bits 56..63, request id in 32..55, net id in 0..31.

    Raises:
        ValueError: a field does not fit its bits.
        TypeError: a field is not an int.
    """
    check_int("op", op, OP_MAX)
    check_int("request_id", request_id, REQUEST_ID_MAX)
    check_int("net_id", net_id, NET_ID_MAX)
    return (op << 56) | (request_id << 32) | net_id


def unpack_user_data(user_data: int) -> tuple[int, int, int]:
    """Split a CQE's user_data into (op, request_id, net_id).

    Raises:
        ValueError: ``user_data`` is not a u64.
        TypeError: it is not an int.
    """
    check_int("user_data", user_data, _U64_MAX)
    return user_data >> 56, (user_data >> 32) & REQUEST_ID_MAX, user_data & NET_ID_MAX


@dataclass(frozen=True, slots=True)
class RingEvent:
    """One finished job (one namespace, one family), reported once by ``Ring.reap``."""

    job: int
    net_id: int
    family: int
    error: int  # 0, or a positive errno: SEND/RECV failure, NLMSG_ERROR, ETIMEDOUT
    bytes: int
    recvs: int
    start_ns: int
    end_ns: int

    def exception(self) -> OSError | None:
        """The job's failure as the matching OSError subclass (TimeoutError…), or None."""
        if not self.error:
            return None
        return OSError(self.error, f"{os.strerror(self.error)} (net_id {self.net_id}, family {self.family})")


@dataclass(frozen=True, slots=True)
class RingOutput:
    """What a finished job hands over: its records (pooled, owned by ``owner``) and, if the ring
    encodes, the encoded bytes (a memoryview that keeps its buffer alive)."""

    records: object  # cdata struct xtcp_record *: an opaque handle for codec.encode
    owner: object
    count: int
    encoded: memoryview | None  # None: the ring does not encode
    stats: codec.DecodeStats
    decode_ns: int
    encode_ns: int


def ring_output(out, *, encodes: bool) -> RingOutput:
    """Take ownership of what a ``struct xtcp_ring_output`` names (once per job)."""
    if isinstance(out, RingOutput):
        return out
    count = out.count
    if count:
        owner = codec.own(out.records, count * codec.RECORD_SIZE)
        records = ffi.cast("struct xtcp_record *", owner)
    else:
        records, owner, _ = codec.new_records(0)
    encoded = None
    if encodes:
        encoded = codec.owned_view(out.encoded, out.encoded_len) if out.encoded_len else memoryview(b"")
    return RingOutput(records, owner, count, encoded, codec.stats_from_c(out.stats), out.decode_ns, out.encode_ns)


def _unavailable(err: int) -> RingUnavailableError:
    why = f"{_errno.errorcode.get(err, err)}: {os.strerror(err)}"
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            why += f"; kernel.io_uring_disabled={f.read().strip()}"
    except OSError:
        pass
    if err in (_errno.EPERM, _errno.ENOSYS):
        why += " (disabled by sysctl, or blocked by a seccomp profile)"
    return RingUnavailableError(f"io_uring is unavailable ({why}); use the plain socket backend")


class Ring:
    """One ``xtcp_ring``: add jobs, submit once, reap finished jobs when ``eventfd`` is readable.

    Args:
        entries: SQ ring size.
        flags: ``DECODE_THREAD`` | ``ASYNC`` | ``ASYNC_RECV``.
        layout: tcp_info tail layout of the kernel being dumped.
        framing: encode each chunk in this ``native.FRAME_*`` as it arrives; None: decode only.

    Raises:
        RingUnavailableError: io_uring is disabled (sysctl) or blocked (seccomp).
        OSError: io_uring setup failed otherwise.
        ValueError: the ring does not accept this layout or framing.
    """

    def __init__(self, entries: int, flags: int, layout: int, framing: int | None):
        err = ffi.new("int *")
        ring = lib.xtcp_ring_new(entries, flags, err)
        if ring == ffi.NULL:
            e = err[0]
            if e in (_errno.EPERM, _errno.ENOSYS, _errno.EACCES):
                raise _unavailable(e)
            raise errno_error(e, "io_uring setup failed")
        c_framing = lib.XTCP_RING_NO_ENCODE if framing is None else framing
        if lib.xtcp_ring_set_output(ring, layout, c_framing) < 0:
            lib.xtcp_ring_free(ring)
            raise ValueError(f"io_uring output not accepted: layout {layout}, framing {c_framing}")
        self._ring = ring
        self._encodes = framing is not None
        self._events = ffi.new("struct xtcp_ring_event[]", 1)
        self._output = ffi.new("struct xtcp_ring_output *")
        self._next_ns = ffi.new("uint64_t *")
        self._close_ready = ffi.new("uint32_t[]", 1024)
        self._close_out = ffi.new("struct xtcp_closes_output *")
        self.fd = lib.xtcp_ring_eventfd(ring)  # readable when jobs have finished

    def add_job(self, net_id: int, fd: int, request: bytes, family: int, label: bytes) -> int:
        """Queue one dump (SEND then RECVs on ``fd``); returns its job index."""
        idx = lib.xtcp_ring_add_job(self._ring, net_id, fd, request, len(request), family, label, len(label))
        if idx < 0:
            raise errno_error(idx, "io_uring job not queued")
        return idx

    def pending(self) -> int:
        """Jobs queued or in flight."""
        return lib.xtcp_ring_pending(self._ring)

    def submit(self) -> int:
        """One io_uring_enter for everything queued; returns the SQEs submitted."""
        rc = lib.xtcp_ring_submit(self._ring)
        if rc < 0:
            raise errno_error(rc, "io_uring submit failed")
        return rc

    def reap(self, max_events: int, budget_ns: int) -> list[RingEvent]:
        """Finished jobs, at most ``max_events``, spending at most ``budget_ns`` re-arming."""
        if len(self._events) < max_events:
            self._events = ffi.new("struct xtcp_ring_event[]", max_events)
        events = self._events
        k = lib.xtcp_ring_reap(self._ring, events, max_events, budget_ns)
        if k < 0:
            raise errno_error(k, "io_uring reap failed")
        return [RingEvent(ev.job, ev.net_id, ev.family, ev.error, ev.bytes, ev.recvs, ev.start_ns, ev.end_ns)
                for ev in (events[i] for i in range(k))]

    def expire(self, timeout_ns: int) -> int:
        """Cancel jobs running longer than ``timeout_ns``; returns ns until the next may expire
        (0: none in flight)."""
        lib.xtcp_ring_expire(self._ring, timeout_ns, self._next_ns)
        return self._next_ns[0]

    def take(self, job: int) -> RingOutput:
        """The records (and encoded bytes) of a finished job: handed over once."""
        if lib.xtcp_ring_job_take(self._ring, job, self._output) < 0:  # reported twice: a bug in ring.c
            raise InternalError(f"io_uring job {job} reported without its records")
        return ring_output(self._output, encodes=self._encodes)

    def reset(self) -> bool:
        """Cancel, reap and free a poll's leftovers (close subscriptions stay armed). False:
        completions never came, the ring leaked buffers and refuses jobs (replace it)."""
        return lib.xtcp_ring_reset(self._ring) >= 0

    def stats(self) -> dict:
        """Counters since creation (``COUNTERS``) and ``cqe_errors``: a list of counts by errno."""
        st = ffi.new("struct xtcp_ring_stats *")
        lib.xtcp_ring_stats(self._ring, st)
        out: dict = {name: getattr(st, name) for name in COUNTERS}
        out["cqe_errors"] = list(st.cqe_errors)
        return out

    # --- close-event subscriptions (csrc/close_events.c) ---------------------------------

    def close_add(self, net_id: int, fd: int) -> int:
        """Subscribe ``fd`` (a close socket, kept open by the caller until ``close_remove``)
        under ``net_id``: its multishot RECV is armed (sent by the next reap). Returns the
        subscription index.

        Raises:
            OSError: no slot, or the provided buffers could not be set up.
        """
        idx = lib.xtcp_ring_close_add(self._ring, net_id, fd)
        if idx < 0:
            raise errno_error(idx, "close-event subscription")
        return idx

    def close_remove(self, index: int) -> bool:
        """Stop a subscription while its fd is still open: its RECV is cancelled and waited for,
        what it delivered and what is left on the socket is decoded for one last
        ``close_take``. False (never expected): the cancel did not complete, its last records
        are dropped (counted in ``remove_timeouts``). The caller may close the fd afterwards.

        Raises:
            InternalError: no such subscription (a bug in the caller's bookkeeping).
        """
        rc = lib.xtcp_ring_close_remove(self._ring, index)
        if rc == -_errno.ETIMEDOUT:
            return False
        if rc < 0:
            raise InternalError(f"close-event subscription {index} could not be removed: {errno_error(rc)}")
        return True

    def close_ready(self) -> list[int]:
        """The subscriptions with something to take (records, losses, an error) since the last
        call; what the reaps decoded."""
        ready: list[int] = []
        buf = self._close_ready
        while True:
            n = lib.xtcp_ring_close_ready(self._ring, buf, len(buf))
            ready += [buf[i] for i in range(n)]
            if n < len(buf):
                return ready

    def close_take(self, index: int) -> CloseOutput | None:
        """A subscription's records and counters since the last take (None: no such slot)."""
        if lib.xtcp_ring_close_take(self._ring, index, self._close_out) < 0:
            return None
        return close_output(self._close_out)

    def close_pending(self) -> int:
        """Records held by every subscription, not taken yet."""
        return lib.xtcp_ring_close_pending(self._ring)

    def close_stats(self) -> dict:
        """The subscriptions' counters since creation (``closes.COUNTERS``)."""
        st = ffi.new("struct xtcp_closes_stats *")
        lib.xtcp_ring_close_stats(self._ring, st)
        return {name: getattr(st, name) for name in CLOSE_COUNTERS}

    def free(self) -> bool:
        """Cancel and reap everything in flight (close subscriptions too), free every buffer
        the ring owns. Once. False: some completion never came, its buffers were leaked
        (never freed under the kernel)."""
        ring, self._ring = self._ring, None
        if ring is not None:
            return lib.xtcp_ring_free(ring) >= 0
        return True
