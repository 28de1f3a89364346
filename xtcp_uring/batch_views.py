"""Ways to look at a ``Batch`` for library users: label columns, addresses as text, filters, Arrow.

All of it works per dump or per column, never per socket: a label is one value per dump
repeated with ``np.repeat``; a filter is one boolean mask and one numpy copy per dump into a
fresh C record array (so the filtered batch still encodes in C); addresses become text once
per distinct address (``np.unique`` over the 16-byte rows), not once per socket.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from . import native, schema
from .errors import ConfigError
from .wire.request import TCP_STATES

__all__ = ["ADDRESS_COLUMNS", "label_column", "address_column", "filtered", "to_arrow", "to_pandas",
           "state_numbers"]

ADDRESS_COLUMNS = ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination")
_NUMPY = {"uint32": np.uint32, "uint64": np.uint64, "int64": np.int64}


def _labels(dump):
    """The dump's [ns] label message (parsed once per dump and kept on it)."""
    msg = getattr(dump, "_label_message", None)
    if msg is None:
        record_cls, _ = schema.message_classes()
        msg = record_cls.FromString(dump.labels or b"")
        dump._label_message = msg
    return msg


def label_column(batch, name: str) -> np.ndarray:
    """A namespace label over every socket: strings as an object array, numbers in their width.

    Raises:
        KeyError: ``name`` is not a column of the schema.
    """
    fields = {f.name: f for f in schema.label_fields()}
    field = fields.get(name)
    if field is None:
        raise KeyError(f"{name!r} is not a column: a socket field of the schema (tcp_info_rtt, …) "
                       f"or a namespace label ({', '.join(fields)})")
    dumps = [d for d in batch.dumps if d.count]
    values = [getattr(_labels(d), name) for d in dumps]
    if name == "netns":  # a dump decoded without labels (a capture) still knows what it came from
        values = [v or d.netns for v, d in zip(values, dumps)]
    counts = [d.count for d in dumps]
    dtype = object if field.type == "string" else _NUMPY.get(field.type, np.int64)
    return np.repeat(np.array(values, dtype=dtype), counts) if dumps else np.empty(0, dtype=dtype)


def _address_text(raw: bytes) -> str:
    addr = ipaddress.ip_address(raw)
    return f"::ffff:{addr.ipv4_mapped}" if addr.version == 6 and addr.ipv4_mapped else str(addr)


def address_column(batch, name: str, kind: str) -> np.ndarray:
    """An address column as text (``kind="text"``) or ``ipaddress`` objects (``"ip"``), object array.

    Raises:
        ValueError: ``kind`` is neither.
    """
    if kind not in ("text", "ip"):
        raise ValueError(f"addresses={kind!r}: choose 'bytes', 'text' or 'ip'")
    raw = batch.column(name)
    lens = batch.column(name + "_len")
    if not len(raw):
        return np.empty(0, dtype=object)
    # One conversion per distinct (bytes, length): a host has far fewer addresses than sockets.
    keyed = np.concatenate([raw, lens.astype(np.uint8)[:, None]], axis=1)
    uniq, inverse = np.unique(keyed, axis=0, return_inverse=True)
    convert = _address_text if kind == "text" else ipaddress.ip_address
    table = np.empty(len(uniq), dtype=object)
    for i, row in enumerate(uniq):
        table[i] = convert(bytes(row[:row[16]])) if row[16] in (4, 16) else ("" if kind == "text" else None)
    return table[inverse.reshape(-1)]


def state_numbers(states) -> np.ndarray:
    """``states`` (a name, a number, or an iterable of either) as TCP_* numbers.

    Raises:
        ConfigError: an unknown state name.
    """
    if isinstance(states, (str, int)):
        states = [states]
    out = []
    for s in states:
        if isinstance(s, str):
            key = s.lower().replace("-", "_")
            key = {"estab": "established", "time_wait": "time_wait"}.get(key, key)
            if key not in TCP_STATES:
                raise ConfigError(f"unknown TCP state {s!r}; known: {', '.join(TCP_STATES)}")
            out.append(TCP_STATES[key])
        else:
            out.append(int(s))
    return np.array(out, dtype=np.uint8)


def filtered(batch, *, states=None, mask=None):
    """A new Batch holding the sockets that pass; see ``Batch.filter``.

    Raises:
        ValueError: ``mask`` is not one bool per socket of the batch.
    """
    from .records import Batch, Dump, record_dtype

    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(batch),):
            raise ValueError(f"mask has shape {mask.shape}, want ({len(batch)},): one bool per socket")
    wanted = state_numbers(states) if states is not None else None
    dumps, pos = [], 0
    for d in batch.dumps:
        if not d.count:
            dumps.append(d)
            continue
        arr = d.array()
        keep = np.ones(d.count, dtype=bool) if mask is None else mask[pos:pos + d.count]
        pos += d.count
        if wanted is not None:
            keep = keep & np.isin(arr["inet_diag_msg_state"], wanted)
        n = int(keep.sum())
        records, owner, _ = native.new_records(n)
        if n:
            np.frombuffer(native.records_buffer(owner, n), dtype=record_dtype(), count=n)[:] = arr[keep]
        dumps.append(Dump(records=records, count=n, labels=d.labels, stats=d.stats, netns=d.netns, family=d.family,
                          dump_ns=d.dump_ns, bytes_received=d.bytes_received, recvs=d.recvs, error=d.error,
                          owner=owner))
    return Batch(dumps, poll_id=batch.poll_id, timestamp_ns=batch.timestamp_ns, duration_ns=batch.duration_ns,
                 backend=batch.backend)


def to_arrow(batch, *, addresses: str = "bytes"):
    from .clickhouse.arrow import arrow_table

    if addresses not in ("bytes", "text"):
        raise ValueError(f"to_arrow(addresses={addresses!r}): choose 'bytes' or 'text'")
    table = arrow_table(batch)
    if addresses == "bytes":
        return table
    import pyarrow as pa

    for name in ADDRESS_COLUMNS:
        values = address_column(batch, name, "text")
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pa.array(values.tolist(), pa.string()))
    return table


def to_pandas(batch, *, addresses: str = "text"):
    try:
        import pandas  # noqa: F401 - pyarrow's to_pandas needs it
    except ImportError:
        raise ConfigError("pandas is not installed: pip install 'xtcp_uring[chdb]' (chDB brings pandas and pyarrow)") from None
    return to_arrow(batch, addresses=addresses).to_pandas()
