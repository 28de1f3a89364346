"""Arrow columns of a batch, the way the embedded store takes them.

``arrow_table(batch)`` copies each column out of the C record arrays with numpy, in row blocks
that stay in cache, and the table goes in with ``INSERT … SELECT * FROM Python(tbl)``.
``arrow_reader(batch)`` makes the same columns a few thousand rows at a time, as chDB reads
them: what the daemon's store inserts (less memory, the same single part). No per-socket Python. pyarrow is the optional extra ``xtcp_uring[chdb]``, imported on first use.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import schema
from ..errors import ConfigError

# Row blocks for the column copy: 4096 records x 512 B stay in L2; a whole-array pass per
# column instead walks 130 x 51 MB at 100k sockets (measured 0.26 s vs 0.06 s).
_BLOCK_ROWS = 4096

# Rows per record batch of arrow_reader(): ~5 MB of Arrow at a time.
STREAM_ROWS = 8192

_NUMPY = {"uint32": np.uint32, "uint64": np.uint64, "int64": np.int64}


def _pa():
    try:
        import pyarrow
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("pyarrow is not installed: pip install 'xtcp_uring[chdb]'") from exc
    return pyarrow


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "num", "bytes", "text"
    dtype: object = None  # numpy dtype of the output column ("num")


def _socket_columns() -> tuple[_Column, ...]:
    rec = schema.record()
    enums = {e.name for e in rec.enums}
    cols = []
    for f in schema.socket_fields():
        if f.c_storage == "bytes16":
            cols.append(_Column(f.name, "bytes"))
        elif f.c_storage == "char16":
            cols.append(_Column(f.name, "text"))
        elif f.type in enums:
            cols.append(_Column(f.name, "num", np.int8))  # Enum8 in the DDL
        else:
            cols.append(_Column(f.name, "num", _NUMPY[f.type]))
    return tuple(cols)


_SOCKET_COLUMNS = _socket_columns()


def _varlen(pa, pieces, lengths, n, typ):
    offsets = np.zeros(n + 1, dtype=np.int32)
    if n:
        np.cumsum(np.concatenate(lengths) if len(lengths) > 1 else lengths[0], out=offsets[1:])
    data = np.concatenate(pieces) if len(pieces) > 1 else (pieces[0] if pieces else np.empty(0, np.uint8))
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])


def arrow_table(batch):
    """All records of a batch as a ``pyarrow.Table`` whose columns are named as the DDL's.

    Numbers keep the proto's width (uint8 storage becomes UInt32 as in the DDL); bytes16
    addresses become binary trimmed to their length, char16 strings become strings cut at
    the first NUL, and the per-dump labels become dictionary columns (LowCardinality) or
    repeated numbers. Reserved columns are left out: ClickHouse fills their defaults.
    """
    pa = _pa()
    return pa.table(_columns(pa, [(d, 0, d.count) for d in batch.dumps if d.count]))


def arrow_reader(batch, rows: int = STREAM_ROWS):
    """The same columns as ``arrow_table(batch)``, as a ``pyarrow.RecordBatchReader`` that
    builds each record batch of at most ``rows`` rows when it is read.

    chDB reads it one batch at a time (``INSERT … SELECT * FROM Python(reader)``) and squashes
    them into one block: one part, as with a table, without the whole poll in Arrow at once
    (68 MB at 100k sockets, beside the 51 MB of C records it is copied from). Read it once;
    make another for a retry.
    """
    pa = _pa()
    dumps = [d for d in batch.dumps if d.count]
    if not dumps:
        return pa.RecordBatchReader.from_batches(pa.schema([]), iter(()))

    def ranges():
        piece, n = [], 0
        for d in dumps:
            start = 0
            while start < d.count:
                stop = min(d.count, start + rows - n)
                piece.append((d, start, stop))
                n += stop - start
                start = stop
                if n == rows:
                    yield piece
                    piece, n = [], 0
        if piece:
            yield piece

    pieces = ranges()
    first = pa.record_batch(_columns(pa, next(pieces)))
    rest = (pa.record_batch(_columns(pa, p)) for p in pieces)
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain((first,), rest))


def _columns(pa, pieces) -> dict:
    """The Arrow columns of rows ``start:stop`` of each ``(dump, start, stop)``, in order."""
    n = sum(stop - start for _, start, stop in pieces)
    nums = {c.name: np.empty(n, dtype=c.dtype) for c in _SOCKET_COLUMNS if c.kind == "num"}
    var = {c.name: ([], []) for c in _SOCKET_COLUMNS if c.kind != "num"}
    pos = 0
    for d, first, last in pieces:
        arr = d.array()
        for start in range(first, last, _BLOCK_ROWS):
            blk = arr[start : min(last, start + _BLOCK_ROWS)]
            end = pos + len(blk)
            for c in _SOCKET_COLUMNS:
                if c.kind == "num":
                    nums[c.name][pos:end] = blk[c.name]
                    continue
                raw = blk[c.name]
                if c.kind == "bytes":
                    lens = blk[c.name + "_len"].astype(np.int32)
                else:
                    nul = raw == 0
                    lens = np.where(nul.any(axis=1), nul.argmax(axis=1), raw.shape[1]).astype(np.int32)
                pieces_, lengths = var[c.name]
                pieces_.append(raw[np.arange(raw.shape[1]) < lens[:, None]])
                lengths.append(lens)
            pos = end
    cols = {}
    for c in _SOCKET_COLUMNS:
        if c.kind == "num":
            cols[c.name] = pa.array(nums[c.name])
        else:
            chunks, lengths = var[c.name]
            cols[c.name] = _varlen(pa, chunks, lengths, n, pa.binary() if c.kind == "bytes" else pa.string())
    cols.update(_label_columns(pa, [d for d, _, _ in pieces], n,
                               np.array([stop - start for _, start, stop in pieces], dtype=np.int64)))
    return cols


def _label_columns(pa, dumps, n, counts) -> dict:
    """Per-dump [ns] label values (decoded once per dump), spread over ``counts`` rows each."""
    record_cls, _ = schema.message_classes()
    labels = []
    for d in dumps:
        msg = record_cls()
        msg.ParseFromString(d.labels)
        labels.append(msg)
    cols = {}
    for f in schema.label_fields():
        values = [getattr(m, f.name) for m in labels]
        if f.type == "string":
            uniq = list(dict.fromkeys(values))  # ClickHouse rejects a dictionary with duplicates
            codes = np.array([uniq.index(v) for v in values], dtype=np.int32)
            cols[f.name] = pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(codes, counts)), pa.array(uniq, pa.string())
            )
        else:
            cols[f.name] = pa.array(np.repeat(np.array(values, dtype=_NUMPY[f.type]), counts))
    return cols
