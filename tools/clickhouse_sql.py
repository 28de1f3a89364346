"""The ClickHouse DDL that tools/gen_schema.py writes: the record table, the rollups, the cluster.

One renderer, two flavours, so chDB, a single server and a cluster run the same columns,
codecs, sort keys and views:

* ``Local``: plain MergeTree engines, ``{db}`` and ``{ttl}`` left as placeholders that
  ``xtcp_uring.clickhouse.ddl`` fills (chDB, one server, the Kafka pipeline's target).
* ``Cluster``: ``Replicated*MergeTree`` local tables (``*_local``) behind ``Distributed`` tables
  of the usual names, ``ON CLUSTER``, for ``examples/clickhouse/cluster/``.

Column storage comes from the .proto's ``[ch:CLASS]`` annotations (``CODECS``); the sort key
keeps a socket's samples of one hour together, so its counters differ little from row to row
and DoubleDelta/Delta+ZSTD squeeze them (measured: ``python -m benchmarks.store``).
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_HOUR = 3_600_000_000_000

# [ch:CLASS] -> codec; every other column is ZSTD(1).
CODECS = {
    "counter": "CODEC(DoubleDelta, ZSTD(1))",  # cumulative: steady steps between polls
    "elapsed": "CODEC(Delta, ZSTD(1))",  # ms since an event: grows by the interval while idle
    "lowcard": "CODEC(ZSTD(1))",  # plus LowCardinality
}
DEFAULT_CODEC = "CODEC(ZSTD(1))"
_CH_TYPES = {"uint32": "UInt32", "uint64": "UInt64", "int64": "Int64", "string": "String", "bytes": "String"}

RECORDS_PARTITION = f"intDiv(timestamp_ns, {NS_PER_HOUR})"  # hours since the epoch
RECORDS_ORDER = f"(hostname, netns, intDiv(timestamp_ns, {NS_PER_HOUR}), inet_diag_msg_socket_cookie, timestamp_ns)"


@dataclass(frozen=True)
class Flavour:
    db: str  # a database name, or the placeholder "{db}"
    on_cluster: str  # "" or " ON CLUSTER name"
    cluster: str | None

    def table(self, name: str) -> str:
        """The name the views write to and read from (the local table on a cluster)."""
        return f"{self.db}.{name}_local" if self.cluster else f"{self.db}.{name}"

    def engine(self, kind: str, name: str) -> str:
        if not self.cluster:
            return kind
        return f"Replicated{kind}('/clickhouse/tables/{{shard}}/{self.db}/{name}_local', '{{replica}}')"


LOCAL = Flavour("{db}", "", None)


def cluster_flavour(name: str, db: str) -> Flavour:
    return Flavour(db, f" ON CLUSTER {name}", name)


def column_type(field, enums) -> str:
    if field.type in enums:
        values = ", ".join(f"'{n}' = {v}" for n, v in enums[field.type].values)
        ctype = f"Enum8({values})"
    else:
        ctype = _CH_TYPES[field.type]
    if field.type == "string" and (field.namespace_label or field.ch_class == "lowcard"):
        ctype = f"LowCardinality({ctype})"
    if field.ch_class and field.ch_class not in CODECS:
        raise SystemExit(f"{field.name}: unknown [ch:{field.ch_class}] (known: {', '.join(CODECS)})")
    return f"{ctype} {CODECS.get(field.ch_class, DEFAULT_CODEC)}"


def record_columns(schema, unit_of, codecs: bool = True) -> list[str]:
    """Each stored column with its unit as a COMMENT; ``codecs=False`` for a Kafka-engine table
    (it stores nothing and takes no CODEC, DEFAULT or ALIAS)."""
    msg = schema.record()
    enums = {e.name: e for e in msg.enums}
    out = []
    for f in msg.fields:
        ctype = column_type(f, enums)
        if not codecs:
            ctype = ctype[: ctype.index(" CODEC(")]
        out.append(f"    `{f.name}` {ctype}{column_comment(f, unit_of)}")
    return out


def column_comment(field, unit_of) -> str:
    """`` COMMENT '<unit> - <the .proto comment>'`` (units: xtcp_uring/schema_units.py)."""
    unit = unit_of(field.name)
    if unit is None:
        raise SystemExit(f"{field.name}: no unit; add a rule to xtcp_uring/schema_units.py")
    text = " - ".join(t for t in (unit, field.comment, "xtcp2 column, not filled" if field.reserved else "") if t)
    return f" COMMENT {sql_text(text)}"


def sql_text(text: str) -> str:
    text = text.replace(";", ",")  # the DDL files are split into statements at ";"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ipv6_of(column: str) -> str:
    # 4 address bytes become IPv4-mapped IPv6 (::ffff:a.b.c.d), 16 stay; none gives ::
    return (f"CAST(toFixedString(if(length({column}) = 4, concat(unhex('00000000000000000000FFFF'), {column}), "
            f"{column}), 16) AS IPv6)")


# (name, type, expression, comment): computed when read, never stored, never inserted (#12).
ALIASES = (
    ("sec", "Int64", "intDiv(timestamp_ns, 1000000000)", "seconds since the Unix epoch (UTC): the poll time"),
    ("nsec", "UInt32", "timestamp_ns % 1000000000", "nanoseconds past sec"),
    ("src", "IPv6", _ipv6_of("inet_diag_msg_socket_source"),
     "IPv6 address (IPv4 as ::ffff:a.b.c.d): inet_diag_msg_socket_source, for SQL and dictGet('xtcp.asn', ...)"),
    ("dst", "IPv6", _ipv6_of("inet_diag_msg_socket_destination"),
     "IPv6 address (IPv4 as ::ffff:a.b.c.d): inet_diag_msg_socket_destination"),
)


def alias_columns() -> list[str]:
    return [f"    `{name}` {typ} ALIAS {expr} COMMENT {sql_text(comment)}" for name, typ, expr, comment in ALIASES]


def records_table(schema, fl: Flavour, ttl: str, unit_of) -> str:
    """The record table: stored columns (codecs, COMMENTs), then the ALIAS columns."""
    name = fl.table("xtcp_records")
    return "\n".join([
        f"CREATE TABLE IF NOT EXISTS {name}{fl.on_cluster}",
        "(",
        ",\n".join(record_columns(schema, unit_of) + alias_columns()),
        ")",
        f"ENGINE = {fl.engine('MergeTree', 'xtcp_records')}",
        f"PARTITION BY {RECORDS_PARTITION}",
        f"ORDER BY {RECORDS_ORDER}",
        ttl,
        "SETTINGS ttl_only_drop_parts = 1",
    ])


KAFKA_SETTINGS = """\
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:9092',
    kafka_topic_list = 'xtcp',
    kafka_group_name = 'clickhouse_xtcp',
    kafka_format = 'ProtobufList',
    kafka_schema = 'xtcp_flat_record.proto:XtcpFlatRecord',
    kafka_num_consumers = 1,
    kafka_max_block_size = 1048576"""


def kafka_table(schema, name: str, on_cluster: str, unit_of) -> str:
    """A Kafka-engine table with the record table's stored columns and COMMENTs, no codecs and
    no aliases (ClickHouse refuses both there); rows reach the record table through a view."""
    return "\n".join([
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster}",
        "(",
        ",\n".join(record_columns(schema, unit_of, codecs=False)),
        ")",
        KAFKA_SETTINGS,
    ])


def rollup_statements(ru, fl: Flavour) -> list[str]:
    """The rollup tables and their views (see xtcp_uring/clickhouse/rollups.py)."""
    db = fl.db
    counters = [rec for _, rec in ru.COUNTERS]
    dims = [name for name, _, _ in ru.DIMENSIONS]
    last = f"{db}.{ru.LAST_TABLE}"
    deltas = f"{db}.{ru.DELTAS_TABLE}"
    out = []
    out.append("\n".join([
        "-- The previous sample's counters of each live socket (the deltas' other half), in memory",
        "-- only: after a restart each socket's first sample is a baseline again. Pruned by",
        "-- rollups.py's PRUNE_LAST (the embedded store runs it every 30 s; a server needs it scheduled as often).",
        f"CREATE TABLE IF NOT EXISTS {last}{fl.on_cluster}",
        "(",
        "    `socket_key` UInt64,",
        "    `seen` UInt8,",
        "    `seen_at` DateTime,",
        ",\n".join(f"    `{c}` UInt64" for c in counters),
        ")",
        "ENGINE = Join(ANY, LEFT, socket_key)",
        "SETTINGS join_any_take_last_row = 1, persistent = 0",
    ]))
    delta_cols = [("sample_time", "DateTime"), *((n, t) for n, t, _ in ru.DIMENSIONS), ("socket_key", "UInt64"),
                  *((rec, typ) for _, rec, typ, _ in ru.QUANTILE_COLUMNS),
                  ("tcp_info_delivery_rate_app_limited", "UInt32"),
                  *((c, "UInt64") for c in counters), *((f"{n}_delta", "UInt64") for n, _ in ru.COUNTERS)]
    seen = dict.fromkeys(n for n, _ in delta_cols)  # rtt_var's filter uses rtt: no duplicate columns
    delta_cols = [(n, dict(delta_cols)[n]) for n in seen]
    out.append("\n".join([
        "-- Each record with its counters' change since the socket's previous sample; stores nothing.",
        f"CREATE TABLE IF NOT EXISTS {deltas}{fl.on_cluster}",
        "(",
        ",\n".join(f"    `{n}` {t}" for n, t in delta_cols),
        ")",
        "ENGINE = Null",
    ]))
    rec_cols = [c for c in seen if c not in ("sample_time", "socket_key", *dims) and not c.endswith("_delta")]
    out.append("\n".join([
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {deltas}_mv{fl.on_cluster} TO {deltas} AS",
        "SELECT",
        "    toDateTime(intDiv(r.timestamp_ns, 1000000000)) AS sample_time,",
        *(f"    r.{n} AS {n}," for n in dims),
        "    r.socket_key AS socket_key,",
        *(f"    r.{c} AS {c}," for c in rec_cols),
        ",\n".join(f"    if(l.seen = 1 AND r.{rec} >= l.{rec}, r.{rec} - l.{rec}, 0) AS {n}_delta"
                   for n, rec in ru.COUNTERS),
        "FROM",
        "(",
        "    SELECT",
        "        timestamp_ns,",
        *(f"        {expr} AS {n}," for n, _, expr in ru.DIMENSIONS),
        *(f"        {c}," for c in rec_cols),
        "        cityHash64(hostname, inet_diag_msg_socket_cookie) AS socket_key",
        f"    FROM {fl.table(ru.RECORDS_TABLE)}",
        ") AS r",
        f"ANY LEFT JOIN {last} AS l ON r.socket_key = l.socket_key",
    ]))
    out.append("\n".join([
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {last}_mv{fl.on_cluster} TO {last} AS",
        f"SELECT socket_key, 1 AS seen, sample_time AS seen_at, {', '.join(counters)}",
        f"FROM {deltas}",
    ]))
    for rollup in ru.ROLLUPS:
        out.extend(_rollup_tables(ru, fl, rollup, deltas))
    return out


def _rollup_tables(ru, fl: Flavour, rollup, deltas: str) -> list[str]:
    """One rollup's minute table (fed from the deltas) and hour table (fed from the minute one)."""
    out = []
    dims = list(rollup.dimensions)
    quantiles = [q for q in ru.QUANTILE_COLUMNS if q[0] in rollup.quantiles]
    if rollup.minute is None:  # the hour table straight from the deltas
        steps = ((rollup.hour, "toStartOfHour(sample_time)", deltas),)
    else:
        steps = ((rollup.minute, "toStartOfMinute(sample_time)", deltas),
                 (rollup.hour, "toStartOfHour(time)", fl.table(rollup.minute)))
    for table, bucket, source in steps:
        days = ru.RETENTION_DAYS[table]
        partition = "toYYYYMMDD(time)" if table == rollup.minute else "toYYYYMM(time)"
        out.append("\n".join([
            f"CREATE TABLE IF NOT EXISTS {fl.table(table)}{fl.on_cluster}",
            "(",
            ",\n".join(f"    `{n}` {t}" for n, t in rollup.columns),
            ")",
            f"ENGINE = {fl.engine('AggregatingMergeTree', table)}",
            f"PARTITION BY {partition}",
            f"ORDER BY (time, {', '.join(dims)})",
            f"TTL time + INTERVAL {days} DAY",
            "SETTINGS ttl_only_drop_parts = 1",
        ]))
        if source == deltas:
            aggregates = ["count() AS samples", *(["uniqState(socket_key) AS sockets"] if rollup.sockets else []),
                          *(f"quantilesBFloat16StateIf({ru.QUANTILE_LEVELS})({rec}, {cond}) AS {n}"
                            for n, rec, _, cond in quantiles),
                          *(f"sum({n}_delta) AS {n}" for n, _ in ru.COUNTERS),
                          *(f"{ru.EXTRA_COLUMNS[n][1]} AS {n}" for n in rollup.extras)]
        else:
            aggregates = ["sum(samples) AS samples", *(["uniqMergeState(sockets) AS sockets"] if rollup.sockets else []),
                          *(f"quantilesBFloat16MergeState({ru.QUANTILE_LEVELS})({n}) AS {n}" for n, _, _, _ in quantiles),
                          *(f"sum({n}) AS {n}" for n, _ in ru.COUNTERS),
                          *(f"{ru.EXTRA_COLUMNS[n][2]} AS {n}" for n in rollup.extras)]
        out.append("\n".join([
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {fl.table(table)}_mv{fl.on_cluster} TO {fl.table(table)} AS",
            "SELECT",
            f"    {bucket} AS time,",
            *(f"    {n}," for n in dims),
            ",\n".join(f"    {a}" for a in aggregates),
            f"FROM {source}",
            f"GROUP BY time, {', '.join(dims)}",
        ]))
    return out
