"""The encodings of one batch that sinks share: each framing made once, however many sinks want it.

``envelope_messages`` cuts a batch into Envelope messages under a record and byte budget (Kafka
message size, UDP datagram): from the bytes the io_uring backend already encoded when it can.
"""

from __future__ import annotations

from .. import clickhouse, native
from ..records import Batch

__all__ = ["Encoded", "envelope_messages"]

class Encoded:
    """A batch and the encodings sinks made of it, each made once.

    Wrap a batch once and hand the same object to every sink; ``Sink.send`` accepts a bare
    ``Batch`` too (and wraps it, sharing nothing).
    """

    __slots__ = ("batch", "_memo")

    def __init__(self, batch: Batch):
        self.batch = batch
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.batch)

    def memo(self, key, make):
        """``make()``'s result, computed on the first call with this key."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = make()
            return value

    def delimited(self) -> bytes:
        """Every record as varint length + XtcpFlatRecord (ClickHouse ``FORMAT Protobuf``)."""
        return self.memo("delimited", self.batch.delimited)

    def protobuf_list(self, max_records: int = 0, max_bytes: int = 0) -> list[tuple[bytes, int]]:
        """ClickHouse ProtobufList messages (one length-delimited Envelope each) with their
        record counts, each holding at most ``max_records`` records and ``max_bytes`` bytes
        (0: no limit). See ``clickhouse`` for why one message is one delimited Envelope."""
        return self.memo(("protobuf_list", max_records, max_bytes),
                         lambda: envelope_messages(self.batch, max_records, max_bytes))

    def arrow(self):
        """The batch as a ``pyarrow.Table`` with the DDL's column names."""
        return self.memo("arrow", lambda: clickhouse.arrow_table(self.batch))


class _Messages:
    """ProtobufList messages being filled, one at a time: rows go into the open one."""

    def __init__(self):
        self.done: list[tuple[bytes, int]] = []
        self.parts: list = []
        self.count = self.size = 0

    def add(self, rows, n: int) -> None:
        self.parts.append(rows)
        self.count += n
        self.size += len(rows)

    def close(self) -> None:
        if self.count:
            # The length prefix and the rows in one copy (protobuf_list of a join made two).
            self.done.append((b"".join([clickhouse.varint(self.size), *self.parts]), self.count))
        self.parts, self.count, self.size = [], 0, 0


def envelope_messages(batch: Batch, max_records: int = 0, max_bytes: int = 0) -> list[tuple[bytes, int]]:
    """Split a batch into ProtobufList messages at record boundaries.

    Rows of different dumps share a message (each row carries its own labels). When the ring
    already encoded every dump (``Poller(encode="envelope")``), those bytes are cut at row
    boundaries by C. Otherwise the C encoder writes whole records; sizes are found by encoding
    a range and shrinking it by its measured mean when it does not fit. Either way Python works
    per message, not per record.
    """
    if not max_records and not max_bytes:
        rows = batch.envelope()
        return [(clickhouse.protobuf_list(rows), len(batch))] if rows else []
    limit = max_bytes - 5 if max_bytes else 1 << 62  # 5: the varint of a length < 4 GiB
    dumps = [d for d in batch.dumps if d.count]
    if dumps and all(d.encoded_as(native.FRAME_ENVELOPE_ROWS) is not None for d in dumps):
        return _split_encoded([d.encoded for d in dumps], max_records, limit if max_bytes else 0)
    out = _Messages()
    mean = 0.0
    for dump in dumps:
        start = 0
        while start < dump.count:
            n = dump.count - start
            if max_records:
                n = min(n, max_records - out.count)
            room = limit - out.size
            if max_bytes and mean:
                n = max(1, min(n, int(room / mean)))
            while True:
                piece = native.encode(dump.records, start, n, dump.labels, native.FRAME_ENVELOPE_ROWS)
                if len(piece) <= room or n == 1:
                    break
                n = max(1, min(n - 1, n * room // len(piece)))
            if len(piece) > room and out.count:
                out.close()  # not even one more record fits: close this message, retry in the next
                continue
            mean = len(piece) / n
            out.add(piece, n)
            start += n
            if (max_records and out.count >= max_records) or (max_bytes and limit - out.size < mean):
                out.close()
    out.close()
    return out.done


def _split_encoded(views, max_records: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """ProtobufList messages from Envelope rows already encoded, cut between rows by C."""
    out = _Messages()
    for view in views:
        start = 0
        while start < len(view):
            if (max_records and out.count >= max_records) or (max_bytes and out.size >= max_bytes):
                out.close()  # full (no room left would mean "no limit" to C)
            room_records = max_records - out.count if max_records else 0
            room_bytes = max_bytes - out.size if max_bytes else 0
            nbytes, n = native.frames_prefix(view[start:], native.FRAME_ENVELOPE_ROWS, room_records, room_bytes)
            if max_bytes and nbytes > room_bytes and out.count:
                out.close()  # not even one more row fits: it starts the next message
                continue
            out.add(view[start:start + nbytes], n)
            start += nbytes
            if start < len(view):  # the limits stopped the run: this message is full
                out.close()
    out.close()
    return out.done
