"""Decode and encode: netlink bytes into C record arrays, records into protobuf bytes, frames.

The memory handed to C is owned here: record arrays and encoded bytes come from the C buffer
pool and go back to it when the last Python view of them is dropped (csrc/bufpool.h).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InternalError
from . import (RECORD_SIZE, TCP_INFO_LAYOUT_6_18, TCP_INFO_LAYOUT_7_0, errno_error, ffi, lib)

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


def record_fields():
    """(name, C type name or (item type name, length), offset) of each field of the record
    struct, read from the extension: the numpy dtype in ``records`` is built from these."""
    out = []
    for name, cfield in ffi.typeof("struct xtcp_record").fields:
        ctype = cfield.type
        kind = (ctype.item.cname, ctype.length) if ctype.kind == "array" else ctype.cname
        out.append((name, kind, cfield.offset))
    return out


def records_buffer(owner, count: int):
    """The bytes of ``count`` records of a record array, as a buffer that keeps it alive."""
    return ffi.buffer(owner, count * RECORD_SIZE)


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


class Decoder:
    """One dump's decode: a record array sized for ``total`` sockets, fed one buffer at a time.

    Args:
        total: socket messages in every buffer to come (``count_socket_messages``).
        layout: tcp_info tail layout (``tcp_info_layout(release)``).
        seq: the request's nlmsg_seq; other replies are dropped and counted. None: any.
    """

    def __init__(self, total: int, layout: int, seq: int | None = None):
        self.records, self.owner, self._cap = new_records(total)
        self.count = 0
        self._layout = layout
        self._seq = -1 if seq is None else seq
        self._cstats = ffi.new("struct xtcp_decode_stats *")  # the C side accumulates per buffer

    def feed(self, buf) -> int:
        """Decode one buffer of whole netlink messages; returns the records it added."""
        src = ffi.from_buffer(buf)
        n = lib.xtcp_decode(src, len(src), self.records + self.count, self._cap - self.count, self._layout,
                            self._seq, self._cstats)
        if n < 0:  # only if the array was sized without count_socket_messages: a bug, not bad input
            raise InternalError(f"record array too small: {self._cap - self.count} slots for more sockets")
        self.count += n
        return n

    @property
    def malformed_offset(self) -> int | None:
        """Where a lying nlmsg_len stopped the walk, or None."""
        return self._cstats.malformed_offset if self._cstats.malformed else None

    @property
    def error(self) -> int:
        """The errno of an NLMSG_ERROR seen so far, or 0."""
        return self._cstats.error

    def stats(self) -> DecodeStats:
        return stats_from_c(self._cstats)


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
            raise errno_error(n, "encoded size")
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
            raise errno_error(n, "encode")
        if n != size or done[0] != count:  # the two C walks disagree: a bug, never input
            raise InternalError(f"encoder wrote {n} of {size} bytes ({done[0]} of {count} records)")
        offset += size
    return out


def frames_prefix(buf, framing: int, max_records: int = 0, max_bytes: int = 0) -> tuple[int, int]:
    """(bytes, frames) of the longest run of whole frames at the start of ``buf`` within the
    limits (0: none), at least one frame: for splitting encoded bytes into messages."""
    src = ffi.from_buffer(buf)
    frames = ffi.new("size_t *")
    n = lib.xtcp_frames_prefix(src, len(src), framing, max_records, max_bytes, frames)
    if n < 0:  # our own encoder wrote these bytes: a bug, never input
        raise InternalError(f"encoded bytes do not split into frames: {os.strerror(-n)}")
    return n, frames[0]


def encode(records, start: int, count: int, label: bytes, framing: int) -> memoryview:
    """Encode ``records[start:start+count]``, each prefixed with ``label`` bytes."""
    return encode_parts([(records, start, count, label)], framing)
