"""ClickHouse glue: the table DDL, the ProtobufList framing, Arrow columns, and the chDB store.

Importing this module imports neither chdb nor pyarrow: both are the optional extra
``xtcp_uring[chdb]``, loaded on first use.

Two ways in, one table (``xtcp.xtcp_records``, DDL generated from the .proto):

* Arrow (the embedded store): ``arrow_table(batch)`` copies each column out of the C record
  arrays with numpy, in row blocks that stay in cache, and the table goes in with
  ``INSERT … SELECT * FROM Python(tbl)``. No per-socket Python.
* ProtobufList (Kafka engine, HTTP): the C encoder's ``Envelope`` rows. ClickHouse's
  ProtobufList input reads exactly ONE Envelope per stream and wants it length-delimited:
  ``varint(len(envelope)) + envelope``. A bare Envelope fails ("Protobuf stream is
  length-delimited"), and two delimited Envelopes in one stream fail after the first
  ("Unexpected end of ProtobufList message"). So a Kafka message, an HTTP INSERT body or a
  UDP datagram is one ``protobuf_list(rows)``; the Kafka engine resets its parser per message
  since ClickHouse 26.3.1 (ClickHouse PR #98151).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import schema
from .errors import ConfigError, SinkError

ROOT = Path(__file__).resolve().parent.parent
DDL_PATH = ROOT / "examples" / "clickhouse" / "xtcp_records.sql"
KAFKA_PIPELINE_PATH = ROOT / "examples" / "clickhouse" / "kafka_pipeline.sql"
DATABASE = "xtcp"
TABLE = "xtcp_records"
DEFAULT_DATA_DIR = "./xtcp-data"

# Row blocks for the column copy: 4096 records x 512 B stay in L2; a whole-array pass per
# column instead walks 130 x 51 MB at 100k sockets (measured 0.26 s vs 0.06 s).
_BLOCK_ROWS = 4096

_NUMPY = {"uint32": np.uint32, "uint64": np.uint64, "int64": np.int64}
_QUERY_FORMATS = {"table": "PrettyCompactNoEscapesMonoBlock", "json": "JSON", "csv": "CSVWithNames"}


def table_ddl(db: str = DATABASE, ttl_days: int | None = None) -> str:
    """The CREATE TABLE of the record table, from the generated ``xtcp_records.sql``.

    Args:
        db: database name.
        ttl_days: drop rows older than this many days (by ``timestamp_ns``); None keeps all.
    """
    if not db.isidentifier():
        raise ConfigError(f"database name {db!r} is not a plain identifier")
    ttl = ""
    if ttl_days is not None:
        if int(ttl_days) <= 0:
            raise ConfigError(f"ttl_days must be positive, got {ttl_days}")
        ttl = f"TTL toDateTime(intDiv(timestamp_ns, 1000000000)) + INTERVAL {int(ttl_days)} DAY"
    return DDL_PATH.read_text().replace("{db}", db).replace("{ttl}", ttl)


def format_schema() -> str:
    """The ``format_schema`` setting naming our .proto and row message (absolute path)."""
    return f"{schema.PROTO_PATH}:{schema.RECORD_MESSAGE}"


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def protobuf_list(rows: bytes) -> bytes:
    """One ClickHouse ProtobufList message from concatenated ``Envelope.row`` entries."""
    return varint(len(rows)) + rows


# -- Arrow ---------------------------------------------------------------------------------


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
    dumps = [d for d in batch.dumps if d.count]
    n = sum(d.count for d in dumps)
    nums = {c.name: np.empty(n, dtype=c.dtype) for c in _SOCKET_COLUMNS if c.kind == "num"}
    var = {c.name: ([], []) for c in _SOCKET_COLUMNS if c.kind != "num"}
    pos = 0
    for d in dumps:
        arr = d.array()
        for start in range(0, d.count, _BLOCK_ROWS):
            blk = arr[start : start + _BLOCK_ROWS]
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
                pieces, lengths = var[c.name]
                pieces.append(raw[np.arange(raw.shape[1]) < lens[:, None]])
                lengths.append(lens)
            pos = end
    cols = {}
    for c in _SOCKET_COLUMNS:
        if c.kind == "num":
            cols[c.name] = pa.array(nums[c.name])
        else:
            pieces, lengths = var[c.name]
            cols[c.name] = _varlen(pa, pieces, lengths, n, pa.binary() if c.kind == "bytes" else pa.string())
    cols.update(_label_columns(pa, dumps, n))
    return pa.table(cols)


def _label_columns(pa, dumps, n) -> dict:
    """Per-dump [ns] label values (decoded once per dump), spread over that dump's rows."""
    record_cls, _ = schema.message_classes()
    labels = []
    for d in dumps:
        msg = record_cls()
        msg.ParseFromString(d.labels)
        labels.append(msg)
    counts = np.array([d.count for d in dumps], dtype=np.int64)
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


