"""The only module that touches the cffi extension: cdata in, bytes and numpy views out.

It turns C return conventions (counts, -errno, stats structs) into Python values and the
errors of ``errors.py``, and owns the memory it hands to C.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import XtcpError

try:
    from . import _native
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "xtcp_uring._native is not built: run `make install` (or `pip install -e .`) in the checkout"
    ) from exc

ffi = _native.ffi
lib = _native.lib

EXPECTED_ABI = 6
if lib.xtcp_native_abi() != EXPECTED_ABI:  # pragma: no cover - a stale in-place build
    raise ImportError(
        f"xtcp_uring._native ABI {lib.xtcp_native_abi()} != {EXPECTED_ABI}: rebuild with `make install`"
    )

RECORD_SIZE = lib.xtcp_record_size()
RECORD_MAX_ENCODED = lib.xtcp_record_max_encoded()
FRAME_SINGLE = lib.XTCP_FRAME_SINGLE
FRAME_DELIMITED = lib.XTCP_FRAME_DELIMITED
FRAME_ENVELOPE_ROWS = lib.XTCP_FRAME_ENVELOPE_ROWS
TCP_INFO_LAYOUT_6_18 = lib.XTCP_TCP_INFO_LAYOUT_6_18
TCP_INFO_LAYOUT_7_0 = lib.XTCP_TCP_INFO_LAYOUT_7_0
SCAN_MORE = lib.XTCP_NL_SCAN_MORE  # what one received datagram means for its dump (scan_chunk)
SCAN_DONE = lib.XTCP_NL_SCAN_DONE
SCAN_REFUSED = lib.XTCP_NL_SCAN_REFUSED
SCAN_MALFORMED = lib.XTCP_NL_SCAN_MALFORMED

_STAT_COUNTERS = (
    "messages",
    "records",
    "other_messages",
    "short_messages",
    "bad_attributes",
    "short_attributes",
    "unknown_attributes",
    "tcp_info_longer",
    "rejected_seq",
    "rejected_malformed",
)


@dataclass
class DecodeStats:
    """What one decode saw, beyond the records: nothing is dropped without a counter here."""

    messages: int = 0
    records: int = 0
    other_messages: int = 0
    short_messages: int = 0
    bad_attributes: int = 0
    short_attributes: int = 0
    unknown_attributes: int = 0
    tcp_info_longer: int = 0
    rejected_seq: int = 0  # messages of another nlmsg_seq: not the dump in flight, never decoded
    rejected_malformed: int = 0  # buffers whose walk stopped at a lying length
    unknown_by_type: dict[int, int] = field(default_factory=dict)
    done: bool = False
    error: int = 0  # errno from NLMSG_ERROR
    malformed_offset: int | None = None  # where the walk stopped on a bad nlmsg_len

    def add(self, other: "DecodeStats") -> None:
        for name in _STAT_COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for t, c in other.unknown_by_type.items():
            self.unknown_by_type[t] = self.unknown_by_type.get(t, 0) + c
        self.done = self.done or other.done
        self.error = self.error or other.error
        if self.malformed_offset is None:
            self.malformed_offset = other.malformed_offset


def tcp_info_layout(kernel_release: str) -> int:
    """Which meaning bytes 276..279 of a 280-byte tcp_info have on this kernel release."""
    try:
        major, minor = (int(x) for x in kernel_release.split(".")[:2])
    except ValueError:
        return TCP_INFO_LAYOUT_6_18  # unparsable: assume the older meaning
    return TCP_INFO_LAYOUT_7_0 if (major, minor) >= (7, 0) else TCP_INFO_LAYOUT_6_18


HOST_TCP_INFO_LAYOUT = tcp_info_layout(os.uname().release)


def new_records(count: int):
    """A C array for ``count`` records (at least one, so empty dumps need no branch).

    Returns (pointer, owner, capacity): the memory lives as long as ``owner`` does.

    Not zeroed: the decoder writes every record it counts. Big arrays come from the buffer
    pool and go back to it when the last view of them is dropped, so the next poll does not
    fault fresh pages in (csrc/bufpool.h).
    """
    count = max(count, 1)
    p = lib.xtcp_buf_alloc(count * RECORD_SIZE, lib.XTCP_BUF_RECORDS)
    if p == ffi.NULL:
        raise MemoryError(f"no memory for {count} records")
    owner = ffi.gc(p, lib.xtcp_buf_free, size=count * RECORD_SIZE)
    return ffi.cast("struct xtcp_record *", owner), owner, count


def own(p, size: int):
    """Take ownership of a pooled C buffer: it goes back to the pool when the result is dropped."""
    return ffi.gc(p, lib.xtcp_buf_free, size=size)


def owned_view(p, size: int) -> memoryview:
    """A memoryview of a pooled C buffer that keeps the buffer alive as long as it lives."""
    return memoryview(ffi.buffer(own(p, size), size))


def pool_stats() -> dict[str, int]:
    s = ffi.new("struct xtcp_pool_stats *")
    lib.xtcp_pool_stats(s)
    return {"kept_blocks": s.kept_blocks, "kept_bytes": s.kept_bytes, "reused": s.reused, "allocated": s.allocated}


def open_diag_socket(nsfd: int = -1) -> tuple[int, int]:
    """A non-blocking SOCK_DIAG socket connected to the kernel (csrc/nl.h: only the kernel may
    feed it), in the namespace of ``nsfd`` (-1: the calling thread's own).

    Returns:
        (fd, drained): the socket, and how many datagrams someone slipped in before it was
        connected (discarded; count them as rejected senders).
    Raises:
        OSError: socket, setns or connect failed (ENOTRECOVERABLE: this thread could not go
        back to its namespace and must be retired).
    """
    drained = ffi.new("uint32_t *")
    fd = lib.xtcp_open_diag_socket_in(nsfd, drained)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd))
    return fd, drained[0]


def scan_chunk(buf, seq: int) -> tuple[int, int]:
    """What one received datagram means for the dump whose request had nlmsg_seq ``seq``.

    Returns:
        (state, errno): ``SCAN_MORE`` (the dump goes on), ``SCAN_DONE`` (errno set if the dump
        failed midway), ``SCAN_REFUSED`` (NLMSG_ERROR: the kernel refused the request, or 0 for
        an ACK) or ``SCAN_MALFORMED`` (EBADMSG). Messages of another seq never end a dump.
    """
    src = ffi.from_buffer(buf)
    error = ffi.new("int32_t *")
    state = lib.xtcp_nl_scan(src, len(src), seq, error)
    return state, error[0]


def count_socket_messages(buf) -> int:
    src = ffi.from_buffer(buf)
    return lib.xtcp_count_socket_messages(src, len(src))


def new_decode_stats():
    """A C stats struct, shared by every buffer of one dump (the C side accumulates)."""
    return ffi.new("struct xtcp_decode_stats *")


def decode_into(buf, out, cap: int, start: int, layout: int, cstats, seq: int | None = None) -> int:
    """Decode netlink bytes into ``out[start:]``; with ``seq``, only replies to that request.

    Returns the records written; what else was seen accumulates in ``cstats``."""
    src = ffi.from_buffer(buf)
    n = lib.xtcp_decode(src, len(src), out + start, cap - start, layout, -1 if seq is None else seq, cstats)
    if n < 0:  # only if `out` was sized without count_socket_messages: a bug, not bad input
        raise XtcpError(f"record array too small: {cap - start} slots for more sockets")
    return n


def stats_from_c(cstats) -> DecodeStats:
    stats = DecodeStats(**{name: getattr(cstats, name) for name in _STAT_COUNTERS})
    stats.unknown_by_type = {t: c for t, c in enumerate(cstats.unknown_by_type) if c}
    stats.done = bool(cstats.done)
    stats.error = cstats.error
    if cstats.malformed:
        stats.malformed_offset = cstats.malformed_offset
    return stats


def encode_parts(parts, framing: int) -> memoryview:
    """Encode several record runs into one buffer: ``parts`` is (records, start, count, label)
    per run (a dump). Sized exactly first, so the bytes are written once and never copied.
    The memoryview keeps its (pooled) buffer alive."""
    sizes = []
    for records, start, count, label in parts:
        n = lib.xtcp_encoded_size(records + start, count, len(label), framing) if count else 0
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        sizes.append(n)
    total = sum(sizes)
    # Pooled like the record arrays: a fresh 28 MB bytearray per poll costs its page faults.
    p = lib.xtcp_buf_alloc(total, lib.XTCP_BUF_ENCODED)
    if p == ffi.NULL:
        raise MemoryError(f"no memory for {total} encoded bytes")
    out = owned_view(p, total)
    dst = ffi.cast("uint8_t *", p)
    done = ffi.new("size_t *")
    offset = 0
    for (records, start, count, label), size in zip(parts, sizes):
        if not count:
            continue
        n = lib.xtcp_encode(records + start, count, label, len(label), framing, dst + offset, size, done)
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        if n != size or done[0] != count:  # the two C walks disagree: a bug, never input
            raise XtcpError(f"encoder wrote {n} of {size} bytes ({done[0]} of {count} records)")
        offset += size
    return out


def frames_prefix(buf, framing: int, max_records: int = 0, max_bytes: int = 0) -> tuple[int, int]:
    """(bytes, frames) of the longest run of whole frames at the start of ``buf`` within the
    limits (0: none), at least one frame: for splitting encoded bytes into messages."""
    src = ffi.from_buffer(buf)
    frames = ffi.new("size_t *")
    n = lib.xtcp_frames_prefix(src, len(src), framing, max_records, max_bytes, frames)
    if n < 0:  # our own encoder wrote these bytes: a bug, never input
        raise XtcpError(f"encoded bytes do not split into frames: {os.strerror(-n)}")
    return n, frames[0]


def encode(records, start: int, count: int, label: bytes, framing: int) -> memoryview:
    """Encode ``records[start:start+count]``, each prefixed with ``label`` bytes."""
    return encode_parts([(records, start, count, label)], framing)
