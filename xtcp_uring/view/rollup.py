"""The charts the store's rollups answer (made by materialized views at insert:
``clickhouse/rollups.py``), which table answers, and when the records answer instead.

Three rollups:

* ``xtcp_host_1m``/``_1h`` (host, location, state): the charts over time and the heatmap. A few
  rows a minute, so a day is a few thousand rows whatever the number of sockets.
* ``xtcp_prefix_1h`` (host, location, remote /24|/48, congestion control): the prefix tables
  (worst prefixes, congestion controls on shared prefixes), and top talkers per prefix, over
  long ranges.
* ``xtcp_1m``/``xtcp_1h`` (every dimension, issue #14): what the narrow ones cannot filter by:
  one remote prefix for the charts over time, a state for the prefix tables.

Which one answers (``plan``):

* Charts over time: buckets of whole hours read the hour table, of whole minutes the minute
  table (sockets by state: always minutes, it counts distinct sockets per minute); finer
  buckets (ranges under ~4 h) read the records. With a remote-prefix filter (exactly one /24
  or /48, the rollups' ``remote_prefix`` text, written as ``ipaddress`` writes it) the wide
  tables answer instead (the quantile charts only in hours: ``WIDE_HOURS_ONLY``), the heatmap
  the records.
* Tables: over ranges of ``LONG_S`` and more, the hours the range touches from
  ``xtcp_prefix_1h`` (the span read is returned: ``Plan.t0``/``t1``, the page's ``from``/``to``);
  with a state filter, the wide tables (the whole hours inside the range from ``xtcp_1h``, the
  minutes at its edges from ``xtcp_1m``). Shorter ranges: the records, which answer them faster
  than merging thousands of small quantile states a minute (measured: worst prefixes over 1 h
  of 100k sockets, 0.36 s from the records, 0.79 s from a per-minute prefix rollup). Top talkers: per remote address from the records, except over ``LONG_S`` and
  more without a state or prefix filter, where they are per remote prefix from
  ``xtcp_prefix_1h`` (``TALKERS_NOTE``).
* Never: a namespace/pod filter (the rollups have ``netns`` but no pod name, the filter matches
  either; the records' sort key starts with the namespace), a cookie, a wider prefix.

A rollup answers only when its tables exist with the columns used here and cover the range as
far back as the wide ones do (``Coverage``): on a store made before a rollup existed, that
rollup fills from the upgrade on (nothing back-fills it), and until it covers the range the
wider rollup, or the records, answer as before.

Every rollup row's minute (hour) starts in the span read; the records' answer over the same
span agrees. Quantiles are ``quantilesBFloat16`` states, the estimator the raw statements in
``charts.py`` use; counters are per-poll deltas on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clickhouse.rollups import HEATMAP, HOST, PREFIX, READ, WIDE, Rollup
from .charts import MAX_ROWS, TOP_N, Chart
from .filters import TCP_STATES, Filters

ROLLUPS = (WIDE, HOST, PREFIX)
TABLES = tuple(t for r in ROLLUPS for t in (r.minute, r.hour) if t)
LONG_S = 6 * 3600  # tables over ranges this long read hours (the hours the range touches)
TALKERS_NOTE = ("per remote /24 or /48 (ranges of 6 h and more read the prefix rollup, not the records); "
                "narrow the range for addresses and a cookie to open")

STATE = (f"transform(state, [{', '.join(map(str, TCP_STATES.values()))}], "
         f"[{', '.join(repr(n) for n in TCP_STATES)}], toString(state))")
_T = "toUnixTimestamp(toStartOfInterval(time, toIntervalSecond({step_s:Int64})))"
_MINUTE = "toUnixTimestamp(toStartOfInterval(time, toIntervalSecond({inner_s:Int64})))"
_IN = "time >= toDateTime({%s:UInt32}) AND time < toDateTime({%s:UInt32})"
# {src}: one table over [rt0, rt1), or the wide hour+minute union; {and_where}: the filters.
_SRC_ONE = "(SELECT * FROM {table} WHERE " + _IN % ("rt0", "rt1") + "{and_where})"
_SRC_UNION = (f"(SELECT * FROM {WIDE.hour} WHERE {_IN % ('rh0', 'rh1')}{{and_where}} UNION ALL "
              f"SELECT * FROM {WIDE.minute} WHERE {_IN % ('rt0', 'rt1')} AND NOT ({_IN % ('rh0', 'rh1')})"
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

_PREFIXES = f"""SELECT remote_prefix AS prefix, {{asn_expr}}
               round(p90 / 1000, 3) AS p90_rtt_ms, round(p50 / 1000, 3) AS p50_rtt_ms,
               round(retrans_ratio, 5) AS retrans_ratio, connections
        FROM (SELECT remote_prefix, {_q('rtt_us', 2, '')} AS p90, {_q('rtt_us', 1, '')} AS p50,
                     {_RETRANS} AS retrans_ratio, {READ['sockets']} AS connections
              FROM {{src}} WHERE remote_prefix != '' GROUP BY remote_prefix HAVING p90 > 0
              ORDER BY p90 DESC, {ASN_KEY.replace("prefix", "remote_prefix")} LIMIT {TOP_N})
        ORDER BY p90_rtt_ms DESC, prefix LIMIT {TOP_N}"""
SQL = {
    # Distinct sockets per minute (per bucket when finer), averaged over the bucket: the same on
    # the records (charts.py); a socket polled every 10 s is counted once a minute.
    "states": f"""SELECT t, name AS state, round(avg(n), 1) AS sockets FROM (
        SELECT {_T} AS t, {_MINUTE} AS m, {STATE} AS name, {READ['sockets_hll']} AS n
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
    # The log2 histogram of each bucket, one row per (bucket, log2 bucket) as on the records.
    "heatmap": f"""SELECT t, bucket, n FROM (SELECT {_T} AS t, {READ[HEATMAP]} AS h FROM {{src}} GROUP BY t)
        ARRAY JOIN h.1 AS bucket, h.2 AS n ORDER BY t, bucket LIMIT {MAX_ROWS}""",
    "prefixes": _PREFIXES,
    "cc": f"""SELECT congestion_algorithm AS cc, uniqExact(remote_prefix) AS prefixes,
               {READ['sockets']} AS connections,
               round({_q('rtt_us', 1, _MS)}, 3) AS p50_rtt_ms, round({_q('rtt_us', 2, _MS)}, 3) AS p90_rtt_ms,
               round({_RETRANS}, 5) AS retrans_ratio, round({_q('delivery_rate', 1, _MBPS)}, 3) AS delivery_mbps
        FROM {{src}} WHERE congestion_algorithm != '' AND remote_prefix IN (
            SELECT remote_prefix FROM {{src}} WHERE congestion_algorithm != '' AND remote_prefix != ''
            GROUP BY remote_prefix HAVING uniqExact(congestion_algorithm) > 1)
        GROUP BY cc ORDER BY cc LIMIT {TOP_N}""",
    # Long ranges only: per prefix, bytes moved (acked + received, per-poll deltas).
    "talkers": f"""SELECT remote_prefix AS remote, sum(bytes_acked) + sum(bytes_received) AS bytes,
               {READ['sockets']} AS connections
        FROM {{src}} WHERE remote_prefix != '' GROUP BY remote HAVING bytes > 0
        ORDER BY bytes DESC, remote LIMIT {TOP_N}""",
}
TIME_CHARTS = frozenset({"states", "rtt", "min_rtt", "rtt_var", "retrans", "delivery", "heatmap"})
TABLE_CHARTS = frozenset({"prefixes", "cc"})
# The wide tables (a remote-prefix filter) answer the quantile charts only in hour buckets: a
# wide minute row holds about one socket's samples on a host with many namespaces and prefixes,
# and merging a quantile state costs ~4x reading a raw value (benchmarks/view_load.py).
WIDE_HOURS_ONLY = frozenset({"rtt", "min_rtt", "rtt_var", "delivery"})
# What each rollup's tables must have for the statements above.
NEEDS = {r: frozenset(name for name, _ in r.columns) for r in ROLLUPS}

