"""xTCPView over a real chDB store without a daemon: filters, the per-minute rollup when the
store has one (same answers as the raw table), and the raw table when it has none."""

from __future__ import annotations

import asyncio
import time

import pytest

from benchmarks.view_load import fill
from xtcp_uring.clickhouse import DATABASE, open_store
from xtcp_uring.view import StoreBackend, ViewServer, charts, filters, rollup

SOCKETS, POLLS, INTERVAL = 500, 120, 60


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewstore") / "store"
    store = open_store(path)
    try:
        store.ensure_table()
        for statement in rollup.EXAMPLE_DDL.replace("{db}", DATABASE).split(";"):
            if statement.strip():
                store.query(statement)
        fill(store, SOCKETS, POLLS, INTERVAL, (int(time.time()) - POLLS * INTERVAL) * 10**9)
    finally:
        store.release()
    return path


def chart(store_dir, name: str, query: dict, drop_rollup: bool = False) -> dict:
    async def run() -> dict:
        backend = StoreBackend(store_dir)
        try:
            server = ViewServer(backend)
            if drop_rollup:  # the raw table's answer, the rollup being there or not
                server._columns[rollup.ROLLUP_TABLE] = (time.monotonic(), frozenset())
            return await server.chart(charts.CHARTS[name], filters.parse({k: [v] for k, v in query.items()}))
        finally:
            backend.close()

    return asyncio.run(run())


def test_the_rollup_answers_like_the_raw_table(store_dir):
    for name in ("states", "rtt"):
        fast = chart(store_dir, name, {"range": "6h"})
        raw = chart(store_dir, name, {"range": "6h"}, drop_rollup=True)
        assert (fast["source"], raw["source"]) == ("rollup", "raw")
        assert fast["t"] == raw["t"] and len(fast["t"]) >= POLLS * INTERVAL // fast["step"] - 1
        for series, values in raw["series"].items():
            for a, b in zip(fast["series"][series], values):
                assert a == pytest.approx(b, rel=0.05), (name, series)  # t-digests merged vs computed once
    assert set(chart(store_dir, "states", {"range": "6h"})["series"]) == {"ESTABLISHED", "LISTEN", "TIME_WAIT"}


def test_filters_the_rollup_cannot_answer_go_to_the_raw_table(store_dir):
    doc = chart(store_dir, "rtt", {"range": "6h", "prefix": "10.0.0.0/16"})
    assert doc["source"] == "raw" and doc["t"]
    assert chart(store_dir, "rtt", {"range": "15m"})["source"] == "raw"  # 5 s buckets: finer than a minute
    narrowed = chart(store_dir, "states", {"range": "6h", "netns": "ns7", "state": "ESTABLISHED"})
    assert narrowed["source"] == "rollup" and set(narrowed["series"]) == {"ESTABLISHED"}
    assert max(narrowed["series"]["ESTABLISHED"]) < max(chart(store_dir, "states", {"range": "6h"})["series"]["ESTABLISHED"])


def test_every_chart_answers_over_the_synthetic_store(store_dir):
    for name in charts.CHARTS:
        doc = chart(store_dir, name, {"range": "6h"})
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

    assert "asn" not in chart(store_dir, "prefixes", {"range": "6h"})["columns"]
    prefixes = tmp_path / "prefixes.csv"
    prefixes.write_text("prefix,asn,name\n10.0.0.0/9,64500,LOW-HALF\n10.128.0.0/9,64501,HIGH-HALF\n")
    load_asn_file(prefixes, store_dir)
    doc = chart(store_dir, "prefixes", {"range": "6h"})
    col = {name: i for i, name in enumerate(doc["columns"])}
    assert doc["rows"]
    for row in doc["rows"]:
        second_octet = int(row[col["prefix"]].split(".")[1])
        assert (row[col["asn"]], row[col["as_name"]]) == ((64500, "LOW-HALF") if second_octet < 128 else (64501, "HIGH-HALF"))