# -- chDB store ----------------------------------------------------------------------------


class Store:
    """The embedded ClickHouse (chDB) under one data directory.

    chDB runs one embedded server per process and locks ``<dir>/status`` against other
    processes, so a process has at most one Store: get it with ``open_store()``. Queries are
    serialised by a lock; callers in asyncio run them in a thread.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(path)
        self._session = None
        self._lock = threading.Lock()
        self._users = 0

    def _open(self) -> None:
        try:
            from chdb import session as chdb_session
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("chdb is not installed: pip install 'xtcp_uring[chdb]'") from exc
        os.makedirs(self.path, exist_ok=True)
        try:
            self._session = chdb_session.Session(self.path)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot open the chDB store {self.path}: another process holds it "
                f"(chDB locks {self.path}/status) or it is damaged ({exc})"
            ) from exc

    def query(self, sql: str, fmt: str = "CSV"):
        """Run one statement; returns chDB's result (``bytes()`` / ``str()`` for text formats)."""
        with self._lock:
            if self._session is None:
                raise SinkError(f"chDB store {self.path} is closed")
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:
                raise _query_error(exc) from exc

    def ensure_table(self, db: str = DATABASE, ttl_days: int | None = None) -> None:
        self.query(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.query(table_ddl(db, ttl_days))

    def insert_arrow(self, table, db: str = DATABASE) -> int:
        """Insert a table made by ``arrow_table()``; returns its row count."""
        cols = ", ".join(f"`{c}`" for c in table.column_names)
        # chDB's Python() table function finds the object by its name in this frame.
        xtcp_arrow_rows = table  # noqa: F841
        self.query(f"INSERT INTO {db}.{TABLE} ({cols}) SELECT * FROM Python(xtcp_arrow_rows)")
        return table.num_rows

    def insert_protobuf_list(self, message: bytes, db: str = DATABASE, table: str = TABLE) -> int:
        """Insert one ``protobuf_list()`` message with the .proto as format schema."""
        sql = f"INSERT INTO {db}.{table} SETTINGS format_schema = '{format_schema()}'"
        return self.insert(sql, "ProtobufList", message)

    def insert(self, sql: str, fmt: str, data: bytes) -> int:
        """Run ``sql`` (an INSERT without FORMAT) over ``data`` in input format ``fmt``;
        returns the rows written."""
        with self._lock:
            if self._session is None:
                raise SinkError(f"chDB store {self.path} is closed")
            try:
                ins = self._session.send_insert(sql, fmt)
                ins.append(data)
                return ins.finish().rows_written
            except Exception as exc:
                raise _query_error(exc) from exc

    def release(self) -> None:
        """Drop one user (``open_store``); the session closes with the last one."""
        with _STORES_LOCK:
            self._users -= 1
            if self._users > 0:
                return
            _STORES.pop(self.path, None)
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def _query_error(exc: Exception) -> SinkError:
    err = SinkError(f"chDB: {exc}")
    err.retriable = False  # a statement chDB rejects fails the same way next time
    return err


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(path: str | os.PathLike = DEFAULT_DATA_DIR) -> Store:
    """The process's chDB store at ``path``, opened on first use; ``release()`` it when done.

    Raises:
        ConfigError: chdb is missing, another process holds ``path``, or this process already
            has a store open at a different path (chDB allows one per process).
    """
    key = os.path.abspath(path)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            if _STORES:
                (other,) = _STORES
                raise ConfigError(f"chDB is already open at {other}; one data directory per process")
            store = Store(key)
            store._open()
            _STORES[key] = store
        store._users += 1
        return store


def run_query(sql: str, fmt: str = "table", data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> str:
    """What ``python -m xtcp_uring query`` prints: the result of ``sql`` against the store.

    Args:
        sql: any ClickHouse SQL; the record table is ``xtcp.xtcp_records``.
        fmt: ``table`` (aligned text), ``json`` or ``csv`` (with a header row).
        data_dir: the store's directory (the daemon's ``--data-dir``).

    Raises:
        ConfigError: unknown format, or the store cannot be opened (see ``open_store``).
        SinkError: ClickHouse rejected the statement (the message is ClickHouse's).
    """
    if fmt not in _QUERY_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(_QUERY_FORMATS)}")
    if not os.path.isdir(data_dir):
        raise ConfigError(f"no xtcp store at {data_dir}: run the daemon first or pass --data-dir")
    store = open_store(data_dir)
    try:
        result = store.query(sql, _QUERY_FORMATS[fmt])
        # Address columns are raw bytes: show them escaped rather than fail.
        return result.bytes().decode(errors="backslashreplace") if hasattr(result, "bytes") else str(result)
    finally:
        store.release()


QUERY_SOCKET = "query.sock"  # in the data directory, while a daemon holds the store


def run_query_cli(sql: str, data_dir: str | os.PathLike = DEFAULT_DATA_DIR, fmt: str = "table") -> int:
    """``python -m xtcp_uring query``: print the result; returns the exit code (0).

    chDB locks its directory, so while a daemon stores into ``data_dir`` the query goes to
    that daemon through ``<data_dir>/query.sock``; otherwise the store is opened here.
    """
    import sys

    sock_path = os.path.join(data_dir, QUERY_SOCKET)
    text = _query_daemon(sock_path, sql, fmt) if os.path.exists(sock_path) else None
    if text is None:
        text = run_query(sql, fmt, data_dir)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def _query_daemon(sock_path: str, sql: str, fmt: str) -> str | None:
    """Ask the daemon that holds the store; None when no daemon answers (a stale socket)."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(sock_path)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        s.sendall(json.dumps({"sql": sql, "format": fmt}).encode() + b"\n")
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    status, _, body = b"".join(chunks).partition(b"\n")
    if status == b"ok":
        return body.decode()
    kind, _, message = body.decode().partition(": ")
    raise (ConfigError if kind == "ConfigError" else SinkError)(message)


async def serve_queries(data_dir: str | os.PathLike):
    """Answer ``query`` clients on ``<data_dir>/query.sock`` from this process's store.

    Returns the asyncio server; close it before releasing the store.
    """
    import asyncio
    import json

    sock_path = os.path.join(data_dir, QUERY_SOCKET)

    async def handle(reader, writer):
        try:
            req = json.loads(await reader.readline())
            text = await asyncio.to_thread(run_query, req["sql"], req.get("format", "table"), data_dir)
            writer.write(b"ok\n" + text.encode())
        except (ConfigError, SinkError) as exc:
            writer.write(f"error\n{type(exc).__name__}: {exc}".encode())
        except (ValueError, KeyError) as exc:
            writer.write(f"error\nConfigError: bad query request: {exc}".encode())
        finally:
            await writer.drain()
            writer.close()

    if os.path.exists(sock_path):
        os.unlink(sock_path)  # left by a daemon that was killed; chDB's own lock guards the store
    server = await asyncio.start_unix_server(handle, sock_path)
    os.chmod(sock_path, 0o600)
    return server
