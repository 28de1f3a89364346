"""The record table's DDL and the ProtobufList framing ClickHouse reads.

ClickHouse's ProtobufList input reads exactly ONE Envelope per stream and wants it
length-delimited: ``varint(len(envelope)) + envelope``. A bare Envelope fails ("Protobuf
stream is length-delimited"), and two delimited Envelopes in one stream fail after the first
("Unexpected end of ProtobufList message"). So a Kafka message, an HTTP INSERT body or a UDP
datagram is one ``protobuf_list(rows)``; the Kafka engine resets its parser per message since
ClickHouse 26.3.1 (ClickHouse PR #98151).
"""

from __future__ import annotations

from pathlib import Path

from .. import schema
from ..errors import ConfigError

DATA = Path(__file__).resolve().parent.parent / "data"
DDL_PATH = DATA / "xtcp_records.sql"  # generated
ROLLUPS_PATH = DATA / "rollups.sql"  # generated (issue #14: the rollups run after the table)
DATABASE = "xtcp"
TABLE = "xtcp_records"
DEFAULT_DATA_DIR = "./xtcp-data"


def ttl_clause(seconds: int | None) -> str:
    """The record table's TTL for a retention of ``seconds`` (None: no TTL)."""
    if seconds is None:
        return ""
    return f"TTL toDateTime(intDiv(timestamp_ns, 1000000000)) + INTERVAL {int(seconds)} SECOND"


def _check_db(db: str) -> None:
    if not db.isidentifier():
        raise ConfigError(f"database name {db!r} is not a plain identifier")


def table_ddl(db: str = DATABASE, ttl_days: int | None = None, retention_s: int | None = None) -> str:
    """The CREATE TABLE of the record table, from the generated ``xtcp_records.sql``.

    Args:
        db: database name.
        ttl_days: drop rows older than this many days (by ``timestamp_ns``); None keeps all.
        retention_s: the same in seconds (wins over ``ttl_days``).
    """
    _check_db(db)
    if retention_s is None and ttl_days is not None:
        if int(ttl_days) <= 0:
            raise ConfigError(f"ttl_days must be positive, got {ttl_days}")
        retention_s = int(ttl_days) * 86400
    return DDL_PATH.read_text().replace("{db}", db).replace("{ttl}", ttl_clause(retention_s))


def sql_statements(sql: str) -> list[str]:
    """The statements of a .sql file of ours: comment lines dropped, split at ';'."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def rollup_statements(db: str = DATABASE) -> list[str]:
    """The rollup tables and views of ``rollups.sql`` for ``db``, in the order to run them."""
    _check_db(db)
    return sql_statements(ROLLUPS_PATH.read_text().replace("{db}", db))


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
