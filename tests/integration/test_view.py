"""xTCPView against a real daemon (``--ui-listen``) polling a socket farm with busy connections:
every JSON endpoint, bad parameters, injection attempts, and the page in headless chromium."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from browser import Browser
from view_daemon import ViewDaemon, get

pytestmark = pytest.mark.root

CHARTS = ("states", "rtt", "min_rtt", "rtt_var", "retrans", "delivery", "heatmap", "talkers", "prefixes", "cc")
SCREENSHOTS = Path(os.environ.get("XTCP_SCREENSHOT_DIR", "test-output/view"))
# XTCP_README_SCREENSHOT=1 refreshes the README's picture from this run (else it goes with the rest).
README_PNG = Path(__file__).resolve().parents[2] / "docs" / "xtcpview.png"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces); CI runs as root")
    with ViewDaemon(tmp_path_factory.mktemp("view")) as view:
        view.wait_until_polled()
        yield view


def drawn_points(doc: dict) -> int:
    if doc["kind"] == "time":
        return sum(v is not None for s in doc["series"].values() for v in s)
    return len(doc["cells"] if doc["kind"] == "heatmap" else doc["rows"])


def test_every_chart_endpoint_answers_with_data_from_the_farm(live):
    status, listing = get(live.url + "api/charts")
    assert status == 200 and [c["name"] for c in listing["charts"]] == list(CHARTS)
    for name in CHARTS:
        status, doc = get(live.url + f"api/chart/{name}?range=5m")
        assert status == 200, doc
        assert drawn_points(doc) > 0, f"{name}: nothing to draw: {doc}"
    status, doc = get(live.url + "api/chart/cc?range=5m")
    assert {"cubic", "bbr"} <= {r[0] for r in doc["rows"]}, doc  # both, on the same destinations
    status, doc = get(live.url + "api/chart/prefixes?range=5m")
    prefixes = {r[0] for r in doc["rows"]}
    assert {"127.0.0.0/24", "127.0.1.0/24", "127.1.2.0/24", "::/48"} <= prefixes, prefixes


def test_filters_narrow_what_each_chart_returns(live):
    status, choices = get(live.url + "api/filters?range=5m")
    assert status == 200 and {live.busy, live.quiet} <= set(choices["netns"]) and "ESTABLISHED" in choices["state"]
    _, everything = get(live.url + "api/chart/talkers?range=5m")
    _, quiet = get(live.url + "api/chart/talkers?range=5m&netns=" + urllib.parse.quote(live.quiet))
    assert sum(r[2] for r in quiet["rows"]) < sum(r[2] for r in everything["rows"])  # fewer connections
    _, one_prefix = get(live.url + "api/chart/prefixes?range=5m&prefix=127.0.1.0/24")
    assert [r[0] for r in one_prefix["rows"]] == ["127.0.1.0/24"]
    _, listen = get(live.url + "api/chart/states?range=5m&state=LISTEN")
    assert set(listen["series"]) == {"LISTEN"}
    _, nothing = get(live.url + "api/chart/rtt?range=5m&location=nowhere")
    assert nothing["t"] == []


def test_connection_drill_down_follows_one_cookie(live):
    _, talkers = get(live.url + "api/chart/talkers?range=5m")
    cookie = talkers["rows"][0][3]
    status, doc = get(live.url + f"api/connection?range=5m&cookie={cookie}")
    assert status == 200 and doc["cookie"] == str(cookie)
    assert len(doc["rows"]) >= 2 and doc["info"][0]["remote"] == talkers["rows"][0][0]
    acked = [r[doc["columns"].index("bytes_acked")] for r in doc["rows"]]
    assert acked == sorted(acked) and acked[-1] > acked[0]  # a busy connection, sample after sample


@pytest.mark.parametrize("query, message", [
    ("api/chart/rtt?range=3y", "range"),
    ("api/chart/rtt?from=10&to=5", "before"),
    ("api/chart/rtt?from=0&to=99999999", "days"),
    ("api/chart/rtt?state=BOGUS", "state"),
    ("api/chart/rtt?prefix=10.0.0.0/99", "prefix"),
    ("api/chart/rtt?cookie=-1", "cookie"),
    ("api/chart/rtt?table=xtcp_records", "unknown parameter"),
    ("api/chart/rtt?netns=a&netns=b", "once"),
    ("api/chart/rtt?location=" + "x" * 300, "256"),
    ("api/connection?range=5m", "cookie"),
])
def test_bad_parameters_get_400_with_a_message(live, query, message):
    status, doc = get(live.url + query)
    assert status == 400 and message in doc["error"], doc


def test_unknown_paths_and_methods_and_foreign_hosts_are_refused(live):
    assert get(live.url + "api/chart/nope")[0] == 404
    assert get(live.url + "static/../../etc/passwd")[0] == 404
    req = urllib.request.Request(live.url + "api/charts", method="POST", data=b"x")
    assert _status(req) == 405
    req = urllib.request.Request(live.url + "api/charts", headers={"Host": "evil.example:9109"})
    assert _status(req) == 421  # DNS rebinding: another site's page cannot read the store
    # a request target urllib cannot split is the client's mistake: 400, not a 500
    host, port = urllib.parse.urlsplit(live.url).hostname, urllib.parse.urlsplit(live.url).port
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"GET http://[::1/api/charts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.makefile("rb").readline().split()[1] == b"400"


def _status(req) -> int:
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("param, value", [
    ("location", "' OR 1=1 --"),
    ("netns", "x') OR 1=1 OR ('"),
    ("netns", "a'; DROP TABLE xtcp_records; --"),
    ("location", "{t0:Int64}"),
    ("netns", "\\' UNION SELECT * FROM file('/etc/passwd') --"),
])
def test_injection_attempts_match_nothing_and_change_nothing(live, param, value):
    _, before = get(live.url + "api/chart/talkers?range=1h")
    status, doc = get(live.url + "api/chart/talkers?range=1h&" + urllib.parse.urlencode({param: value}))
    assert status == 200 and doc["rows"] == []  # the text was a value to compare, not SQL
    _, after = get(live.url + "api/chart/talkers?range=1h")
    assert after["rows"] and sum(r[2] for r in after["rows"]) >= sum(r[2] for r in before["rows"])
    rows = subprocess.run([sys.executable, "-m", "xtcp_uring", "query", "SELECT count() FROM xtcp_records",
                           "--data-dir", live.data_dir, "--format", "csv"], capture_output=True, text=True,
                          timeout=120, check=True).stdout
    assert int(rows.strip().splitlines()[-1]) > 0  # the table is still there, through the daemon


def test_the_page_draws_every_chart_follows_filters_and_logs_no_error(live):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    asyncio.run(_browse(live))


async def _browse(live) -> None:
    async with Browser() as b:
        await b.goto(live.url + "?range=5m")
        await b.wait_for("window.xtcpView && xtcpView.ready")
        drawn = await b.evaluate("xtcpView.drawn")
        assert set(drawn) == set(CHARTS) and all(drawn[c] > 0 for c in CHARTS), drawn
        # each uPlot chart painted its canvas
        painted = await b.evaluate("[...document.querySelectorAll('#charts canvas')].filter(c => { const g = "
                                   "c.getContext('2d'); const d = g.getImageData(0, 0, c.width, c.height).data; "
                                   "for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }).length")
        assert painted >= 7, painted  # six uPlot charts and the heatmap
        await b.screenshot(SCREENSHOTS / "all.png")
        before = await b.evaluate("xtcpView.data.talkers.rows")

        # a filter chosen in the page: the URL carries it and the charts redraw with less
        await b.evaluate(f"(() => {{ const s = document.querySelector('select[name=netns]'); "
                         f"s.value = {live.quiet!r}; s.dispatchEvent(new Event('change')); }})()")
        await b.wait_for(f"location.search.includes('netns={live.quiet}') && xtcpView.ready")
        filtered = await b.evaluate("xtcpView.drawn")
        assert filtered["talkers"] > 0, filtered
        after = await b.evaluate("xtcpView.data.talkers.rows")
        assert sum(r[2] for r in after) < sum(r[2] for r in before), (before, after)  # fewer connections drawn
        quiet_rows = await b.evaluate("document.querySelectorAll('#card-talkers tr').length")
        _, quiet = get(live.url + "api/chart/talkers?range=5m&netns=" + urllib.parse.quote(live.quiet))
        assert quiet_rows == len(quiet["rows"]) + 1  # the table shows the filtered answer (and its header)
        await b.screenshot(SCREENSHOTS / "filtered.png")

        # the URL alone restores that view, and a cookie opens the drill-down
        _, talkers = get(live.url + "api/chart/talkers?range=5m")
        cookie = talkers["rows"][0][3]
        await b.goto(live.url + f"?range=5m&cookie={cookie}")
        await b.wait_for("window.xtcpView && xtcpView.ready")
        conn = await b.evaluate("xtcpView.drawn")
        assert conn["conn_rtt"] > 0 and conn["conn_cwnd"] > 0 and conn["conn_bytes"] > 0, conn
        assert await b.evaluate("!document.getElementById('connection').hidden")
        await b.screenshot(SCREENSHOTS / "connection.png")

        await b.goto(live.url + "?range=5m")
        await b.wait_for("window.xtcpView && xtcpView.ready")
        await b.screenshot(README_PNG if os.environ.get("XTCP_README_SCREENSHOT") == "1" else SCREENSHOTS / "xtcpview.png")
        assert b.errors == [], b.errors

