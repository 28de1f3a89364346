"""`python -m xtcp_uring view`: over a store no daemon holds, over a daemon's query socket, and
its mistakes as one line each."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from view_daemon import free_port, get

pytestmark = pytest.mark.root


def start_view(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xtcp_uring", "view", "--listen", f"127.0.0.1:{port}", *args],
                            stderr=subprocess.PIPE, text=True)
    lines = []
    while not lines or "xTCPView on" not in lines[-1]:  # after the log's own lines
        lines.append(proc.stderr.readline())
        if not lines[-1]:
            raise AssertionError("view did not start: " + "".join(lines))
    return proc, f"http://127.0.0.1:{port}/"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def test_view_over_a_store_that_no_daemon_holds(netns_farm, tmp_path):
    netns_farm.add(2)
    store = tmp_path / "store"
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", netns_farm.glob,
                        "--sink", f"chdb://{store}"], check=True, capture_output=True, timeout=120)
        time.sleep(1)
    proc, url = start_view("--data-dir", str(store))
    try:
        status, doc = get(url + "api/chart/states?range=15m")
        assert status == 200 and "ESTABLISHED" in doc["series"] and "LISTEN" in doc["series"], doc
        status, doc = get(url + "api/filters?range=15m")
        assert set(doc["netns"]) == set(netns_farm.namespaces)
    finally:
        stop(proc)


def test_view_asks_the_daemon_through_its_query_socket_while_it_runs(tmp_path):
    from view_daemon import ViewDaemon

    with ViewDaemon(tmp_path) as live:
        live.wait_until_polled(polls=2)
        proc, url = start_view("--data-dir", live.data_dir)
        try:
            status, doc = get(url + "api/chart/talkers?range=5m")
            assert status == 200 and doc["rows"], doc
        finally:
            stop(proc)


@pytest.mark.parametrize("args, message", [
    (["--listen", "nowhere"], "--listen"),
    (["--listen", "127.0.0.1:99999"], "port"),
    (["--clickhouse", "ftp://example.org"], "--clickhouse"),
    # urllib raises ValueError on these; the CLI now takes a stray ValueError for a bug (exit 70)
    (["--clickhouse", "http://example.org:http/xtcp"], "port"),
    (["--clickhouse", "http://[::1/xtcp"], "--clickhouse"),
    (["--data-dir", "/nonexistent/xtcp"], "no xtcp store"),
])
def test_view_mistakes_are_one_line_and_an_exit_code(args, message):
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "view", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_daemon_refuses_ui_listen_without_the_embedded_store(tmp_path):
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--namespaces", "host", "--sink", f"file://{tmp_path}/x.pb",
                        "--ui-listen", "127.0.0.1:0", "--metrics-listen", "off", "--max-polls", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 64 and "--ui-listen" in r.stderr and "Traceback" not in r.stderr, r.stderr
