"""Keep the store bounded: the record table's layout and TTL on open, the byte bound after inserts.

On open (``prepare_tables``): the record table is created from the generated DDL, or, if it
exists with another sort or partition key (a store from before #14, sorted time first), moved
aside as ``xtcp_records_before_<UTC time>`` (ClickHouse cannot change a sort key in place; the
move is logged, its rows stay queryable and age out by the same retention), and created anew.
Columns added to the .proto since the table was made are added (``columns``). Its TTL is then
made the retention asked for (``ALTER … MODIFY TTL``, which also expires the rows already
there) unless it is that already; the rollups follow (``rollups.sql``).

After inserts (``enforce_max_bytes``): while the database takes more than ``max_bytes`` on disk,
the oldest partition of the record tables is dropped (moved-aside tables first, then
``xtcp_records`` by hour; the hour being written is kept). Rollups are never dropped here;
their own TTLs bound them.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from ..errors import ConfigError
from . import rollups
from .columns import missing_column_statements
from .ddl import TABLE, rollup_statements, table_ddl, ttl_clause

log = logging.getLogger("xtcp_uring.clickhouse")

DEFAULT_RETENTION = "7d"
MOVED_PREFIX = TABLE + "_before_"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_TTL_SECONDS = re.compile(r"TTL toDateTime\(intDiv\(timestamp_ns, 1000000000\)\) \+ toIntervalSecond\((\d+)\)")


def parse_retention(text: str | None, what: str = "--retention") -> int | None:
    """Seconds of a duration such as ``7d``, ``12h``, ``90m``, ``2w``; None for ``off`` (keep all).

    Raises:
        ConfigError: anything else, with what would parse.
    """
    if text is None:
        return None
    raw = str(text).strip()
    if raw.lower() in ("off", "none", "forever"):
        return None
    m = _DURATION.match(raw)
    seconds = int(float(m.group(1)) * _UNITS[m.group(2).lower()]) if m else 0
    if seconds <= 0:
        raise ConfigError(f"{what} {text!r}: want a positive duration such as 7d, 12h or 90m (s, m, h, d, w), "
                          "or off to keep everything")
    return seconds


def describe_retention(seconds: int | None) -> str:
    if seconds is None:
        return "kept forever (retention off)"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _rows(store, sql: str) -> list[list[str]]:
    text = store.query(sql, "TabSeparatedRaw").bytes().decode()
    return [line.split("\t") for line in text.splitlines()]


def _table_keys(store, db: str, table: str) -> tuple[str, str, str] | None:
    rows = _rows(store, f"SELECT sorting_key, partition_key, engine_full FROM system.tables "
                        f"WHERE database = '{db}' AND name = '{table}'")
    return tuple(rows[0]) if rows else None


def _expected_keys(store, db: str) -> tuple[str, str]:
    """The sort and partition keys as ClickHouse shows them, from a scratch table of the DDL."""
    probe = f"{TABLE}_layout_probe"
    store.query(f"DROP TABLE IF EXISTS {db}.{probe}")
    store.query(table_ddl(db).replace(f"{db}.{TABLE}", f"{db}.{probe}", 1))
    try:
        sorting, partition, _ = _table_keys(store, db, probe)
    finally:
        store.query(f"DROP TABLE IF EXISTS {db}.{probe}")
    return sorting, partition


def prepare_tables(store, db: str, retention_s: int | None) -> None:
    """Create or update the record table and the rollups of ``db`` (see the module docstring)."""
    store.query(f"CREATE DATABASE IF NOT EXISTS {db}")
    current = _table_keys(store, db, TABLE)
    if current is not None and current[:2] != _expected_keys(store, db):
        moved = MOVED_PREFIX + time.strftime("%Y%m%d%H%M%S", time.gmtime())
        # The rollups' first view follows the table it reads from through a rename: drop it, it
        # is made again below on the new table.
        store.query(f"DROP TABLE IF EXISTS {db}.{rollups.DELTAS_TABLE}_mv")
        store.query(f"RENAME TABLE {db}.{TABLE} TO {db}.{moved}")
        log.warning("store %s: %s.%s was sorted by (%s); the new layout sorts a socket's samples together, and "
                    "ClickHouse cannot re-sort a table in place: moved it to %s.%s (still queryable, aged out by "
                    "the retention) and created %s.%s anew", store.path, db, TABLE, current[0], db, moved, db, TABLE)
    store.query(table_ddl(db, retention_s=retention_s))
    add_missing_columns(store, db)  # before the rollups: their views read the newer columns
    for name in [TABLE, *moved_tables(store, db)]:
        apply_retention(store, db, name, retention_s)
    for stmt in rollup_statements(db):
        store.query(stmt)


def add_missing_columns(store, db: str) -> None:
    """A record table made by an older version with today's layout gets the columns added since
    (``columns``: new fields, the ALIAS columns)."""
    existing = {r[0] for r in _rows(store, f"SELECT name FROM system.columns WHERE database = '{db}' "
                                           f"AND table = '{TABLE}'")}
    for statement in missing_column_statements(db, TABLE, existing):
        store.query(statement)


def moved_tables(store, db: str) -> list[str]:
    return [r[0] for r in _rows(store, f"SELECT name FROM system.tables WHERE database = '{db}' AND "
                                       f"startsWith(name, '{MOVED_PREFIX}') ORDER BY name")]


def apply_retention(store, db: str, table: str, retention_s: int | None) -> bool:
    """Make ``table``'s TTL the retention (MODIFY or REMOVE TTL) unless it is already; True if
    it changed. Rows past a new TTL are expired by the mutation this starts."""
    keys = _table_keys(store, db, table)
    if keys is None:
        return False
    m = _TTL_SECONDS.search(keys[2])
    now = int(m.group(1)) if m else (None if " TTL " not in keys[2] else -1)
    if now == retention_s:
        return False
    if retention_s is None:
        store.query(f"ALTER TABLE {db}.{table} REMOVE TTL")
    else:
        store.query(f"ALTER TABLE {db}.{table} MODIFY {ttl_clause(retention_s)}")
    log.info("store %s: %s.%s retention %s (was %s)", store.path, db, table, describe_retention(retention_s),
             "none" if now is None else describe_retention(now) if now > 0 else "another TTL")
    return True


@dataclass(frozen=True)
class DroppedPartition:
    table: str
    partition_id: str
    bytes: int


def store_bytes(store, db: str) -> int:
    rows = _rows(store, f"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{db}' AND active")
    return int(rows[0][0]) if rows else 0


def enforce_max_bytes(store, db: str, max_bytes: int) -> tuple[list[DroppedPartition], int]:
    """Drop the oldest record partitions until ``db`` fits in ``max_bytes``; returns what was
    dropped and the bytes on disk left (above ``max_bytes`` when only the hour being written
    and the rollups are left)."""
    total = store_bytes(store, db)
    if total <= max_bytes:
        return [], total
    parts = _rows(store, f"SELECT table, partition_id, sum(bytes_on_disk) FROM system.parts "
                         f"WHERE database = '{db}' AND active AND (table = '{TABLE}' OR startsWith(table, "
                         f"'{MOVED_PREFIX}')) GROUP BY table, partition_id")
    # Oldest first: moved-aside tables (by the time in their name), then the live table's hours.
    def age(row):
        table, pid, _ = row
        live = table == TABLE
        return (live, table, int(pid) if live and pid.isdigit() else 0, pid)

    candidates = sorted(parts, key=age)
    live = [r for r in candidates if r[0] == TABLE]
    if live:
        candidates.remove(live[-1])  # the hour being written
    dropped = []
    for table, pid, nbytes in candidates:
        if total <= max_bytes:
            break
        store.query(f"ALTER TABLE {db}.{table} DROP PARTITION ID '{pid}'")
        total -= int(nbytes)
        dropped.append(DroppedPartition(table, pid, int(nbytes)))
        log.info("store %s: over --max-store-bytes, dropped %s.%s partition %s (%.1f MB)", store.path, db, table,
                 pid, int(nbytes) / 1e6)
    for table in moved_tables(store, db):
        if not _rows(store, f"SELECT 1 FROM system.parts WHERE database = '{db}' AND table = '{table}' AND active "
                            "LIMIT 1"):
            store.query(f"DROP TABLE {db}.{table} SYNC")
            log.info("store %s: %s.%s is empty, dropped it", store.path, db, table)
    return dropped, total
