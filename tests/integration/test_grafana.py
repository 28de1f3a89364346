"""The Grafana dashboard: every panel's SQL, with its macros and template variables expanded as
the ClickHouse datasource does, runs against the embedded store that a real daemon fills
(through its query socket, so it also passes the read-only checks) and returns data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from view_daemon import ViewDaemon
from xtcp_uring.clickhouse.query import query_daemon
from xtcp_uring.view.backends import decode_result

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana" / "xtcp_dashboard.json"
ALL = "$__all"


def expand(sql: str, variables: dict[str, list[str] | str], t0: int, t1: int, interval_s: int) -> str:
    """The datasource's expansion (grafana-clickhouse-datasource 4.x) of the macros we use."""
    sql = _conditional_all(sql, variables)

    def quoted(name: str) -> str:
        value = variables[name]
        values = value if isinstance(value, list) else [value]
        return ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)

    sql = re.sub(r"\$\{(\w+):singlequote\}", lambda m: quoted(m.group(1)), sql)
    sql = sql.replace("$__fromTime", f"toDateTime({t0})").replace("$__toTime", f"toDateTime({t1})")
    sql = sql.replace("$__interval_s", str(interval_s))
    assert "$" not in sql, f"a macro left unexpanded: {sql}"
    return sql


def _conditional_all(sql: str, variables) -> str:
    while (at := sql.find("$__conditionalAll(")) >= 0:
        depth, i = 0, at + len("$__conditionalAll")
        comma = None
        for i in range(i, len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            if sql[i] == "," and depth == 1:
                comma = i
            if depth == 0:
                break
        cond, var = sql[at + len("$__conditionalAll("):comma], sql[comma + 1:i].strip().lstrip("$")
        sql = sql[:at] + ("1=1" if variables[var] == ALL else cond) + sql[i + 1:]
    return sql


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces); CI runs as root")
    with ViewDaemon(tmp_path_factory.mktemp("grafana")) as view:
        view.wait_until_polled()
        yield view


def run(live, sql: str) -> tuple[list[str], list[list]]:
    chunks: list[bytes] = []
    assert query_daemon(os.path.join(live.data_dir, "query.sock"), sql, "jsoncompact", chunks.append)
    return decode_result(b"".join(chunks))


def test_the_dashboard_is_generated_from_the_page_charts():
    assert subprocess.run([sys.executable, str(ROOT / "tools" / "gen_grafana.py"), "--check"]).returncode == 0


def test_every_panel_and_variable_query_returns_data_for_all_and_for_a_selection(live):
    doc = json.loads(DASHBOARD.read_text())
    t1 = int(time.time()) + 1
    t0 = t1 - 600
    everything = {"location": ALL, "netns": ALL, "prefix": ""}
    selection = {"location": ALL, "netns": [live.busy], "prefix": ""}
    one_prefix = {"location": ALL, "netns": [live.busy], "prefix": "127.0.1.0/24"}
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            _, rows = run(live, expand(var["query"], everything, t0, t1, 10))
            assert rows, var["name"]
    _, netns = run(live, expand(next(v for v in doc["templating"]["list"] if v["name"] == "netns")["query"],
                                everything, t0, t1, 10))
    assert {live.busy, live.quiet} <= {r[0] for r in netns}
    assert len(doc["panels"]) == 10
    for panel in doc["panels"]:
        sql = panel["targets"][0]["rawSql"]
        _, all_rows = run(live, expand(sql, everything, t0, t1, 10))
        names, some_rows = run(live, expand(sql, selection, t0, t1, 10))
        assert all_rows, panel["title"]
        # Loopback senders are mostly app-limited: a few namespaces' worth of samples may hold no other.
        assert some_rows or panel["title"].startswith("Delivery rate"), panel["title"]
        if panel["title"].startswith("Worst remote prefixes"):
            _, narrowed = run(live, expand(sql, one_prefix, t0, t1, 10))
            assert [r[0] for r in narrowed] == ["127.0.1.0/24"]
            assert len(all_rows) >= 4
        if panel["type"] == "timeseries":
            assert names[0] == "t"


def test_a_quote_in_a_variable_stays_a_value(live):
    doc = json.loads(DASHBOARD.read_text())
    sql = next(p for p in doc["panels"] if p["title"].startswith("Top talkers"))["targets"][0]["rawSql"]
    t1 = int(time.time()) + 1
    hostile = {"location": ALL, "netns": ["x') OR 1=1 OR ('"], "prefix": ""}
    _, rows = run(live, expand(sql, hostile, t1 - 600, t1, 10))
    assert rows == []
