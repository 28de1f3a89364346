"""The rollup tables: their names, columns, retention and the views that fill them, in one place.

Standard library only: ``tools/gen_schema.py`` loads this file by path to write
``examples/clickhouse/rollups.sql`` (and the cluster variant); the store runs that file.

Every insert into ``xtcp_records`` (the daemon's, or the Kafka engine's view) flows through
materialized views, in the database, for chDB and servers alike::

    xtcp_records --xtcp_socket_deltas_mv--> xtcp_socket_deltas (Null: nothing stored)
        xtcp_socket_deltas --xtcp_1m_mv--> xtcp_1m     (AggregatingMergeTree, per minute)
        xtcp_socket_deltas --xtcp_socket_last_mv--> xtcp_socket_last (Join engine, in memory)
        xtcp_socket_deltas --xtcp_host_1m_mv--> xtcp_host_1m     (narrow, per minute: the time charts)
        xtcp_socket_deltas --xtcp_prefix_1h_mv--> xtcp_prefix_1h (narrow, per hour: prefix tables)
    xtcp_1m --xtcp_1h_mv--> xtcp_1h                    (AggregatingMergeTree, per hour)
    xtcp_host_1m --xtcp_host_1h_mv--> xtcp_host_1h

**Why three.** ``xtcp_1m``/``xtcp_1h`` are keyed by every dimension (host, location, namespace,
remote /24|/48, state, congestion control): they answer any question over those, but on a host
with many namespaces and prefixes a row holds about one socket, so they are nearly as big as the
records. The narrow ones answer xTCPView's charts over long ranges: ``xtcp_host_*`` per (host,
location, state) for the charts over time (plus a log2 RTT histogram for the heatmap), a few
rows a minute; ``xtcp_prefix_1h`` per (host, location, remote prefix, congestion control) for
the prefix tables over long ranges, without namespaces or states. It has no minute table: with
thousands of prefixes one would be as big as the records, and over short ranges the records
answer those tables faster than merging its quantile states (``benchmarks/view_load.py``). Each adds its view to every insert
(``python -m benchmarks.store --rollups`` measures what all of them cost together).

**Counters.** tcp_info's byte, segment and retransmit counters are cumulative since the
socket opened, so summing them per minute means nothing (a socket polled 6 times a minute
would count its lifetime bytes 6 times). The rollups sum *per-poll deltas* instead: the
first view joins each row to that socket's previous sample, kept in ``xtcp_socket_last``
(key: hostname and socket cookie, one row per socket, in memory; entries unseen for an hour
are pruned by ``PRUNE_LAST``, which the embedded store runs every 30 s, since the Join keeps
every superseded row until then), and emits ``value - previous``. A socket's first sample, and
a counter that went
backwards (cookie reused after a reboot), is a baseline: delta 0. So bytes a socket moved
before its first poll are never counted, and a minute's sum is what moved between polls of
that minute (a delta falls in the minute of the poll that saw it). ``max - min`` per cookie
cannot be written as a view (a view sees one insert: one poll), which is why the previous
sample is kept. The previous sample is read before it is replaced: both views hang off
``xtcp_socket_deltas``, which is only written once the join has run. One writer per host at
a time is assumed (one daemon; one Kafka consumer per partition, keyed by hostname): a host
whose records move to another shard restarts from a baseline there, and so does every socket
after a restart of the database (the table is not written to disk: it is small, rebuilt in one
poll, and a store on a disk that filled up or went read-only needs nothing repaired).
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_TABLE = "xtcp_1m"
HOUR_TABLE = "xtcp_1h"
HOST_MINUTE_TABLE = "xtcp_host_1m"
HOST_HOUR_TABLE = "xtcp_host_1h"
PREFIX_HOUR_TABLE = "xtcp_prefix_1h"
DELTAS_TABLE = "xtcp_socket_deltas"
LAST_TABLE = "xtcp_socket_last"
RECORDS_TABLE = "xtcp_records"

MINUTE_RETENTION_DAYS = 35
HOUR_RETENTION_DAYS = 400
LAST_SAMPLE_TTL_S = 3600  # xtcp_socket_last entries of sockets unseen this long are pruned
# {db}: the database. Run every LAST_SAMPLE_TTL_S or so (closed sockets' entries stay till then).
PRUNE_LAST = (f"ALTER TABLE {{db}}.{LAST_TABLE} DELETE WHERE seen_at < now() - INTERVAL {LAST_SAMPLE_TTL_S} SECOND")

# Every quantile column's state holds these levels; ask with the same ones:
#   quantilesBFloat16Merge(0.5, 0.9, 0.99)(rtt_us)
QUANTILES = (0.5, 0.9, 0.99)
QUANTILE_LEVELS = ", ".join(str(q) for q in QUANTILES)

# (column, type, expression over xtcp_records): what a rollup row is keyed by, besides `time`.
DIMENSIONS = (
    ("hostname", "LowCardinality(String)", "hostname"),
    ("location", "LowCardinality(String)", "location"),
    ("netns", "LowCardinality(String)", "netns"),
    # The remote /24 (IPv4) or /48 (IPv6), as text: '10.1.2.0/24', '2001:db8:1::/48'.
    ("remote_prefix", "LowCardinality(String)",
     "multiIf(length(inet_diag_msg_socket_destination) = 4, concat(IPv4NumToString(bitAnd("
     "reinterpretAsUInt32(reverse(inet_diag_msg_socket_destination)), 4294967040)), '/24'), "
     "length(inet_diag_msg_socket_destination) = 16, concat(IPv6NumToString(toFixedString(concat("
     "substring(inet_diag_msg_socket_destination, 1, 6), repeat(char(0), 10)), 16)), '/48'), '')"),
    ("state", "UInt8", "toUInt8(inet_diag_msg_state)"),  # TCP_ESTABLISHED = 1, ...
    ("congestion_algorithm", "LowCardinality(String)", "congestion_algorithm_string"),
)

# Cumulative tcp_info counters summed as per-poll deltas: (rollup column, record column).
COUNTERS = (
    ("bytes_acked", "tcp_info_bytes_acked"),
    ("bytes_received", "tcp_info_bytes_received"),
    ("bytes_retrans", "tcp_info_bytes_retrans"),
    ("segs_out", "tcp_info_segs_out"),
    ("segs_in", "tcp_info_segs_in"),
    ("retrans_segs", "tcp_info_total_retrans"),
)

# Quantile columns: (rollup column, record column, its type, which samples count).
QUANTILE_COLUMNS = (
    ("rtt_us", "tcp_info_rtt", "UInt32", "tcp_info_rtt > 0"),
    ("min_rtt_us", "tcp_info_min_rtt", "UInt32", "tcp_info_min_rtt > 0"),
    ("rtt_var_us", "tcp_info_rtt_var", "UInt32", "tcp_info_rtt > 0"),
    # Only samples the application did not limit measure the path.
    ("delivery_rate", "tcp_info_delivery_rate", "UInt64",
     "tcp_info_delivery_rate > 0 AND tcp_info_delivery_rate_app_limited = 0"),
)

# Columns only some rollups have: (type, state at the minute table, state at the hour table, read).
EXTRA_COLUMNS = {
    # The heatmap's histogram: samples per log2 bucket of tcp_info_rtt (microseconds), as
    # (buckets, counts) arrays. greatest(): the bucket is computed for every row, and log2(0)
    # is no integer.
    "rtt_log2": ("AggregateFunction(sumMap, Array(UInt8), Array(UInt64))",
                 "sumMapStateIf([toUInt8(floor(log2(greatest(tcp_info_rtt, 1))))], [toUInt64(1)], tcp_info_rtt > 0)",
                 "sumMapMergeState(rtt_log2)", "sumMapMerge(rtt_log2)"),
    # Distinct sockets as a HyperLogLog of 4,096 cells (exact while small, ~1.6% error beyond,
    # at most ~3 KB a state): `uniq` keeps up to 65,536 hashes (256 KB) per row, and a minute
    # row of a big host holds most of its sockets.
    "sockets_hll": ("AggregateFunction(uniqCombined(12), UInt64)", "uniqCombinedState(12)(socket_key)",
                    "uniqCombinedMergeState(12)(sockets_hll)", "uniqCombinedMerge(12)(sockets_hll)"),
}
HEATMAP = "rtt_log2"


@dataclass(frozen=True)
class Rollup:
    """A minute table and the hour table made from it (no minute table: ``minute`` None, the hour
    table is fed from the deltas itself), keyed by ``dimensions`` (names of
    ``DIMENSIONS``), holding the quantile columns ``quantiles`` (names of ``QUANTILE_COLUMNS``),
    the distinct-socket count ``sockets`` (uniq) unless False, and ``extras`` (``EXTRA_COLUMNS``)."""

    minute: str | None
    hour: str
    dimensions: tuple[str, ...]
    quantiles: tuple[str, ...]
    sockets: bool = True
    extras: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """The tables' columns, in order: `time` (the minute or hour), the dimensions, then what
        is aggregated. How to read each one back is in ``READ``."""
        types = {name: typ for name, typ, _ in DIMENSIONS}
        return (
            ("time", "DateTime"),
            *((name, types[name]) for name in self.dimensions),
            ("samples", "SimpleAggregateFunction(sum, UInt64)"),  # rows (socket polls) in the bucket
            *((("sockets", "AggregateFunction(uniq, UInt64)"),) if self.sockets else ()),  # distinct sockets
            *((name, f"AggregateFunction(quantilesBFloat16({QUANTILE_LEVELS}), {typ})")
              for name, _, typ, _ in QUANTILE_COLUMNS if name in self.quantiles),
            *((name, "SimpleAggregateFunction(sum, UInt64)") for name, _ in COUNTERS),
            *((name, EXTRA_COLUMNS[name][0]) for name in self.extras),
        )


_ALL_QUANTILES = tuple(name for name, _, _, _ in QUANTILE_COLUMNS)
# Issue #14's rollups: every dimension.
WIDE = Rollup(MINUTE_TABLE, HOUR_TABLE, tuple(name for name, _, _ in DIMENSIONS), _ALL_QUANTILES)
# xTCPView's charts over time: a few rows a minute per host.
HOST = Rollup(HOST_MINUTE_TABLE, HOST_HOUR_TABLE, ("hostname", "location", "state"), _ALL_QUANTILES, sockets=False,
              extras=("sockets_hll", "rtt_log2"))
# xTCPView's prefix tables (worst prefixes, congestion controls on shared prefixes).
PREFIX = Rollup(None, PREFIX_HOUR_TABLE, ("hostname", "location", "remote_prefix", "congestion_algorithm"),
                ("rtt_us", "delivery_rate"))
ROLLUPS = (WIDE, HOST, PREFIX)

COLUMNS = WIDE.columns  # the wide tables' columns

# How a query reads each aggregated column back (a GROUP BY over any dimensions and time).
READ = {
    "samples": "sum(samples)",
    "sockets": "uniqMerge(sockets)",
    **{name: f"quantilesBFloat16Merge({QUANTILE_LEVELS})({name})" for name, _, _, _ in QUANTILE_COLUMNS},
    **{name: f"sum({name})" for name, _ in COUNTERS},
    **{name: read for name, (_, _, _, read) in EXTRA_COLUMNS.items()},  # rtt_log2: a tuple (buckets, counts)
}

TABLES = tuple(t for r in ROLLUPS for t in (r.minute, r.hour) if t)
RETENTION_DAYS = {**{r.minute: MINUTE_RETENTION_DAYS for r in ROLLUPS if r.minute},
                  **{r.hour: HOUR_RETENTION_DAYS for r in ROLLUPS}}
