"""One statement per chart: fixed SQL text with bound parameters, bounded by the time range
and a LIMIT, and the shape the page draws from its rows.

Every statement reads only the columns it needs over ``[t0, t1)`` (the table's partitions are
days, so a range prunes whole parts) and returns at most ``POINTS`` buckets per series or a
top-N table. ``{where}`` is ``filters.Filters.where()`` (fixed text) and ``{bucket}`` the time
bucket; user values are only in the parameters. The Grafana dashboard (``tools/gen_grafana.py``)
is made from the same statements with Grafana's macros in those two places. Where the store's
rollups answer a chart, ``rollup`` holds its statement; both paths use the same estimators
(``quantilesBFloat16``) and count counters as their growth between polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .filters import PREFIX_KEY, PREFIX_TEXT, REMOTE, STATE_NAMES, TCP_STATES, Filters

TABLE = "xtcp_records"
# The time bucket (epoch seconds) of the time charts; the Grafana dashboard puts its own in.
BUCKET = "intDiv(timestamp_ns, {step_s:Int64} * 1000000000) * {step_s:Int64}"
# The state's name, so that Grafana takes it for a series label as the page does.
STATE = (f"transform(inet_diag_msg_state, [{', '.join(map(str, TCP_STATES.values()))}], "
         f"[{', '.join(repr(n) for n in TCP_STATES)}], toString(inet_diag_msg_state))")
TOP_N = 20
MAX_ROWS = 20000  # of any statement: POINTS buckets x a few series, or a top-N table
HAS_TCP_INFO = "tcp_info_rtt > 0"  # listening and closing sockets carry no RTT sample
# Rows of a poll: close records (issue #13) carry poll_id 0 and are no poll's sockets.
OF_A_POLL = "poll_id > 0"
# The remote address as text from a column ``dst`` of raw bytes (formatted once per shown row).
REMOTE_OF_DST = REMOTE.replace("inet_diag_msg_socket_destination", "dst")
# The 16-byte key of the ASN dictionary (IPv4 as IPv4-mapped IPv6), see asn_dictionary.sql.
ASN_KEY = ("toFixedString(if(length(inet_diag_msg_socket_destination) = 4, "
           "concat(unhex('00000000000000000000ffff'), inet_diag_msg_socket_destination), "
           "inet_diag_msg_socket_destination), 16)")


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    kind: str  # "time" (uPlot lines), "heatmap", "table"
    sql: str
    shape: Callable[[list[list], list[str], Filters], dict]
    unit: str = ""


def _series(rows: list[list], columns: list[str], f: Filters) -> dict:
    """Rows of (t, v1, v2, ...) as columns the page hands to uPlot."""
    return {"t": [r[0] for r in rows], "series": {c: [r[i] for r in rows] for i, c in enumerate(columns) if i}}


def _pivot(rows: list[list], columns: list[str], f: Filters) -> dict:
    """Rows of (t, key, value) as one series per key, aligned on the buckets (null where absent)."""
    times = sorted({r[0] for r in rows})
    at = {t: i for i, t in enumerate(times)}
    series: dict[str, list] = {}
    for t, key, value in rows:
        name = STATE_NAMES.get(key, str(key)) if columns[1:2] == ["state"] else str(key)
        series.setdefault(name, [None] * len(times))[at[t]] = value
    return {"t": times, "series": series}


def _heatmap(rows: list[list], columns: list[str], f: Filters) -> dict:
    """Rows of (t, log2 bucket, count): the page paints one cell each."""
    return {"step": f.step_s, "cells": rows}


def _table(rows: list[list], columns: list[str], f: Filters) -> dict:
    return {"columns": columns, "rows": rows}


def _where(extra: str = "") -> str:
    return "{where}" + (f" AND {extra}" if extra else "")


# Distinct sockets per minute, or per bucket when finer (the page binds {inner_s}), counted with the
# estimator of the rollup xtcp_host_1m (uniqCombined(12): exact while small, ~1.6% error beyond).
MINUTE = "intDiv(timestamp_ns, {inner_s:Int64} * 1000000000)"
LEVELS = "0.5, 0.9, 0.99"  # the levels of the rollups' quantile states (clickhouse/rollups.py)
HAS_MIN_RTT = "tcp_info_min_rtt > 0"
NOT_APP_LIMITED = "tcp_info_delivery_rate > 0 AND tcp_info_delivery_rate_app_limited = 0"
# A counter's growth between a socket's samples (its first sample in the range: 0), as the
# rollups sum them: "<name>_d" for each counter named in the window below.
_DELTA = "if(prev_ts > 0 AND {c} >= prev_{c}, {c} - prev_{c}, 0)"
_COUNTERS = ("tcp_info_bytes_acked", "tcp_info_bytes_retrans", "tcp_info_segs_out", "tcp_info_total_retrans")
DELTAS = (f"SELECT timestamp_ns, {', '.join(_DELTA.format(c=c) + f' AS {c}_d' for c in _COUNTERS)} FROM ("
          f"SELECT timestamp_ns, {', '.join(_COUNTERS)}, lagInFrame(timestamp_ns, 1, 0) OVER w AS prev_ts, "
          + ", ".join(f"lagInFrame({c}, 1, 0) OVER w AS prev_{c}" for c in _COUNTERS)
          + f" FROM {TABLE} WHERE {{where}} WINDOW w AS (PARTITION BY hostname, inet_diag_msg_socket_cookie "
          "ORDER BY timestamp_ns ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))")
# Per socket over the range: what its counters grew by (the sum of its deltas when they only grow).
GROWTH = ("max({c}) - min({c})")
RETRANS_RATIO = "if(sum(segs) = 0, 0, sum(retrans) / sum(segs))"


def _q(expr: str, i: int, cond: str = "") -> str:
    fn = f"quantilesBFloat16If({LEVELS})({expr}, {cond})" if cond else f"quantilesBFloat16({LEVELS})({expr})"
    return f"arrayElement({fn}, {i})"


CHARTS: dict[str, Chart] = {c.name: c for c in [
    Chart("states", "Sockets by state (distinct sockets per minute, averaged over the bucket)", "time", f"""
        SELECT t, state, round(avg(n), 1) AS sockets
        FROM (SELECT {{bucket}} AS t, {{minute}} AS m, {STATE} AS state,
                     uniqCombined(12)(cityHash64(hostname, inet_diag_msg_socket_cookie)) AS n
              FROM {TABLE} WHERE {_where(OF_A_POLL)} GROUP BY t, m, state)
        GROUP BY t, state ORDER BY t, state LIMIT {MAX_ROWS}""", _pivot, "sockets"),
    Chart("rtt", "RTT percentiles", "time", f"""
        SELECT {{bucket}} AS t, {_q('tcp_info_rtt', 1)} / 1000 AS p50, {_q('tcp_info_rtt', 2)} / 1000 AS p90,
               {_q('tcp_info_rtt', 3)} / 1000 AS p99
        FROM {TABLE} WHERE {_where(HAS_TCP_INFO)} GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""", _series, "ms"),
    Chart("min_rtt", "Minimum RTT percentiles", "time", f"""
        SELECT {{bucket}} AS t, {_q('tcp_info_min_rtt', 1)} / 1000 AS p50, {_q('tcp_info_min_rtt', 2)} / 1000 AS p90,
               {_q('tcp_info_min_rtt', 3)} / 1000 AS p99
        FROM {TABLE} WHERE {_where(HAS_MIN_RTT)} GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""", _series, "ms"),
    Chart("rtt_var", "RTT variance percentiles", "time", f"""
        SELECT {{bucket}} AS t, {_q('tcp_info_rtt_var', 1)} / 1000 AS p50,
               {_q('tcp_info_rtt_var', 2)} / 1000 AS p90, {_q('tcp_info_rtt_var', 3)} / 1000 AS p99
        FROM {TABLE} WHERE {_where(HAS_TCP_INFO)} GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""", _series, "ms"),
    Chart("retrans", "Retransmit ratio (per-poll deltas: bytes retransmitted / sent, segments)", "time", f"""
        SELECT {{bucket}} AS t,
               if(sum(tcp_info_bytes_acked_d) + sum(tcp_info_bytes_retrans_d) = 0, 0, sum(tcp_info_bytes_retrans_d)
                  / (sum(tcp_info_bytes_acked_d) + sum(tcp_info_bytes_retrans_d))) AS bytes,
               if(sum(tcp_info_segs_out_d) = 0, 0, sum(tcp_info_total_retrans_d) / sum(tcp_info_segs_out_d)) AS segments
        FROM ({DELTAS}) GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""", _series, "ratio"),
    Chart("delivery", "Delivery rate, app-limited samples excluded", "time", f"""
        SELECT {{bucket}} AS t, {_q('tcp_info_delivery_rate', 1)} * 8 / 1e6 AS p50,
               {_q('tcp_info_delivery_rate', 2)} * 8 / 1e6 AS p90
        FROM {TABLE} WHERE {_where(NOT_APP_LIMITED)}
        GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""", _series, "Mbit/s"),
    Chart("heatmap", "RTT heatmap (log2 buckets of microseconds)", "heatmap", f"""
        SELECT {{bucket}} AS t, toUInt8(floor(log2(tcp_info_rtt))) AS bucket, count() AS n
        FROM {TABLE} WHERE {_where(HAS_TCP_INFO)} GROUP BY t, bucket ORDER BY t, bucket LIMIT {MAX_ROWS}""",
          _heatmap, "us"),
    Chart("talkers", "Top talkers by bytes (acked + received in the range)", "table", f"""
        SELECT {REMOTE_OF_DST} AS remote, sum(conn_bytes) AS bytes, count() AS connections,
               argMax(cookie, conn_bytes) AS top_cookie
        FROM (SELECT inet_diag_msg_socket_cookie AS cookie, any(inet_diag_msg_socket_destination) AS dst,
                     {GROWTH.format(c="tcp_info_bytes_acked")} + {GROWTH.format(c="tcp_info_bytes_received")}
                         AS conn_bytes
              FROM {TABLE} WHERE {_where(HAS_TCP_INFO)} GROUP BY hostname, netns, cookie)
        GROUP BY remote ORDER BY bytes DESC, remote LIMIT {TOP_N}""", _table, "bytes"),
    # Per socket first (quantile states, counter growth), then per prefix.
    Chart("prefixes", "Worst remote prefixes by p90 RTT", "table", f"""
        SELECT {PREFIX_TEXT} AS prefix, {{asn_expr}}
               round(p90 / 1000, 3) AS p90_rtt_ms, round(p50 / 1000, 3) AS p50_rtt_ms,
               round(retrans_ratio, 5) AS retrans_ratio, connections
        FROM (SELECT prefix_key, any(dst) AS dst, arrayElement(quantilesBFloat16Merge({LEVELS})(q), 2) AS p90,
                     arrayElement(quantilesBFloat16Merge({LEVELS})(q), 1) AS p50, {RETRANS_RATIO} AS retrans_ratio,
                     count() AS connections
              FROM (SELECT {PREFIX_KEY} AS prefix_key, any(inet_diag_msg_socket_destination) AS dst,
                           quantilesBFloat16StateIf({LEVELS})(tcp_info_rtt, {HAS_TCP_INFO}) AS q,
                           {GROWTH.format(c="tcp_info_total_retrans")} AS retrans,
                           {GROWTH.format(c="tcp_info_segs_out")} AS segs
                    FROM {TABLE} WHERE {_where("length(inet_diag_msg_socket_destination) IN (4, 16)")}
                    GROUP BY prefix_key, hostname, inet_diag_msg_socket_cookie)
              GROUP BY prefix_key HAVING p90 > 0 ORDER BY p90 DESC, prefix_key LIMIT {TOP_N})
        ORDER BY p90_rtt_ms DESC, prefix LIMIT {TOP_N}""", _table, "ms"),
    # The prefixes served by more than one algorithm first (a set of short keys), then per
    # socket, then one aggregate per algorithm: memory stays that of a few quantile states per socket.
    Chart("cc", "Congestion control on the same destinations (prefixes served by more than one)", "table", f"""
        SELECT cc, uniqExact(prefix_key) AS prefixes, count() AS connections,
               round(arrayElement(quantilesBFloat16Merge({LEVELS})(q), 1) / 1000, 3) AS p50_rtt_ms,
               round(arrayElement(quantilesBFloat16Merge({LEVELS})(q), 2) / 1000, 3) AS p90_rtt_ms,
               round({RETRANS_RATIO}, 5) AS retrans_ratio,
               round(arrayElement(quantilesBFloat16Merge({LEVELS})(dq), 1) * 8 / 1e6, 3) AS delivery_mbps
        FROM (SELECT congestion_algorithm_string AS cc, {PREFIX_KEY} AS prefix_key,
                     quantilesBFloat16StateIf({LEVELS})(tcp_info_rtt, {HAS_TCP_INFO}) AS q,
                     quantilesBFloat16StateIf({LEVELS})(tcp_info_delivery_rate, {NOT_APP_LIMITED}) AS dq,
                     {GROWTH.format(c="tcp_info_total_retrans")} AS retrans,
                     {GROWTH.format(c="tcp_info_segs_out")} AS segs
              FROM {TABLE} WHERE {_where()} AND congestion_algorithm_string != ''
                AND length(inet_diag_msg_socket_destination) IN (4, 16)
                AND {PREFIX_KEY} IN (SELECT {PREFIX_KEY} FROM {TABLE}
                                     WHERE {_where()} AND congestion_algorithm_string != ''
                                     GROUP BY 1 HAVING uniqExact(congestion_algorithm_string) > 1)
              GROUP BY cc, prefix_key, hostname, inet_diag_msg_socket_cookie)
        GROUP BY cc ORDER BY cc LIMIT {TOP_N}""", _table),
]}

# Charts that keep state per socket (counter deltas or growth, quantile states) read at most the
# last RECORDS_MAX_S of a longer range from the records: over a day of a big host they would
# outgrow the query's memory limit. The rollups answer them over any range (rollup.py).
PER_SOCKET = frozenset({"retrans", "talkers", "prefixes", "cc"})
RECORDS_MAX_S = 6 * 3600
RECORDS_NOTE = ("the records answer this chart over the range's last 6 h only (it keeps state per socket); the rollups "
                "answer it over the whole range when the filters allow (no namespace/pod, one /24 or /48 prefix)")

# One connection by its cookie: its samples, and its close record when the table has them.
CONNECTION_SQL = f"""
    SELECT intDiv(timestamp_ns, 1000000) / 1000 AS t, tcp_info_rtt / 1000 AS rtt_ms, tcp_info_rtt_var / 1000 AS rtt_var_ms,
           tcp_info_snd_cwnd AS cwnd, tcp_info_bytes_acked AS bytes_acked, tcp_info_bytes_received AS bytes_received,
           inet_diag_msg_state AS state
    FROM {TABLE} WHERE {{where}} AND inet_diag_msg_socket_cookie = {{cookie:UInt64}}
    ORDER BY timestamp_ns LIMIT 5000"""
CONNECTION_INFO_SQL = f"""
    SELECT hostname, netns, container_name, {REMOTE} AS remote, inet_diag_msg_socket_destination_port AS remote_port,
           inet_diag_msg_socket_source_port AS local_port, congestion_algorithm_string AS cc, {{close_expr}}
           count() AS samples
    FROM {TABLE} WHERE {{where}} AND inet_diag_msg_socket_cookie = {{cookie:UInt64}}
    GROUP BY hostname, netns, container_name, remote, remote_port, local_port, cc LIMIT 10"""
# The filters' choices over the range.
CHOICES_SQL = {
    "location": f"SELECT location AS v, count() AS n FROM {TABLE} WHERE {{where}} GROUP BY v ORDER BY n DESC LIMIT 200",
    "netns": f"SELECT if(container_name != '', container_name, netns) AS v, count() AS n FROM {TABLE} WHERE {{where}} "
             "GROUP BY v ORDER BY n DESC LIMIT 200",
    "state": f"SELECT inet_diag_msg_state AS v, count() AS n FROM {TABLE} WHERE {{where}} GROUP BY v ORDER BY v LIMIT 20",
}


def chart_sql(chart: Chart, f: Filters, asn_dictionary: str | None) -> str:
    """The statement of ``chart`` for these filters: fixed text, with the ASN columns when the
    dictionary ``asn_dictionary`` (``db.name``, ours) is loaded."""
    asn = ""
    if asn_dictionary:
        key = ASN_KEY.replace("inet_diag_msg_socket_destination", "dst")  # one address of the prefix
        asn = (f"dictGetOrDefault({{asn_dict:String}}, 'asn', {key}, toUInt32(0)) AS asn, "
               f"dictGetOrDefault({{asn_dict:String}}, 'name', {key}, '') AS as_name, ")
    return (chart.sql.replace("{asn_expr}", asn).replace("{bucket}", BUCKET).replace("{minute}", MINUTE)
            .replace("{where}", f.where()))
