"""Batches of decoded sockets: a C record array per dump, seen from Python as columns.

Python touches a batch, never a socket on the hot path: ``column()`` is a numpy view over the
C array, ``encode()`` is one C call per dump, or no call at all when the io_uring backend
already encoded each chunk as it arrived (``Dump.encoded``). Per-socket Python objects are made
only when a caller iterates (``for msg in batch``), which parses protobuf messages on demand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Iterator

import numpy as np

from . import native, schema
from .native.ring import ring_output
from .errors import DecodeError, NetlinkError

_NUMPY_TYPES = {
    "uint8_t": np.uint8,
    "uint16_t": np.uint16,
    "uint32_t": np.uint32,
    "uint64_t": np.uint64,
    "int64_t": np.int64,
    "char": np.uint8,
}


@cache
def record_dtype() -> np.dtype:
    """numpy structured dtype with the C struct's exact offsets (read from cffi, not guessed)."""
    names, formats, offsets = [], [], []
    for name, ctype, offset in native.record_fields():
        fmt = (_NUMPY_TYPES[ctype[0]], ctype[1]) if isinstance(ctype, tuple) else _NUMPY_TYPES[ctype]
        names.append(name)
        formats.append(fmt)
        offsets.append(offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": native.RECORD_SIZE})


def encode_labels(**labels) -> bytes:
    """Protobuf bytes of the per-namespace [ns] fields, copied in front of every record."""
    allowed = {f.name for f in schema.label_fields()}
    unknown = set(labels) - allowed
    if unknown:
        raise ValueError(f"not namespace label fields: {sorted(unknown)}")
    record_cls, _ = schema.message_classes()
    return record_cls(**{k: v for k, v in labels.items() if v not in (None, "")}).SerializeToString()


@dataclass
class Dump:
    """The decoded sockets of one dump (one namespace, one address family)."""

    records: object  # cdata struct xtcp_record *
    count: int
    labels: bytes = b""
    stats: native.DecodeStats = field(default_factory=native.DecodeStats)
    netns: str = ""
    family: int = 0
    dump_ns: int = 0  # wall time of the dump, ns
    bytes_received: int = 0
    recvs: int = 0
    error: str | None = None  # why this dump is missing or partial, for the batch report
    owner: object = field(default=None, repr=False)  # keeps `records` memory alive (pooled)
    encoded: memoryview | None = field(default=None, repr=False)  # the records, already encoded
    framing: int | None = None  # native.FRAME_* of `encoded`
    decode_ns: int = 0  # time in the C decoder (measured by the ring)
    encode_ns: int = 0  # time in the C encoder for `encoded`

    def encoded_as(self, framing: int) -> memoryview | None:
        """The records in this framing if they were encoded as they arrived, else None."""
        return self.encoded if self.framing == framing and self.encoded is not None else None

    def array(self) -> np.ndarray:
        if self.count == 0:
            return np.empty(0, dtype=record_dtype())
        # From the owner, so a numpy view alone keeps the memory alive.
        buf = native.records_buffer(self.owner, self.count)
        return np.frombuffer(buf, dtype=record_dtype(), count=self.count)

    def encode(self, framing: int) -> memoryview:
        return native.encode(self.records, 0, self.count, self.labels, framing)


def decode_buffers(
    buffers,
    *,
    layout: int = native.HOST_TCP_INFO_LAYOUT,
    labels: bytes = b"",
    netns: str = "",
    strict: bool = True,
    seq: int | None = None,
) -> Dump:
    """Decode the netlink bytes of one dump (any number of recv buffers) into one Dump.

    Args:
        buffers: bytes-like objects, each holding whole netlink messages (one recv each).
        layout: tcp_info tail layout (``native.tcp_info_layout(release)``).
        labels: encoded [ns] fields (``encode_labels``) for every record of this dump.
        netns: name used in errors.
        seq: the request's nlmsg_seq; replies to anything else (the rest of a dump abandoned
            on the same socket, or forged) are dropped and counted in ``stats.rejected_seq``.
        strict: raise on NLMSG_ERROR / malformed input; otherwise keep what decoded and
            report it in ``stats`` (the poller's choice: never lose the other sockets).

    Raises:
        NetlinkError: the kernel answered with NLMSG_ERROR (strict only).
        DecodeError: a netlink header lies about its length (strict only).
    """
    buffers = [b for b in buffers if len(b)]
    total = sum(native.count_socket_messages(b) for b in buffers)
    decoder = native.Decoder(total, layout, seq)
    for buf in buffers:
        decoder.feed(buf)
        if decoder.malformed_offset is not None and strict:
            raise DecodeError("malformed netlink message: nlmsg_len out of bounds",
                              offset=decoder.malformed_offset, netns=netns or None)
        if decoder.error:
            if strict:
                raise NetlinkError(decoder.error, f"kernel rejected the dump request: {os.strerror(decoder.error)}")
            break
    return Dump(records=decoder.records, count=decoder.count, labels=labels, stats=decoder.stats(), netns=netns,
                bytes_received=sum(len(b) for b in buffers), recvs=len(buffers), owner=decoder.owner)


def dump_from_ring(out, *, labels: bytes, framing: int | None) -> Dump:
    """A Dump over what a finished io_uring job hands over (``native.ring.RingOutput``, or the
    C ``struct xtcp_ring_output`` a test of the C API holds)."""
    out = ring_output(out, encodes=framing is not None)
    return Dump(records=out.records, count=out.count, labels=labels, stats=out.stats, owner=out.owner,
                encoded=out.encoded, framing=framing, decode_ns=out.decode_ns, encode_ns=out.encode_ns)


@dataclass
class Batch:
    """One poll: the dumps of every namespace and family, plus what went wrong where."""

    dumps: list[Dump]
    poll_id: int = 0
    timestamp_ns: int = 0
    duration_ns: int = 0
    backend: str = ""
    event: str = "poll"  # "close": records of destroyed sockets (closes.py), not a poll's

    def __len__(self) -> int:
        return sum(d.count for d in self.dumps)

    def column(self, name: str, *, addresses: str = "bytes") -> np.ndarray:
        """One field for every socket, as numpy (a view when the batch has one dump).

        ``name`` is any column of the schema: a per-socket field (``tcp_info_rtt``, in
        microseconds as the kernel gives it) or a namespace label (``netns``, ``hostname``,
        ``container_name``…, one value per dump repeated over its sockets). For the two address
        columns, ``addresses="text"`` gives strings and ``"ip"`` ``ipaddress`` objects instead
        of the raw ``uint8[16]`` rows (see ``batch_views``).

        Raises:
            KeyError: not a column of the schema.
        """
        from . import batch_views

        if name not in record_dtype().names:
            return batch_views.label_column(self, name)
        if addresses != "bytes" and name in batch_views.ADDRESS_COLUMNS:
            return batch_views.address_column(self, name, addresses)
        parts = [d.array()[name] for d in self.dumps if d.count]
        if not parts:
            return np.empty(0, dtype=record_dtype()[name])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def filter(self, *, states=None, mask: np.ndarray | None = None) -> "Batch":
        """A new batch of the sockets in ``states`` (names such as ``"established"``, ``"listen"``,
        or ``TCP_*`` numbers) and/or where ``mask`` (a bool array over this batch) is true.
        One numpy copy per dump; the labels and the dump details are kept."""
        from . import batch_views

        return batch_views.filtered(self, states=states, mask=mask)

    def to_arrow(self, *, addresses: str = "bytes"):
        """Every record as a ``pyarrow.Table`` named as the ClickHouse table's columns (labels as
        dictionary columns, addresses binary, or ``addresses="text"``). Needs pyarrow
        (``pip install 'xtcp_uring[chdb]'``)."""
        from . import batch_views

        return batch_views.to_arrow(self, addresses=addresses)

    def to_pandas(self, *, addresses: str = "text"):
        """``to_arrow(...).to_pandas()``: labels become categoricals. Needs pandas and pyarrow."""
        from . import batch_views

        return batch_views.to_pandas(self, addresses=addresses)

    def encode(self, framing: int = native.FRAME_ENVELOPE_ROWS) -> bytes | memoryview:
        """All records as protobuf bytes; with the default framing, one Envelope message.

        Dumps the ring already encoded in this framing are reused as they are (no copy when
        there is one such dump, as for one big namespace); the others are encoded now."""
        dumps = [d for d in self.dumps if d.count]
        if dumps and all(d.encoded_as(framing) is not None for d in dumps):
            if len(dumps) == 1:
                return dumps[0].encoded
            return b"".join(d.encoded for d in dumps)
        return native.encode_parts([(d.records, 0, d.count, d.labels) for d in dumps], framing)

    def envelope(self) -> bytes:
        return self.encode(native.FRAME_ENVELOPE_ROWS)

    def delimited(self) -> bytes:
        return self.encode(native.FRAME_DELIMITED)

    def __iter__(self) -> Iterator:
        """Parsed protobuf messages, made on demand (slow path: for tools and tests)."""
        record_cls, _ = schema.message_classes()
        for d in self.dumps:
            for i in range(d.count):
                msg = record_cls()
                msg.ParseFromString(native.encode(d.records, i, 1, d.labels, native.FRAME_SINGLE))
                yield msg

    @property
    def stats(self) -> native.DecodeStats:
        total = native.DecodeStats()
        for d in self.dumps:
            total.add(d.stats)
        return total
