"""xTCPView over a real chDB store without a daemon: filters, the store's rollups (xtcp_1m and
xtcp_1h, filled by the store's own materialized views as the records are inserted, one poll
per INSERT as the daemon does) answering like the records, and the records when they cannot."""

from __future__ import annotations

import asyncio
import csv
import time

import pytest

from benchmarks.view_load import fill
from xtcp_uring.clickhouse import open_store
from xtcp_uring.view import StoreBackend, ViewServer, charts, filters, rollup

SOCKETS, POLLS, INTERVAL = 300, 60, 180  # 3 hours of polls, every 3 minutes
START = (int(time.time()) // 3600 - 4) * 3600  # whole hours: both paths see the same rows
WHOLE = {"from": str(START), "to": str(START + POLLS * INTERVAL)}  # minute buckets; tables: hours
WEEK = {"from": str(START + POLLS * INTERVAL - 6 * 86400), "to": str(START + POLLS * INTERVAL)}  # hour buckets


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewstore") / "store"
    store = open_store(path)
    try:
        store.ensure_table()  # the record table and the rollups with their views
        fill(store, SOCKETS, POLLS, INTERVAL, START * 10**9)
    finally:
        store.release()
    return path


def chart(store_dir, name: str, query: dict, raw: bool = False) -> dict:
    async def run() -> dict:
        backend = StoreBackend(store_dir)
        try:
            # raw: the records' answer, over the whole range (a week: more than they read by default)
            server = ViewServer(backend, rollups=not raw, records_max_s=None if raw else charts.RECORDS_MAX_S)
            return await server.chart(charts.CHARTS[name], filters.parse({k: [v] for k, v in query.items()}))
        finally:
            backend.close()

    return asyncio.run(run())


def same(fast: dict, raw: dict, rel: float) -> None:
    assert (fast["source"], raw["source"]) == ("rollup", "raw")
    if "series" in raw:
        assert fast["t"] == raw["t"] and fast["series"].keys() == raw["series"].keys()
        for series, values in raw["series"].items():
            assert fast["series"][series] == pytest.approx(values, rel=rel), (raw["chart"], series)
    elif "cells" in raw:  # the heatmap: counts per (bucket, log2 RTT bucket), exact
        assert fast["cells"] == raw["cells"] and raw["cells"]
    else:
        assert fast["columns"] == raw["columns"] and len(fast["rows"]) == len(raw["rows"]) > 0
        for a, b in zip(fast["rows"], raw["rows"]):
            for x, y in zip(a, b):
                assert x == (pytest.approx(y, rel=rel) if isinstance(y, float) else y), (raw["chart"], a, b)


# Tolerances: quantiles are quantilesBFloat16 on both paths, and merged states hold the same
# histogram as one pass over the rows, so they agree up to float rounding (1e-6); sockets are
# uniq (exact below 65,536 values) against uniqExact; counters are per-poll deltas on both.
@pytest.mark.parametrize("name", sorted(set(rollup.SQL) - {"talkers"}))
@pytest.mark.parametrize("span", ["minutes", "hours"])
def test_the_rollups_answer_like_the_records(store_dir, name, span):
    query = WHOLE if span == "minutes" else WEEK
    if name in rollup.TABLE_CHARTS and span == "minutes":  # under 6 h: the records answer the tables
        assert chart(store_dir, name, query)["source"] == "raw"
        return
    fast, raw = chart(store_dir, name, query), chart(store_dir, name, query, raw=True)
    same(fast, raw, rel=1e-6)
    hours = span == "hours" and name != "states"
    narrow = rollup.HOST if name in rollup.TIME_CHARTS else rollup.PREFIX
    assert fast["table"] == (narrow.hour if hours else narrow.minute)  # the narrow rollups, not the wide
    if "t" in raw:
        assert fast["step"] == (60 if span == "minutes" else 3600)
        assert len(raw["t"]) == (POLLS if span == "minutes" else POLLS * INTERVAL // 3600)  # one per poll / hour


def test_top_talkers_over_long_ranges_are_per_prefix_from_the_rollup(store_dir):
    doc = chart(store_dir, "talkers", WEEK)
    assert doc["source"] == "rollup" and doc["table"] == rollup.PREFIX.hour and "per remote /24" in doc["note"]
    assert doc["columns"] == ["remote", "bytes", "connections"] and len(doc["rows"]) == charts.TOP_N
    # The same bytes the records hold: each socket's growth over the range (its first sample a
    # baseline), summed per /24.
    from xtcp_uring.clickhouse import run_query

    out = run_query(f"""SELECT prefix, sum(grown), count() FROM (
        SELECT {filters.PREFIX_TEXT.replace("prefix_key", "substring(any(inet_diag_msg_socket_destination), 1, 3)")}
                   AS prefix,
               max(tcp_info_bytes_acked) - min(tcp_info_bytes_acked)
                   + max(tcp_info_bytes_received) - min(tcp_info_bytes_received) AS grown
        FROM xtcp_records GROUP BY hostname, inet_diag_msg_socket_cookie)
        GROUP BY prefix ORDER BY sum(grown) DESC, prefix LIMIT {charts.TOP_N}""", "csv", store_dir)
    expected = [[p, int(b), int(n)] for p, b, n in list(csv.reader(out.strip().splitlines()))[1:]]  # under a header
    assert doc["rows"] == expected
    assert chart(store_dir, "talkers", WHOLE)["source"] == "raw"  # 3 h: per address, from the records
    assert chart(store_dir, "talkers", WEEK | {"state": "ESTABLISHED"})["source"] == "raw"
    one = chart(store_dir, "talkers", WEEK | {"prefix": doc["rows"][0][0]})  # its addresses, from the records
    assert one["source"] == "raw" and one["rows"] and all(r[0].startswith(doc["rows"][0][0][:-4]) for r in one["rows"])


def test_tables_read_the_whole_hours_the_range_touches(store_dir):
    end = START + POLLS * INTERVAL
    long = chart(store_dir, "prefixes", {"from": str(end - 7 * 3600 + 5), "to": str(end - 5)})
    assert (long["table"], long["from"], long["to"]) == (rollup.PREFIX.hour, end - 7 * 3600, end)
    assert chart(store_dir, "cc", {"from": str(end - 900 - 7), "to": str(end - 29)})["source"] == "raw"


def test_the_rollups_answer_the_filters_they_are_keyed_by(store_dir):
    prefix = chart(store_dir, "prefixes", WEEK)["rows"][0][0]
    for extra in ({"state": "ESTABLISHED"}, {"location": "pop1"}, {"prefix": prefix}):
        for name in ("states", "retrans", "cc", "prefixes"):
            if name == "states" and "prefix" in extra:  # the wide tables count sockets with uniq: the records
                assert chart(store_dir, name, WHOLE | extra)["source"] == "raw"
                continue
            query = WEEK if name in rollup.TABLE_CHARTS else WHOLE  # tables: long ranges only
            fast, raw = chart(store_dir, name, query | extra), chart(store_dir, name, query | extra, raw=True)
            if name == "cc" and "prefix" in extra:  # one prefix, one algorithm: nothing to compare
                assert fast["rows"] == raw["rows"] == []
                continue
            same(fast, raw, rel=1e-6)
    narrowed = chart(store_dir, "states", WHOLE | {"state": "ESTABLISHED"})
    assert set(narrowed["series"]) == {"ESTABLISHED"}
    assert set(chart(store_dir, "states", WHOLE)["series"]) == {"ESTABLISHED", "LISTEN", "TIME_WAIT"}
    assert chart(store_dir, "prefixes", WEEK | {"prefix": prefix})["rows"][0][0] == prefix


def test_filters_the_rollups_cannot_answer_go_to_the_records(store_dir):
    assert chart(store_dir, "states", WHOLE | {"prefix": "10.0.0.0/16"})["source"] == "raw"
    assert chart(store_dir, "states", WHOLE | {"netns": "ns7"})["source"] == "raw"  # or a pod: not in the rollups
    assert chart(store_dir, "states", {"range": "15m"})["source"] == "raw"  # 5 s buckets: finer than a minute
    prefix = chart(store_dir, "prefixes", WEEK)["rows"][0][0]
    assert chart(store_dir, "heatmap", WHOLE | {"prefix": prefix})["source"] == "raw"  # the wide tables have none
    assert chart(store_dir, "rtt", WHOLE | {"prefix": prefix})["source"] == "raw"  # wide minutes: records cheaper
    assert chart(store_dir, "rtt", WEEK | {"prefix": prefix})["table"] == rollup.WIDE.hour
    assert chart(store_dir, "prefixes", WEEK | {"state": "ESTABLISHED"})["table"] == rollup.WIDE.hour  # the union


def test_the_records_answer_per_socket_charts_over_a_bounded_span(store_dir):
    async def run(name: str) -> dict:
        backend = StoreBackend(store_dir)
        try:
            return await ViewServer(backend, rollups=False).chart(charts.CHARTS[name], filters.parse(
                {k: [v] for k, v in WEEK.items()}))
        finally:
            backend.close()

    doc = asyncio.run(run("retrans"))
    assert doc["to"] - doc["from"] == charts.RECORDS_MAX_S and "last 6 h" in doc["note"]
    assert doc["t"] and doc["t"][0] >= doc["from"]
    assert "note" not in asyncio.run(run("rtt"))  # one quantile state per bucket: the whole range


def test_the_filters_choices_over_long_ranges_come_from_the_rollup(store_dir):
    async def run(raw: bool) -> dict:
        backend = StoreBackend(store_dir)
        try:
            return await ViewServer(backend, rollups=not raw).choices(filters.parse({k: [v] for k, v in WEEK.items()}))
        finally:
            backend.close()

    fast, raw = asyncio.run(run(False)), asyncio.run(run(True))
    assert fast["location"] == raw["location"] == ["pop1"]
    assert fast["state"] == raw["state"] == ["ESTABLISHED", "TIME_WAIT", "LISTEN"]
    assert sorted(fast["netns"]) == sorted(raw["netns"])  # every namespace polled in the last hour


def test_every_chart_answers_over_the_synthetic_store(store_dir):
    for name in charts.CHARTS:
        doc = chart(store_dir, name, WHOLE)
        points = doc.get("t") or doc.get("cells") or doc.get("rows")
        assert points, name


@pytest.mark.parametrize("query, message", [
    ({"range": ["1y"]}, "range"),
    ({"from": ["x"]}, "from"),
    ({"range": ["1h"], "from": ["1"]}, "either"),
    ({"state": ["99"]}, "state"),
    ({"prefix": ["300.1.1.1"]}, "prefix"),
    ({"cookie": [str(2**64)]}, "cookie"),
    ({"sql": ["SELECT 1"]}, "unknown parameter"),
])
def test_filters_refuse_what_they_cannot_bind(query, message):
    with pytest.raises(filters.BadRequest, match=message):
        filters.parse(query)


def test_filters_become_placeholders_and_values_never_sql():
    f = filters.parse({"location": ["x' OR 1=1"], "netns": ["pod-a"], "state": ["listen"], "prefix": ["10.1.2.3/8"]},
                      now=1_000_000)
    assert "x' OR" not in f.where() and "{location:String}" in f.where()
    p = f.params()
    assert p["location"] == "x' OR 1=1" and p["state"] == "10" and p["prefix"] == "10.0.0.0/8"
    assert (int(p["t1"]) - int(p["t0"])) // 10**9 == 3600 and f.step_s == 15


def test_query_parameters_are_bound_and_checked_as_bound(store_dir):
    from xtcp_uring.clickhouse import run_query
    from xtcp_uring.clickhouse.readonly import ReadOnlyViolation
    from xtcp_uring.errors import ConfigError

    out = run_query("SELECT count() FROM xtcp_records WHERE netns = {n:String}", "csv", store_dir,
                    params={"n": "ns1' OR '1'='1"})
    assert out.strip().splitlines()[-1] == "0"  # a value, not SQL
    with pytest.raises(ReadOnlyViolation, match="default.passwd"):  # the checker sees the bound identifier
        run_query("SELECT * FROM {t:Identifier}", "csv", store_dir, params={"t": "default.passwd"})
    with pytest.raises(ConfigError, match="names are identifiers"):
        run_query("SELECT 1", "csv", store_dir, params={"a b": "1"})


def test_worst_prefixes_name_their_as_when_the_asn_dictionary_is_loaded(store_dir, tmp_path):
    from xtcp_uring.enrich.asn import load_asn_file

    assert "asn" not in chart(store_dir, "prefixes", WEEK)["columns"]
    prefixes = tmp_path / "prefixes.csv"
    prefixes.write_text("prefix,asn,name\n10.0.0.0/9,64500,LOW-HALF\n10.128.0.0/9,64501,HIGH-HALF\n")
    load_asn_file(prefixes, store_dir)
    doc = chart(store_dir, "prefixes", WEEK)
    col = {name: i for i, name in enumerate(doc["columns"])}
    assert doc["rows"]
    for row in doc["rows"]:
        second_octet = int(row[col["prefix"]].split(".")[1])
        assert (row[col["asn"]], row[col["as_name"]]) == ((64500, "LOW-HALF") if second_octet < 128 else (64501, "HIGH-HALF"))
    assert doc["source"] == "rollup" and chart(store_dir, "prefixes", WEEK, raw=True)["rows"] == doc["rows"]


def test_a_store_from_before_the_narrow_rollups_gets_them_and_reads_them_once_they_cover_the_range(tmp_path):
    path = tmp_path / "store"
    store = open_store(path)
    try:
        store.ensure_table()
        for r in (rollup.HOST, rollup.PREFIX):  # a store of the version before them: only the wide rollups
            for table in filter(None, (r.hour, r.minute)):
                store.query(f"DROP TABLE xtcp.{table}_mv")
                store.query(f"DROP TABLE xtcp.{table}")
        fill(store, 50, 20, 180, START * 10**9)  # its first hour
        store.release()
        store = open_store(path)
        store.ensure_table()  # as the daemon does at start: the missing rollups are created, empty
        assert store.query("SELECT count() FROM xtcp.xtcp_host_1m", "CSV").bytes().strip() == b"0"
        fill(store, 50, 20, 180, (START + 3600) * 10**9)  # the hour after the upgrade: every rollup fills
    finally:
        store.release()
    since_upgrade = {"from": str(START + 3600), "to": str(START + 3600 + 6 * 3600)}
    before = {"from": str(START - 4 * 3600), "to": str(START + 2 * 3600)}
    assert chart(path, "states", since_upgrade)["table"] == rollup.HOST.minute
    assert chart(path, "prefixes", since_upgrade)["table"] == rollup.PREFIX.hour
    # A range the narrow rollups do not cover yet: the wide ones answer it, as before the upgrade.
    assert chart(path, "retrans", before)["table"] == rollup.WIDE.minute
    assert chart(path, "prefixes", before)["table"] == rollup.WIDE.hour
    assert chart(path, "heatmap", before)["source"] == chart(path, "states", before)["source"] == "raw"
