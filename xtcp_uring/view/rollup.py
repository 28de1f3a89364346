"""The charts the store's rollups answer (``xtcp_1m``/``xtcp_1h``, made by materialized views at
insert: ``clickhouse/rollups.py``), and when they answer instead of the records.

A chart reads the rollups when both tables exist with the columns used here, it has a statement
below, and the filters are ones the rollups are keyed by: location, state, and a remote prefix
that is exactly one /24 (IPv4) or /48 (IPv6) (the rollups' ``remote_prefix`` text, which
``ipaddress`` writes the same way). A namespace/pod filter goes to the records: the rollups
have ``netns`` but no pod name, and the filter matches either.

* Time charts: buckets of whole hours read ``xtcp_1h``, buckets of whole minutes ``xtcp_1m``
  (sockets by state, retransmits; the quantile charts only in hours: ``HOURS_ONLY``); finer
  buckets (ranges under ~4 h) read the records.
* Tables (no buckets): the whole hours inside the range from ``xtcp_1h``, the minutes at its
  edges from ``xtcp_1m`` (one UNION ALL; the two tables have the same columns).

Both tables hold rows whose minute (hour) starts in the range; the records' answer also has
the samples of a partial minute at the range's start. Quantiles are ``quantilesBFloat16``
states, the same estimator the raw statements in ``charts.py`` use; counters are per-poll
deltas on both paths.
"""

from __future__ import annotations

from ..clickhouse.rollups import HOUR_TABLE, MINUTE_TABLE, QUANTILE_LEVELS, READ
from .charts import MAX_ROWS, TOP_N, Chart
from .filters import TCP_STATES, Filters

TABLES = (MINUTE_TABLE, HOUR_TABLE)
COLUMNS = frozenset({"time", "location", "netns", "remote_prefix", "state", "congestion_algorithm", "samples",
                     "sockets", "rtt_us", "min_rtt_us", "rtt_var_us", "delivery_rate", "bytes_acked",
                     "bytes_received", "bytes_retrans", "segs_out", "retrans_segs"})
STATE = (f"transform(state, [{', '.join(map(str, TCP_STATES.values()))}], "
         f"[{', '.join(repr(n) for n in TCP_STATES)}], toString(state))")
_T = "toUnixTimestamp(toStartOfInterval(time, toIntervalSecond({step_s:Int64})))"
_MINUTE = "toUnixTimestamp(toStartOfInterval(time, toIntervalSecond({inner_s:Int64})))"
_IN = "time >= toDateTime({%s:UInt32}) AND time < toDateTime({%s:UInt32})"
# {src}: the table, or the hour+minute union of the tables; {where}: the filters of where().
_SRC_ONE = "{table} WHERE " + _IN % ("rt0", "rt1") + "{and_where}"
_SRC_UNION = (f"(SELECT * FROM {HOUR_TABLE} WHERE {_IN % ('rh0', 'rh1')}{{and_where}} UNION ALL "
              f"SELECT * FROM {MINUTE_TABLE} WHERE {_IN % ('rt0', 'rt1')} AND NOT ({_IN % ('rh0', 'rh1')})"
              "{and_where})")


def _q(column: str, i: int, scale: str) -> str:
    return f"arrayElement({READ[column]}, {i}){scale}"


_MS = " / 1000"
_MBPS = " * 8 / 1e6"
_RETRANS = ("if(sum(segs_out) = 0, 0, sum(retrans_segs) / sum(segs_out))")
_RETRANS_BYTES = ("if(sum(bytes_acked) + sum(bytes_retrans) = 0, 0, "
                  "sum(bytes_retrans) / (sum(bytes_acked) + sum(bytes_retrans)))")

# The ASN of a prefix: its first address, as the dictionary's 16-byte key (IPv4 mapped); also
# the order of prefixes of equal p90 (the records' path orders them by address bytes too).
ASN_KEY = "toFixedString(IPv6StringToNum(splitByChar('/', prefix)[1]), 16)"

