"""The store as users read it: the xTCP talk's query verbatim, addresses as text, a unit on
every column, the ASN dictionary loaded by the CLI, and a store made before these columns."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
import subprocess
import sys

from urllib.parse import parse_qs, urlsplit

import pytest

from golden import cases
from xtcp_uring import clickhouse, records, schema
from xtcp_uring.clickhouse.columns import column_definitions
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.schema_units import unit_of
from xtcp_uring.sinks import open_sink

pytestmark = pytest.mark.root
pytest.importorskip("chdb")

TALK_QUERY = ("SELECT sec, nsec, hostname, tcp_info_rtt, tcp_info_rtt_var, tcp_info_min_rtt, tcp_info_rcv_rtt "
              "FROM xtcp.xtcp_records ORDER BY sec DESC, nsec DESC LIMIT 20")


def xtcp(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def query_csv(sql: str, data_dir) -> list[list[str]]:
    """The rows of a query, without its header line."""
    return list(csv.reader(io.StringIO(xtcp("query", sql, "--data-dir", str(data_dir), "--format", "csv").stdout)))[1:]


def table_cells(text: str) -> list[list[str]]:
    """The cells of ClickHouse's pretty table format, header first."""
    rows = []
    for line in text.splitlines():
        if "│" in line:
            rows.append([c.strip() for c in line.split("│")[1:-1]])
        elif "┬" in line:  # the header sits in the top border
            rows.append([c.strip("─ ") for c in line.strip().strip("┌┐").split("┬")])
    return rows


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A store filled by one real poll of this host, with known IPv4 and IPv6 connections."""
    data = tmp_path_factory.mktemp("readable") / "data"
    held = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(family)
        srv.bind((host, 0))
        srv.listen()
        cli = socket.create_connection((host, srv.getsockname()[1]))
        held += [srv, cli, srv.accept()[0]]
    ports = [s.getsockname()[1] for s in held[0::3]]
    # The talk's query reads 20 rows: hold 21 more sockets of our own rather than count on the
    # host's (a quiet CI host had 7).
    pad = socket.socket()
    pad.bind(("127.0.0.1", 0))
    pad.listen(16)
    held.append(pad)
    for _ in range(10):
        held += [socket.create_connection(pad.getsockname()), pad.accept()[0]]
    try:
        xtcp("--once", "--namespaces", "host", "--hostname", "talk-host", "--sink", f"chdb://{data}")
    finally:
        for s in held:
            s.close()
    return data, ports


def test_the_talks_query_runs_verbatim(store_dir):
    data, _ = store_dir
    r = xtcp("query", TALK_QUERY, "--data-dir", str(data))
    header, *rows = table_cells(r.stdout)
    assert header == ["sec", "nsec", "hostname", "tcp_info_rtt", "tcp_info_rtt_var", "tcp_info_min_rtt",
                      "tcp_info_rcv_rtt"]
    assert len(rows) == 20 and {row[2] for row in rows} == {"talk-host"}
    assert all(int(row[0]) > 1_700_000_000 and 0 <= int(row[1]) < 1_000_000_000 for row in rows)
    # sec and nsec are the poll time, split
    (bad,), = query_csv("SELECT countIf(sec * 1000000000 + nsec != timestamp_ns) FROM xtcp.xtcp_records", data)
    assert bad == "0"


def test_addresses_read_as_text(store_dir):
    data, (port4, port6) = store_dir
    rows = query_csv(f"SELECT toString(src), toString(dst) FROM xtcp.xtcp_records WHERE "
                     f"inet_diag_msg_socket_destination_port IN ({port4}, {port6}) ORDER BY dump_family", data)
    assert rows == [["::ffff:127.0.0.1", "::ffff:127.0.0.1"], ["::1", "::1"]]
    # and the table format prints them as text too
    r = xtcp("query", f"SELECT src, dst FROM xtcp.xtcp_records WHERE inet_diag_msg_socket_destination_port = {port4}",
             "--data-dir", str(data))
    assert table_cells(r.stdout) == [["src", "dst"], ["::ffff:127.0.0.1", "::ffff:127.0.0.1"]]


def test_every_column_has_a_comment_with_its_unit(store_dir):
    data, _ = store_dir
    comments = dict(query_csv("SELECT name, comment FROM system.columns WHERE database = 'xtcp' AND "
                              "table = 'xtcp_records'", data))
    assert set(comments) == set(column_definitions())
    for f in schema.record().fields:
        assert comments[f.name].startswith(unit_of(f.name)), f.name
    assert comments["tcp_info_rtt"] == "microseconds"
    assert comments["tcp_info_pacing_rate"] == "bytes per second"
    assert all(comments[a] for a in ("sec", "nsec", "src", "dst"))


def test_asn_dictionary_loaded_by_the_cli_answers_for_dst(store_dir, tmp_path):
    data, (port4, port6) = store_dir
    prefixes = tmp_path / "prefixes.csv"
    prefixes.write_text("prefix,asn,name\n127.0.0.0/8,64500,LOOPBACK-V4\n::1/128,64501,LOOPBACK-V6\n"
                        "2001:db8::/32,64502,\"DOC, EXAMPLE\"\n")
    r = xtcp("load-asn", str(prefixes), "--data-dir", str(data))
    assert r.stdout.strip() == f"xtcp.asn holds 3 prefixes from {prefixes}"
    rows = query_csv(f"SELECT dictGet('xtcp.asn', 'asn', dst), dictGet('xtcp.asn', 'name', dst) FROM "
                     f"xtcp.xtcp_records WHERE inet_diag_msg_socket_destination_port IN ({port4}, {port6}) "
                     "ORDER BY dump_family", data)
    assert rows == [["64500", "LOOPBACK-V4"], ["64501", "LOOPBACK-V6"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("10.0.0.0/8,64500,x\n10.0.0.1/8,1,y\n")
    r = xtcp("load-asn", str(bad), "--data-dir", str(data), check=False)
    assert r.returncode == 64 and r.stderr.strip().startswith(f"xtcp_uring: {bad}:2: prefix '10.0.0.1/8' has host bits")
    # the dictionary still holds the good file
    assert query_csv("SELECT dictGet('xtcp.asn', 'asn', toIPv6('::1'))", data) == [["64501"]]


def test_a_store_made_before_these_columns_gets_them_at_start(tmp_path):
    """An older table (no pod_*, no aliases) is brought up to date, not left refusing inserts."""
    store = clickhouse.open_store(tmp_path / "old")
    try:
        old = clickhouse.table_ddl()
        for name in ("pod_name", "pod_namespace", "sec", "nsec", "src", "dst"):
            old = "\n".join(line for line in old.splitlines() if not line.startswith(f"    `{name}` "))
        old = old.replace(",\n)", "\n)")
        store.query("CREATE DATABASE IF NOT EXISTS xtcp")
        store.query(old)
        assert "pod_name" not in str(store.query("SELECT name FROM system.columns WHERE table = 'xtcp_records'"))
        store.ensure_table()
        names = str(store.query("SELECT name FROM system.columns WHERE database = 'xtcp' AND "
                                "table = 'xtcp_records'", "TabSeparated")).split()
        assert names == list(column_definitions())
    finally:
        store.release()


async def test_clickhouse_http_sink_adds_the_new_columns_to_an_older_server_table(tmp_path):
    """A stand-in ClickHouse HTTP interface answering from chDB: the sink's start brings an
    older table up to date, then its rows (pod_name included) go in."""
    store = clickhouse.open_store(tmp_path / "server")

    async def handle(reader, writer):
        while line := await reader.readline():
            target = line.decode().split(" ")[1]
            length = 0
            while (h := await reader.readline()) not in (b"\r\n", b""):
                k, v = h.decode().split(":", 1)
                length = int(v) if k.strip().lower() == "content-length" else length
            body = await reader.readexactly(length)
            sql = parse_qs(urlsplit(target).query)["query"][0]
            if sql.startswith("INSERT"):
                sql, fmt = sql.rsplit(" FORMAT ", 1)
                store.insert(sql, fmt, body)
                text = b""
            else:
                text = store.query(sql, "TabSeparated").bytes()
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(text)}\r\n\r\n".encode() + text)
            await writer.drain()
        writer.close()

    try:
        old = "\n".join(line for line in clickhouse.table_ddl().splitlines()
                        if not line.startswith(("    `pod_name` ", "    `pod_namespace` ", "    `sec` ")))
        store.query("CREATE DATABASE IF NOT EXISTS xtcp")
        store.query(old)
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        capture = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"
        dump = records.decode_buffers([bytes(p) for p in response_payloads(capture)], strict=False,
                                      labels=records.encode_labels(hostname="h", pod_name="web-0"))
        batch = records.Batch([dump])
        try:
            async with open_sink(f"clickhouse+http://127.0.0.1:{port}/xtcp?format=arrow&create_table=true") as sink:
                await sink.send(batch)
                await sink.flush(timeout=30)
            assert sink.stats.sent_records == dump.count
        finally:
            srv.close()
            await srv.wait_closed()
        names = str(store.query("SELECT name FROM system.columns WHERE database = 'xtcp' AND "
                                "table = 'xtcp_records'", "TabSeparated")).split()
        assert names == list(column_definitions())
        got = str(store.query("SELECT pod_name, count() FROM xtcp.xtcp_records GROUP BY pod_name", "CSV")).strip()
        assert got == f'"web-0",{dump.count}'
    finally:
        store.release()
