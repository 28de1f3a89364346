"""The embedded ClickHouse store (chDB) under one data directory."""

from __future__ import annotations

import os
import threading

from ..errors import ConfigError, SinkError
from . import datadir
from .errors import ClickHouseError, from_text, one_line
from .ddl import DATABASE, DEFAULT_DATA_DIR, TABLE, format_schema


class Store:
    """The embedded ClickHouse (chDB) under one data directory.

    chDB runs one embedded server per process and locks ``<dir>/status`` against other
    processes, so a process has at most one Store: get it with ``open_store()``. Its own
    session (the sink's inserts, ``query()``) is serialised by a lock; callers in asyncio run
    it in a thread. Client queries get connections of their own (``connect``). The directory
    is ours alone (``datadir``): refused if another user owns it, tightened to 0700/0600.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(path)
        if "?" in self.path or "&" in self.path:
            raise ConfigError(f"data dir {self.path}: '?' and '&' cannot be in its path (chDB reads them as options)")
        self._session = None
        self._lock = threading.Lock()
        self._users = 0

    def _open(self) -> None:
        try:
            from chdb import session as chdb_session
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("chdb is not installed: pip install 'xtcp_uring[chdb]'") from exc
        datadir.prepare(self.path)
        try:
            self._session = chdb_session.Session(self.path)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot open the chDB store {self.path}: another process holds it "
                f"(chDB locks {self.path}/status) or it is damaged ({one_line(str(exc))})"
            ) from exc
        try:
            datadir.tighten(self.path)
        except BaseException:
            self._session.close()
            self._session = None
            raise

    def connect(self, settings: str):
        """A new chDB connection to this store, apart from the sink's session: ``settings``
        (``name=value&…``, ClickHouse query settings) hold for it alone, and it runs beside the
        sink's inserts, not after them. Opening and closing one costs 0.16 ms (measured), so
        each query gets a fresh one. Close it when done; keep the store open meanwhile."""
        from chdb.state import sqlitelike

        with self._lock:
            if self._session is None:
                raise SinkError(f"chDB store {self.path} is closed")
        return sqlitelike.connect(f"{self.path}?{settings}")

    def query(self, sql: str, fmt: str = "CSV"):
        """Run one statement; returns chDB's result (``bytes()`` / ``str()`` for text formats)."""
        with self._lock:
            if self._session is None:
                raise SinkError(f"chDB store {self.path} is closed")
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:
                raise _query_error(exc) from exc

    def ensure_table(self, db: str = DATABASE, ttl_days: int | None = None, retention_s: int | None = None) -> None:
        """Create (or bring up to date: new columns, layout) the record table, its retention and
        the rollups (``retention.prepare_tables``), with the embedded store's part and merge
        settings (``footprint``); ``retention_s`` (or ``ttl_days``) None keeps rows forever."""
        from .footprint import table_settings_sql
        from .retention import prepare_tables

        if retention_s is None and ttl_days is not None:
            if int(ttl_days) <= 0:
                raise ConfigError(f"ttl_days must be positive, got {ttl_days}")
            retention_s = int(ttl_days) * 86400
        prepare_tables(self, db, retention_s)
        self.query(table_settings_sql(db, TABLE))

    def insert_arrow(self, table, db: str = DATABASE) -> int:
        """Insert a table made by ``arrow_table()`` (or a reader, ``arrow_reader()``); returns
        its row count (a reader's: what it held, counted as chDB read it)."""
        cols = ", ".join(f"`{c}`" for c in table.schema.names)
        # chDB's Python() table function finds the object by its name in this frame.
        xtcp_arrow_rows = table  # noqa: F841
        self.query(f"INSERT INTO {db}.{TABLE} ({cols}) SELECT * FROM Python(xtcp_arrow_rows)")
        return table.num_rows

    def insert_batch(self, batch, db: str = DATABASE) -> int:
        """Insert every record of a batch, streamed (``arrow_reader``); returns their count."""
        from .arrow import arrow_reader

        if not len(batch):
            return 0
        reader = arrow_reader(batch)
        cols = ", ".join(f"`{c}`" for c in reader.schema.names)
        xtcp_arrow_rows = reader  # noqa: F841 - found by name, as above
        self.query(f"INSERT INTO {db}.{TABLE} ({cols}) SELECT * FROM Python(xtcp_arrow_rows)")
        return len(batch)

    def insert_protobuf_list(self, message: bytes, db: str = DATABASE, table: str = TABLE) -> int:
        """Insert one ``protobuf_list()`` message with the .proto as format schema."""
        sql = f"INSERT INTO {db}.{table} SETTINGS format_schema = '{format_schema()}'"
        return self.insert(sql, "ProtobufList", message)

    def insert(self, sql: str, fmt: str, data: bytes) -> int:
        """Run ``sql`` (an INSERT without FORMAT) over ``data`` in input format ``fmt``;
        returns the rows written, those the table's materialized views wrote included."""
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


def _query_error(exc: Exception) -> ClickHouseError:
    """chDB's exception as a ClickHouseError: retriable unless the batch itself is refused."""
    return from_text("chDB", str(exc) or type(exc).__name__)


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