SQL = {
    # Distinct sockets per minute (per bucket when finer), averaged over the bucket: the same on
    # the records (charts.py); a socket polled every 10 s is counted once a minute.
    "states": f"""SELECT t, name AS state, round(avg(n), 1) AS sockets FROM (
        SELECT {_T} AS t, {_MINUTE} AS m, {STATE} AS name, uniqMerge(sockets) AS n
        FROM {{src}} GROUP BY t, m, name) GROUP BY t, name ORDER BY t, name LIMIT {MAX_ROWS}""",
    "rtt": f"""SELECT {_T} AS t, {_q('rtt_us', 1, _MS)} AS p50, {_q('rtt_us', 2, _MS)} AS p90,
        {_q('rtt_us', 3, _MS)} AS p99 FROM {{src}} GROUP BY t HAVING p50 > 0 ORDER BY t LIMIT {MAX_ROWS}""",
    "min_rtt": f"""SELECT {_T} AS t, {_q('min_rtt_us', 1, _MS)} AS p50, {_q('min_rtt_us', 2, _MS)} AS p90,
        {_q('min_rtt_us', 3, _MS)} AS p99 FROM {{src}} GROUP BY t HAVING p50 > 0 ORDER BY t LIMIT {MAX_ROWS}""",
    "rtt_var": f"""SELECT {_T} AS t, {_q('rtt_var_us', 1, _MS)} AS p50, {_q('rtt_var_us', 2, _MS)} AS p90,
        {_q('rtt_var_us', 3, _MS)} AS p99 FROM {{src}} GROUP BY t HAVING p50 > 0 ORDER BY t LIMIT {MAX_ROWS}""",
    "retrans": f"""SELECT {_T} AS t, {_RETRANS_BYTES} AS bytes, {_RETRANS} AS segments
        FROM {{src}} GROUP BY t ORDER BY t LIMIT {MAX_ROWS}""",
    "delivery": f"""SELECT {_T} AS t, {_q('delivery_rate', 1, _MBPS)} AS p50, {_q('delivery_rate', 2, _MBPS)} AS p90
        FROM {{src}} GROUP BY t HAVING p50 > 0 ORDER BY t LIMIT {MAX_ROWS}""",
    "prefixes": f"""SELECT remote_prefix AS prefix, {{asn_expr}}
               round(p90 / 1000, 3) AS p90_rtt_ms, round(p50 / 1000, 3) AS p50_rtt_ms,
               round(retrans_ratio, 5) AS retrans_ratio, connections
        FROM (SELECT remote_prefix, {_q('rtt_us', 2, '')} AS p90, {_q('rtt_us', 1, '')} AS p50,
                     {_RETRANS} AS retrans_ratio, {READ['sockets']} AS connections
              FROM {{src}} WHERE remote_prefix != '' GROUP BY remote_prefix HAVING p90 > 0
              ORDER BY p90 DESC, {ASN_KEY.replace("prefix", "remote_prefix")} LIMIT {TOP_N})
        ORDER BY p90_rtt_ms DESC, prefix LIMIT {TOP_N}""",
    "cc": f"""SELECT congestion_algorithm AS cc, uniqExact(remote_prefix) AS prefixes,
               {READ['sockets']} AS connections,
               round({_q('rtt_us', 1, _MS)}, 3) AS p50_rtt_ms, round({_q('rtt_us', 2, _MS)}, 3) AS p90_rtt_ms,
               round({_RETRANS}, 5) AS retrans_ratio, round({_q('delivery_rate', 1, _MBPS)}, 3) AS delivery_mbps
        FROM {{src}} WHERE congestion_algorithm != '' AND remote_prefix IN (
            SELECT remote_prefix FROM {{src}} WHERE congestion_algorithm != '' AND remote_prefix != ''
            GROUP BY remote_prefix HAVING uniqExact(congestion_algorithm) > 1)
        GROUP BY cc ORDER BY cc LIMIT {TOP_N}""",
}
TABLE_CHARTS = frozenset({"prefixes", "cc"})
# Quantile time charts read the rollups only in hour buckets. The rollups are keyed per
# namespace and remote prefix, so on a host with many of them a minute row holds about one
# socket's samples, and merging a quantile state costs ~4x reading a raw value (measured,
# benchmarks/view_load.py): with polls under ~6 a minute the records are the cheaper read.
HOURS_ONLY = frozenset({"rtt", "min_rtt", "rtt_var", "delivery"})


def where(f: Filters) -> str:
    parts = []
    if f.location is not None:
        parts.append("location = {location:String}")
    if f.state is not None:
        parts.append("state = {state:UInt8}")
    if f.prefix is not None:
        parts.append("remote_prefix = {prefix:String}")
    return "".join(f" AND {p}" for p in parts)


def answers(chart: Chart, f: Filters, columns: dict[str, frozenset[str]]) -> bool:
    """Whether the rollups answer ``chart`` under ``f`` (``columns``: each table's columns)."""
    if chart.name not in SQL or f.netns is not None or f.cookie is not None:
        return False
    if f.prefix is not None and not f.prefix.endswith(("/24", "/48")):
        return False
    if f.prefix is not None and (":" in f.prefix) != f.prefix.endswith("/48"):
        return False
    if not all(COLUMNS <= columns.get(t, frozenset()) for t in TABLES):
        return False
    if chart.name in HOURS_ONLY:
        return f.step_s % 3600 == 0
    return chart.name in TABLE_CHARTS or f.step_s % 60 == 0


def rollup_sql(chart: Chart, f: Filters, asn_dictionary: str | None = None) -> str:
    """The chart's statement over the rollups (``answers`` said yes)."""
    if chart.name in TABLE_CHARTS:
        src = _SRC_UNION
    else:  # sockets by state counts per minute: only the minute table can
        hours = f.step_s % 3600 == 0 and chart.name != "states"
        src = _SRC_ONE.replace("{table}", HOUR_TABLE if hours else MINUTE_TABLE)
    asn = ""
    if asn_dictionary:
        asn = (f"dictGetOrDefault({{asn_dict:String}}, 'asn', {ASN_KEY}, toUInt32(0)) AS asn, "
               f"dictGetOrDefault({{asn_dict:String}}, 'name', {ASN_KEY}, '') AS as_name, ")
    return SQL[chart.name].replace("{src}", src).replace("{and_where}", where(f)).replace("{asn_expr}", asn)


def params(f: Filters) -> dict[str, str]:
    """The bounds of the rollup rows read: minutes that start in [t0, t1); of them, the whole
    hours inside the range come from the hour table for the table charts."""
    h0, h1 = -(-f.t0 // 3600) * 3600, f.t1 // 3600 * 3600
    if h1 <= h0:
        h0 = h1 = 0
    return {"rt0": str(f.t0), "rt1": str(f.t1), "rh0": str(h0), "rh1": str(h1)}
