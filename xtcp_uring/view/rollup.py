"""The per-minute rollup, where it answers a chart: all that the page assumes of it is here.

The store work (issue #14, item 3) adds materialized views into ``AggregatingMergeTree`` tables
per minute. The page reads ``ROLLUP_TABLE`` instead of the records when that table exists with
``ROLLUP_COLUMNS``, the buckets are whole minutes and no remote-prefix filter is set; otherwise
(and for the other charts) it reads the raw table, bounded by time and LIMIT. ``EXAMPLE_DDL`` is
the shape assumed (the tests build it); align the names here with the real DDL at merge.
"""

from __future__ import annotations

from .charts import MAX_ROWS, Chart
from .filters import Filters

ROLLUP_TABLE = "xtcp_records_1m"
ROLLUP_COLUMNS = frozenset({"minute", "hostname", "location", "netns", "container_name", "state", "samples", "polls",
                            "rtt", "min_rtt"})
QUANTILES = "0.5, 0.9, 0.99"
# What the minute rows hold, from the records (the view's SELECT; the benchmark back-fills with it).
EXAMPLE_SELECT = f"""
SELECT toStartOfMinute(toDateTime(intDiv(timestamp_ns, 1000000000))) AS minute, hostname, location, netns,
       container_name, toUInt8(inet_diag_msg_state) AS state, countState() AS samples, uniqState(poll_id) AS polls,
       quantilesTDigestIfState({QUANTILES})(tcp_info_rtt, tcp_info_rtt > 0) AS rtt,
       quantilesTDigestIfState({QUANTILES})(tcp_info_min_rtt, tcp_info_rtt > 0) AS min_rtt
FROM {{db}}.xtcp_records GROUP BY minute, hostname, location, netns, container_name, state"""
EXAMPLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {{db}}.{ROLLUP_TABLE} (
    minute DateTime, hostname LowCardinality(String), location LowCardinality(String),
    netns LowCardinality(String), container_name LowCardinality(String), state UInt8,
    samples AggregateFunction(count), polls AggregateFunction(uniq, UInt64),
    rtt AggregateFunction(quantilesTDigestIf({QUANTILES}), UInt32, UInt8),
    min_rtt AggregateFunction(quantilesTDigestIf({QUANTILES}), UInt32, UInt8)
) ENGINE = AggregatingMergeTree ORDER BY (hostname, location, netns, container_name, state, minute);
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{ROLLUP_TABLE}_mv TO {{db}}.{ROLLUP_TABLE} AS {EXAMPLE_SELECT}
"""

_BUCKET = "toUnixTimestamp(toStartOfInterval(minute, toIntervalSecond({step_s:Int64})))"
_WHERE = ("minute >= toDateTime(intDiv({t0:Int64}, 1000000000)) AND minute < toDateTime(intDiv({t1:Int64}, 1000000000))")
_STATE = ("transform(state, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], ['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', "
          "'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', "
          "'NEW_SYN_RECV'], toString(state))")


def _quantiles(column: str) -> str:
    return ", ".join(f"arrayElement(quantilesTDigestIfMerge({QUANTILES})({column}), {i}) / 1000 AS {name}"
                     for i, name in ((1, "p50"), (2, "p90"), (3, "p99")))


SQL = {
    "states": f"SELECT {_BUCKET} AS t, {_STATE} AS state, round(countMerge(samples) / uniqMerge(polls), 1) AS sockets "
              f"FROM {ROLLUP_TABLE} WHERE {{where}} GROUP BY t, state ORDER BY t, state LIMIT {MAX_ROWS}",
    "rtt": f"SELECT {_BUCKET} AS t, {_quantiles('rtt')} FROM {ROLLUP_TABLE} WHERE {{where}} "
           f"GROUP BY t HAVING countMerge(samples) > 0 ORDER BY t LIMIT {MAX_ROWS}",
    "min_rtt": f"SELECT {_BUCKET} AS t, {_quantiles('min_rtt')} FROM {ROLLUP_TABLE} WHERE {{where}} "
               f"GROUP BY t HAVING countMerge(samples) > 0 ORDER BY t LIMIT {MAX_ROWS}",
}


def where(f: Filters) -> str:
    parts = [_WHERE]
    if f.location is not None:
        parts.append("location = {location:String}")
    if f.netns is not None:
        parts.append("(netns = {netns:String} OR container_name = {netns:String})")
    if f.state is not None:
        parts.append(f"{ROLLUP_TABLE}.state = {{state:UInt8}}")  # not the alias of the state name
    return " AND ".join(parts)


def rollup_sql(chart: Chart, f: Filters, columns: frozenset[str]) -> str | None:
    """The chart's statement over the rollup, or None when the raw table must answer."""
    if chart.name not in SQL or f.prefix is not None or f.step_s % 60 or not ROLLUP_COLUMNS <= columns:
        return None
    return SQL[chart.name].replace("{where}", where(f))
