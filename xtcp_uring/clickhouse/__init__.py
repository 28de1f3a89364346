"""ClickHouse glue: the table DDL, the ProtobufList framing, Arrow columns, the chDB store and
the query path.

Importing this package imports neither chdb nor pyarrow: both are the optional extra
``xtcp_uring[chdb]``, loaded on first use.

Two ways in, one table (``xtcp.xtcp_records``, DDL generated from the .proto):

* Arrow (the embedded store): ``arrow_table(batch)`` (``arrow``), inserted by ``Store``.
* ProtobufList (Kafka engine, HTTP): the C encoder's ``Envelope`` rows, one delimited
  Envelope per message (``protobuf_list``; why, in ``ddl``).

Rooms: ``ddl`` (DDL, framing), ``arrow`` (columns), ``errors`` (ClickHouse's codes: retry or
reject), ``store`` (chDB under a data directory), ``datadir`` (that directory is ours alone),
``readonly`` (what a query may run), ``query`` (running one, the ``query`` command and its
client side), ``query_server`` (the daemon's ``query.sock``).
"""

from __future__ import annotations

from .arrow import arrow_reader, arrow_table
from .ddl import (
    DATABASE,
    DDL_PATH,
    DEFAULT_DATA_DIR,
    TABLE,
    format_schema,
    protobuf_list,
    table_ddl,
    varint,
)
from .query import QUERY_SOCKET, QueryLimits, run_query, run_query_cli
from .query_server import QueryServer, serve_queries
from .store import Store, open_store

__all__ = [
    "DATABASE",
    "DDL_PATH",
    "DEFAULT_DATA_DIR",
    "QUERY_SOCKET",
    "QueryLimits",
    "QueryServer",
    "TABLE",
    "Store",
    "arrow_reader",
    "arrow_table",
    "format_schema",
    "open_store",
    "protobuf_list",
    "run_query",
    "run_query_cli",
    "serve_queries",
    "table_ddl",
    "varint",
]