# The filters' choices over long ranges (the namespaces/pods: the records of the range's last hour).
CHOICES_SQL = {
    "location": f"SELECT location AS v, sum(samples) AS n FROM {HOST.hour} WHERE {_IN % ('rt0', 'rt1')}{{and_where}} "
                "GROUP BY v ORDER BY n DESC LIMIT 200",
    "state": f"SELECT state AS v, sum(samples) AS n FROM {HOST.hour} WHERE {_IN % ('rt0', 'rt1')}{{and_where}} "
             "GROUP BY v ORDER BY v LIMIT 20",
}


def first_table(r: Rollup) -> str:
    """The table a rollup's inserts land in first (whose first rows say since when it fills)."""
    return r.minute or r.hour


@dataclass(frozen=True)
class Coverage:
    """What the server knows of the rollup tables: each one's columns, and the first minute each
    rollup's first table holds (``first_table``; None: no rows)."""

    columns: dict[str, frozenset[str]]
    since: dict[str, int | None]

    def usable(self, r: Rollup, t0: int) -> bool:
        """``r``'s tables exist with what the statements read, and hold the range from ``t0`` on
        as far back as the wide minute table does (a rollup added by an upgrade fills from then)."""
        if not all(NEEDS[r] <= self.columns.get(t, frozenset()) for t in (r.minute, r.hour) if t):
            return False
        if r is WIDE:
            return True
        mine, wide = self.since.get(first_table(r)), self.since.get(WIDE.minute)
        if wide is None:
            return True  # nothing rolled up yet: both fill from the same inserts
        return mine is not None and mine <= max(t0 // 60 * 60, wide)


@dataclass(frozen=True)
class Plan:
    sql: str
    params: dict[str, str]
    t0: int  # the span the rollup rows cover (may be wider than the range: whole minutes/hours)
    t1: int
    table: str  # the rollup table read (the wide union: its hour table)
    note: str = ""


def _where(f: Filters) -> str:
    parts = []
    if f.location is not None:
        parts.append("location = {location:String}")
    if f.state is not None:
        parts.append("state = {state:UInt8}")
    if f.prefix is not None:
        parts.append("remote_prefix = {prefix:String}")
    return "".join(f" AND {p}" for p in parts)


def _one_prefix(f: Filters) -> bool:
    """The prefix filter is one /24 (IPv4) or /48 (IPv6): what ``remote_prefix`` holds."""
    return f.prefix.endswith("/48") if ":" in f.prefix else f.prefix.endswith("/24")


def _touched(t0: int, t1: int, unit: int) -> tuple[int, int]:
    return t0 // unit * unit, -(-t1 // unit) * unit


def plan(chart: Chart, f: Filters, cov: Coverage, asn_dictionary: str | None = None) -> Plan | None:
    """The chart's statement over a rollup, or None when the records answer."""
    if chart.name not in SQL or f.netns is not None or f.cookie is not None:
        return None
    if f.prefix is not None and not _one_prefix(f):
        return None
    if chart.name in TIME_CHARTS:
        return _time_plan(chart, f, cov)
    if chart.name == "talkers":
        if f.t1 - f.t0 < LONG_S or f.state is not None or f.prefix is not None or not cov.usable(PREFIX, f.t0):
            return None  # one prefix chosen: its addresses, from the records (their last 6 h)
        t0, t1 = _touched(f.t0, f.t1, 3600)
        return _plan(chart, f, PREFIX, PREFIX.hour, t0, t1, TALKERS_NOTE)
    if f.t1 - f.t0 < LONG_S:
        return None  # the records: cheaper than merging many small states (module docstring)
    if f.state is None and cov.usable(PREFIX, f.t0):
        t0, t1 = _touched(f.t0, f.t1, 3600)
        return _plan(chart, f, PREFIX, PREFIX.hour, t0, t1, asn_dictionary=asn_dictionary)
    if not cov.usable(WIDE, f.t0):
        return None
    h0, h1 = -(-f.t0 // 3600) * 3600, f.t1 // 3600 * 3600  # whole hours inside the range
    if h1 <= h0:
        h0 = h1 = 0
    params = {"rt0": str(f.t0), "rt1": str(f.t1), "rh0": str(h0), "rh1": str(h1)}
    return Plan(_sql(chart, f, WIDE, _SRC_UNION, asn_dictionary), params, f.t0, f.t1, WIDE.hour)


def _time_plan(chart: Chart, f: Filters, cov: Coverage) -> Plan | None:
    if f.step_s % 60:
        return None  # buckets finer than a minute
    hours = f.step_s % 3600 == 0 and chart.name != "states"  # sockets by state counts per minute
    if f.prefix is None and cov.usable(HOST, f.t0):
        return _plan(chart, f, HOST, HOST.hour if hours else HOST.minute, f.t0, f.t1)
    if chart.name in ("heatmap", "states") or not cov.usable(WIDE, f.t0):
        return None  # the wide tables have no heatmap, and count sockets otherwise (uniq)
    if chart.name in WIDE_HOURS_ONLY and not hours:
        return None
    return _plan(chart, f, WIDE, WIDE.hour if hours else WIDE.minute, f.t0, f.t1)


def _plan(chart: Chart, f: Filters, r: Rollup, table: str, t0: int, t1: int, note: str = "",
          asn_dictionary: str | None = None) -> Plan:
    src = _SRC_ONE.replace("{table}", table)
    return Plan(_sql(chart, f, r, src, asn_dictionary), {"rt0": str(t0), "rt1": str(t1)}, t0, t1, table, note)


def _sql(chart: Chart, f: Filters, r: Rollup, src: str, asn_dictionary: str | None) -> str:
    asn = ""
    if asn_dictionary:
        asn = (f"dictGetOrDefault({{asn_dict:String}}, 'asn', {ASN_KEY}, toUInt32(0)) AS asn, "
               f"dictGetOrDefault({{asn_dict:String}}, 'name', {ASN_KEY}, '') AS as_name, ")
    return SQL[chart.name].replace("{src}", src).replace("{and_where}", _where(f)).replace("{asn_expr}", asn)


def choices_plan(f: Filters, cov: Coverage) -> tuple[dict[str, str], dict[str, str], int] | None:
    """Over long ranges: the location and state choices' statements over ``xtcp_host_1h`` (the
    hours the range touches), their parameters, and where the namespace choices' records start
    (the range's last hour); None when the records answer all three."""
    if f.t1 - f.t0 < LONG_S or f.netns is not None or f.prefix is not None or not cov.usable(HOST, f.t0):
        return None
    t0, t1 = _touched(f.t0, f.t1, 3600)
    where = _where(f)
    return ({k: v.replace("{and_where}", where) for k, v in CHOICES_SQL.items()},
            {"rt0": str(t0), "rt1": str(t1)}, max(f.t0, f.t1 - 3600))
