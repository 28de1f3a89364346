"""Embedded ClickHouse (chDB): our ProtobufList bytes and our Arrow columns are the same rows,
the chdb sink and the query helper work, and the clickhouse+http sink's requests insert."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from golden import cases
from xtcp_uring import clickhouse, records, schema
from xtcp_uring.clickhouse.errors import ClickHouseError
from xtcp_uring.errors import ConfigError, SinkError
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.sinks import open_sink

pytest.importorskip("chdb")
pytest.importorskip("pyarrow")

CAPTURE = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"  # IPv4+IPv6, cubic+bbr
ADDRESSES = ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination")
# Columns compared with the numpy view, beside the whole-row comparison of the two inserts.
COMPARED = ("tcp_info_rtt", "tcp_info_snd_cwnd", "tcp_info_min_rtt", *ADDRESSES,
            "inet_diag_msg_socket_source_port", "inet_diag_msg_socket_destination_port",
            "inet_diag_msg_socket_cookie", "inet_diag_msg_family", "congestion_algorithm_string",
            "bbr_info_bw_lo", "bbr_info_bw_hi", "bbr_info_min_rtt", "bbr_info_pacing_gain",
            "bbr_info_cwnd_gain", "tcp_info_pacing_rate", "tcp_info_len")


NOW_NS = time.time_ns()  # rows older than the store's retention are not kept


def make_batch(poll_id: int, copies: int = 1, hostname: str = "h1") -> records.Batch:
    buffers = [bytes(p) for p in response_payloads(CAPTURE)]
    dumps = [
        records.decode_buffers(buffers, strict=False, labels=records.encode_labels(
            hostname=hostname, netns=f"ns{i % 7}", poll_id=poll_id, timestamp_ns=NOW_NS + i))
        for i in range(copies)
    ]
    return records.Batch(dumps, poll_id=poll_id)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("xtcp-data")


@pytest.fixture(scope="module")
def store(data_dir):
    store = clickhouse.open_store(data_dir)
    store.ensure_table()
    yield store
    store.release()


ALL_COLUMNS = f"* EXCEPT (poll_id, {', '.join(ADDRESSES)}), " + ", ".join(f"hex({a})" for a in ADDRESSES)


def rows_of(store, poll_id: int, columns: str = ALL_COLUMNS) -> list:
    out = store.query(f"SELECT {columns} FROM xtcp.xtcp_records WHERE poll_id = {poll_id} ORDER BY ALL",
                      "JSONCompactEachRow")
    return [json.loads(line) for line in out.bytes().decode().splitlines()]


def numpy_rows(batch: records.Batch) -> list:
    """COMPARED columns from the numpy view of the C records, as ClickHouse prints them."""
    cols = []
    for name in COMPARED:
        col = batch.column(name)
        if name in ADDRESSES:
            lens = batch.column(name + "_len")
            cols.append([bytes(v[:n]).hex().upper() for v, n in zip(col, lens)])
        elif name == "congestion_algorithm_string":
            cols.append([bytes(v).split(b"\0")[0].decode() for v in col])
        else:
            cols.append(col.tolist())
    return sorted(map(list, zip(*cols)), key=repr)


def select_compared() -> str:
    return ", ".join(f"hex({c})" if c in ADDRESSES else c for c in COMPARED)


def test_arrow_table_is_the_numpy_view():
    batch = make_batch(1)
    table = clickhouse.arrow_table(batch)
    socket_names = [f.name for f in schema.socket_fields()]
    label_names = [f.name for f in schema.label_fields()]
    assert table.column_names == socket_names + label_names
    for name in socket_names:
        got = table[name].to_pylist()
        if name in ADDRESSES:
            want = [bytes(v[:n]) for v, n in zip(batch.column(name), batch.column(name + "_len"))]
        elif name == "congestion_algorithm_string":
            want = [bytes(v).split(b"\0")[0].decode() for v in batch.column(name)]
        else:
            want = batch.column(name).tolist()
        assert got == want, name
    assert set(table["hostname"].to_pylist()) == {"h1"} and set(table["poll_id"].to_pylist()) == {1}
    assert {len(a) for a in table["inet_diag_msg_socket_source"].to_pylist()} == {4, 16}
    assert set(table["congestion_algorithm_string"].to_pylist()) == {"cubic", "bbr"}


def test_arrow_reader_is_the_table_in_pieces_across_dumps(store):
    # Pieces of 7 rows cut across the dumps of 3 namespaces: every row and label in order, and
    # the store takes the stream as one insert, rows equal to the whole table's.
    batch, whole = make_batch(111, copies=3), make_batch(112, copies=3)
    table = clickhouse.arrow_table(batch)
    assert len(batch) > 14 and batch.dumps[0].count % 7  # a piece straddles two dumps
    streamed = clickhouse.arrow_reader(batch, rows=7).read_all()
    assert streamed.num_rows == table.num_rows and streamed.column_names == table.column_names
    for name in table.column_names:
        assert streamed[name].to_pylist() == table[name].to_pylist(), name
    assert max(len(b) for b in clickhouse.arrow_reader(batch, rows=7).read_all().to_batches()) == 7
    assert store.insert_batch(batch) == len(batch)
    store.insert_arrow(clickhouse.arrow_table(whole))
    assert rows_of(store, 111) == rows_of(store, 112)


def test_clickhouse_reads_our_protobuf_list_bytes_as_the_arrow_rows(store):
    by_protobuf, by_arrow = make_batch(101), make_batch(102)
    message = clickhouse.protobuf_list(by_protobuf.envelope())
    store.insert_protobuf_list(message)  # returns the rows the rollup views wrote too: counted below
    assert store.insert_arrow(clickhouse.arrow_table(by_arrow)) == len(by_arrow)

    # Every column of every row, both ways in: identical (poll_id told them apart).
    from_protobuf, from_arrow = rows_of(store, 101), rows_of(store, 102)
    assert len(from_protobuf) == len(by_protobuf) == 909
    assert from_protobuf == from_arrow

    # And they are the C records' values.
    assert sorted(rows_of(store, 101, select_compared()), key=repr) == numpy_rows(by_protobuf)
    bbr = store.query("SELECT count() FROM xtcp.xtcp_records WHERE poll_id = 101 AND bbr_info_bw_lo > 0 "
                      "AND congestion_algorithm_enum = 'CONGESTION_ALGORITHM_BBR1'")
    assert int(bbr.bytes()) == int((by_protobuf.column("bbr_info_bw_lo") > 0).sum()) > 0


def test_protobuf_list_framing_is_one_delimited_envelope(store):
    rows = make_batch(103).envelope()
    with pytest.raises(SinkError, match="length-delimited"):
        store.insert_protobuf_list(rows)  # a bare Envelope
    with pytest.raises(SinkError, match="Unexpected end of ProtobufList message"):
        store.insert_protobuf_list(clickhouse.protobuf_list(rows) * 2)  # two in one stream
    assert rows_of(store, 103) == []


async def test_chdb_sink(data_dir, store):
    async with open_sink(f"chdb://{data_dir}", ttl_days=30) as sink:
        await sink.send(make_batch(201))
        await sink.send(make_batch(202, copies=3))
        await sink.flush(timeout=30)
        assert sink.stats.sent_batches == 2 and sink.stats.sent_records == 4 * 909
    got = store.query("SELECT poll_id, count() FROM xtcp.xtcp_records WHERE poll_id IN (201, 202) "
                      "GROUP BY poll_id ORDER BY poll_id")
    assert got.bytes().decode().split() == ["201,909", "202,2727"]


async def test_chdb_sink_keeps_the_previous_samples_join_to_one_row_per_socket(data_dir, store, monkeypatch):
    # The Join engine behind the rollups' deltas keeps every row inserted into it until rebuilt;
    # the sink's prune rebuilds it, so polling the same sockets again and again holds it at one
    # poll's worth, not one per poll.
    from xtcp_uring.sinks import chdb as chdb_sink

    def join_bytes() -> int:
        got = store.query("SELECT total_rows, total_bytes FROM system.tables WHERE database = 'xtcp' "
                          "AND name = 'xtcp_socket_last'", "TabSeparatedRaw").bytes().decode().split()
        return int(got[1])

    monkeypatch.setattr(chdb_sink, "PRUNE_EVERY_S", 0.0)
    async with open_sink(f"chdb://{data_dir}") as sink:
        await sink.send(make_batch(601, copies=3))
        await sink.flush(timeout=30)
        one_poll = join_bytes()
        for poll_id in range(602, 608):
            await sink.send(make_batch(poll_id, copies=3))
            await sink.flush(timeout=30)
        assert sink.stats.sent_records == 7 * 3 * 909
    assert join_bytes() <= 1.2 * one_poll
    monkeypatch.setattr(chdb_sink, "PRUNE_EVERY_S", 3600.0)  # without the rebuild, it grows per poll
    async with open_sink(f"chdb://{data_dir}") as sink:
        for poll_id in range(608, 611):
            await sink.send(make_batch(poll_id, copies=3))
            await sink.flush(timeout=30)
    assert join_bytes() >= 2.5 * one_poll


def test_store_writes_small_parts_compact_and_gives_back_library_pages(store):
    # Each poll's part is one data file, not two per column (footprint.RECORD_TABLE_SETTINGS).
    from xtcp_uring.clickhouse import footprint

    store.insert_batch(make_batch(701))
    got = store.query("SELECT DISTINCT part_type FROM system.parts WHERE database = 'xtcp' AND "
                      "table = 'xtcp_records' AND active AND rows < 1000000", "TabSeparatedRaw")
    assert got.bytes().decode().split() == ["Compact"]
    engine = store.query("SELECT engine_full FROM system.tables WHERE database = 'xtcp' AND name = "
                         "'xtcp_records'", "TabSeparatedRaw").bytes().decode()
    assert f"min_parts_to_merge_at_once = {footprint.MIN_PARTS_TO_MERGE}" in engine

    # chDB's code: read-only mappings only, fewer of their pages resident after, and still working.
    mappings = footprint.library_mappings()
    assert mappings and all(end > start for start, end in mappings)

    def resident_kb() -> int:
        total, inside = 0, False
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split()[0]
                if "-" in head and not head.endswith(":"):
                    start, end = (int(x, 16) for x in head.split("-"))
                    inside = (start, end) in mappings
                elif inside and head == "Rss:":
                    total += int(line.split()[1])
        return total

    before = resident_kb()
    assert footprint.page_out_libraries() == sum(end - start for start, end in mappings)
    assert resident_kb() < before / 2
    assert store.insert_batch(make_batch(702)) == 909
    assert rows_of(store, 702) == rows_of(store, 701)


def test_query_helper(data_dir, store, capsys):
    store.insert_arrow(clickhouse.arrow_table(make_batch(301)))
    sql = "SELECT count() AS n FROM xtcp.xtcp_records WHERE poll_id = 301"
    assert json.loads(clickhouse.run_query(sql, "json", data_dir))["data"] == [{"n": 909}]
    assert clickhouse.run_query(sql, "csv", data_dir).split() == ['"n"', "909"]
    table = clickhouse.run_query(
        "SELECT netns, count(), avg(tcp_info_rtt) FROM xtcp.xtcp_records WHERE poll_id = 301 GROUP BY netns", "table",
        data_dir)
    assert "netns" in table and "909" in table and "\x1b" not in table
    # The seeds' question runs unchanged.
    assert clickhouse.run_query_cli(
        "SELECT hostname, netns, inet_diag_msg_socket_destination_port, tcp_info_rtt, tcp_info_rtt_var, "
        "tcp_info_min_rtt, tcp_info_rcv_rtt FROM xtcp.xtcp_records ORDER BY tcp_info_rtt DESC LIMIT 20",
        data_dir, "table") == 0
    assert "tcp_info_rcv_rtt" in capsys.readouterr().out
    with pytest.raises(SinkError, match="UNKNOWN_TABLE|Unknown table"):
        clickhouse.run_query("SELECT * FROM xtcp.nope", "table", data_dir)
    with pytest.raises(ConfigError, match="unknown format"):
        clickhouse.run_query(sql, "xml", data_dir)
    with pytest.raises(ConfigError, match="no xtcp store"):
        clickhouse.run_query(sql, "table", data_dir / "missing")
    with pytest.raises(ConfigError, match="one data directory per process"):
        clickhouse.open_store(data_dir.parent)


def test_insert_rate_100k_records(store):
    batch = make_batch(401, copies=110)  # 99,990 records in 110 dumps
    t0 = time.perf_counter()
    table = clickhouse.arrow_table(batch)
    t1 = time.perf_counter()
    store.insert_arrow(table)
    t2 = time.perf_counter()
    n = len(batch)
    print(f"\nchDB: {n} records, arrow {t1 - t0:.3f} s + insert {t2 - t1:.3f} s = {n / (t2 - t0):,.0f} rows/s")
    assert int(store.query("SELECT count() FROM xtcp.xtcp_records WHERE poll_id = 401").bytes()) == n
    assert n / (t2 - t0) > 20_000  # a floor far below the ~250k rows/s measured on 2 cores


# -- clickhouse+http against a stand-in server that runs the requests in chDB ----------


class FakeClickHouse:
    """Just enough of ClickHouse's HTTP interface: POST /?query=…, body = the INSERT's data."""

    def __init__(self, store):
        self.store = store
        self.fail_next = 0
        self.requests: list[tuple[str, dict]] = []

    async def handle(self, reader, writer):
        try:
            while line := await reader.readline():
                _, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, v = h.decode().split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                sql = parse_qs(urlsplit(target).query)["query"][0]
                self.requests.append((sql, headers))
                status, text, code = self.run(sql, body)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(text)}\r\n"
                if code is not None:
                    head += f"X-ClickHouse-Exception-Code: {code}\r\n"
                writer.write(head.encode() + b"\r\n" + text)
                await writer.drain()
        finally:
            writer.close()

    def run(self, sql: str, body: bytes) -> tuple[int, bytes, int | None]:
        """(HTTP status, body, ClickHouse error code): ClickHouse answers 404 for a missing
        table or database, 400 for a statement or data it refuses, and sends the code."""
        if self.fail_next:
            self.fail_next -= 1
            return 503, b"Code: 202. DB::Exception: Too many simultaneous queries", 202
        try:
            if " FORMAT " in sql:
                sql, fmt = sql.rsplit(" FORMAT ", 1)
                # The server has the .proto in its format_schema_path; here that is proto/.
                sql = sql.replace(f"'{schema.PROTO_PATH.name}:", f"'{schema.PROTO_PATH}:")
                self.store.insert(sql, fmt, body)
            else:
                self.store.query(sql)
        except ClickHouseError as exc:
            return (404 if exc.table_missing else 400), str(exc).encode(), exc.code
        return 200, b"", None


@pytest.mark.parametrize("fmt", ["arrow", "protobuf_list"])
async def test_clickhouse_http_sink(store, fmt):
    server = FakeClickHouse(store)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    poll_id = 501 if fmt == "arrow" else 502
    try:
        url = f"clickhouse+http://writer:pw@127.0.0.1:{port}/xtcp?format={fmt}&create_table=true"
        async with open_sink(url, retry_initial_s=0.01) as sink:
            server.fail_next = 1  # a 503 is retried
            await sink.send(make_batch(poll_id))
            await sink.flush(timeout=30)
        assert sink.stats.sent_records == 909 and sink.stats.errors == 1
    finally:
        srv.close()
        await srv.wait_closed()
    assert rows_of(store, poll_id) == rows_of(store, 102)  # the Arrow-inserted reference rows
    sql, headers = server.requests[-1]
    assert sql.startswith("INSERT INTO xtcp.xtcp_records")
    assert headers["authorization"] == "Basic " + base64.b64encode(b"writer:pw").decode()


async def test_clickhouse_http_sink_retries_a_missing_table_and_rejects_only_a_refused_batch(store):
    server = FakeClickHouse(store)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    store.query("CREATE DATABASE IF NOT EXISTS narrow")
    store.query("CREATE TABLE IF NOT EXISTS narrow.xtcp_records (hostname String) ENGINE = Memory")
    fast = dict(retry_initial_s=0.01, retry_max_s=0.05, close_timeout_s=0.5)
    try:
        # A database nobody created yet: retried until the operator does (here: until close).
        async with open_sink(f"clickhouse+http://127.0.0.1:{port}/nosuchdb", **fast) as sink:
            await sink.send(make_batch(503))
            while sink.stats.errors < 3:
                await asyncio.sleep(0.01)
            assert sink.stats.rejected_batches == 0 and sink.stats.inflight_batches == 1
        assert sink.stats.dropped_batches == 1 and sink.stats.rejected_batches == 0
        # A table whose columns our batches never fit: rejected at once, counted apart.
        async with open_sink(f"clickhouse+http://127.0.0.1:{port}/narrow", **fast) as sink:
            await sink.send(make_batch(504))
            await sink.flush(timeout=30)
        assert (sink.stats.rejected_batches, sink.stats.errors, sink.stats.sent_batches) == (1, 1, 0)
        # create_table=true: a table dropped under the sink is created again.
        async with open_sink(f"clickhouse+http://127.0.0.1:{port}/again?create_table=true", **fast) as sink:
            store.query("DROP TABLE again.xtcp_records SYNC")
            await sink.send(make_batch(505))
            await sink.flush(timeout=30)
        assert sink.stats.sent_batches == 1 and sink.stats.rejected_batches == 0
        assert int(store.query("SELECT count() FROM again.xtcp_records WHERE poll_id = 505").bytes()) == 909
    finally:
        srv.close()
        await srv.wait_closed()


def test_numpy_rows_helper_sees_both_families():
    assert {r[COMPARED.index("inet_diag_msg_family")] for r in numpy_rows(make_batch(1))} == {2, 10}
