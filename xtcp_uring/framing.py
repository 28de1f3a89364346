"""One vocabulary for how records are framed and in which format a sink or the CLI writes them.

Framings (how protobuf records follow one another; the C encoder writes each, native.FRAME_*):

    envelope    one ``Envelope`` message whose repeated ``row`` fields are the records: what a
                Kafka message, a UDP datagram and ClickHouse ``FORMAT ProtobufList`` carry
    delimited   each record prefixed with its varint length: ClickHouse ``FORMAT Protobuf``,
                any protobuf library's delimited reader
    single      one record alone (iterating a batch)

Formats (what ``--format`` and the file/stdout sinks write):

    jsonl       one JSON object per socket, for people (no framing: rendered from columns)
    pb          the ``delimited`` framing
    pblist      one ClickHouse ProtobufList message per batch: the ``envelope`` framing,
                length-prefixed

Formats for people, stdout of ``--once`` and ``decode`` only (``tables.py``):

    table       aligned columns like ``ss``, units converted (ms, Mbit/s, 1.5M bytes)
    csv         a header line, then one row per socket in raw units

The poller's ``encode=`` option and a sink's ``encoding`` speak framings by name; only
``native_framing`` turns a name into the C constant.
"""

from __future__ import annotations

from types import MappingProxyType

from . import native

__all__ = [
    "ENVELOPE", "DELIMITED", "SINGLE", "FRAMINGS", "JSONL", "PB", "PBLIST", "FORMATS", "FORMAT_FRAMING",
    "TABLE", "CSV", "CLI_FORMATS", "native_framing",
]

ENVELOPE = "envelope"
DELIMITED = "delimited"
SINGLE = "single"
FRAMINGS = (ENVELOPE, DELIMITED)  # what the io_uring backend can encode as chunks arrive

JSONL = "jsonl"
PB = "pb"
PBLIST = "pblist"
FORMATS = (JSONL, PB, PBLIST)
TABLE = "table"
CSV = "csv"
CLI_FORMATS = (TABLE, JSONL, CSV, PB, PBLIST)  # --once and decode: FORMATS plus the ones for people
FORMAT_FRAMING = MappingProxyType({JSONL: None, PB: DELIMITED, PBLIST: ENVELOPE})

_NATIVE = MappingProxyType({
    ENVELOPE: native.FRAME_ENVELOPE_ROWS, DELIMITED: native.FRAME_DELIMITED, SINGLE: native.FRAME_SINGLE,
})


def native_framing(framing: str | None) -> int | None:
    """The C encoder's constant for a framing name; None stays None (do not encode).

    Raises:
        KeyError: not a framing name.
    """
    return None if framing is None else _NATIVE[framing]
