"""The ClickHouse DDL against the .proto: generated and current, same columns, types and codecs,
and it runs in chDB together with the rollups and the Kafka pipeline of
examples/clickhouse/kafka_pipeline.sql."""

from __future__ import annotations

import re
import subprocess
import time
import sys
from pathlib import Path

import pytest

from xtcp_uring import clickhouse, schema
from xtcp_uring.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
KAFKA_PIPELINE = REPO / "examples" / "clickhouse" / "kafka_pipeline.sql"  # for servers, not shipped
_SCALAR = {"uint32": "UInt32", "uint64": "UInt64", "int64": "Int64", "string": "String", "bytes": "String"}
_COLUMN = re.compile(r"^\s+`(\w+)` (.+?) CODEC\((.+?)\) COMMENT '.*',?$")
# What each [ch:CLASS] of the .proto promises about a column's storage.
_CODEC = {"counter": "DoubleDelta, ZSTD(1)", "elapsed": "Delta, ZSTD(1)", "lowcard": "ZSTD(1)", None: "ZSTD(1)"}


def expected_columns() -> list[tuple[str, str]]:
    """(name, ClickHouse type) for every proto field, in .proto order."""
    rec = schema.record()
    enums = {e.name: e for e in rec.enums}
    out = []
    for f in rec.fields:
        if f.type in enums:
            typ = "Enum8(" + ", ".join(f"'{n}' = {v}" for n, v in enums[f.type].values) + ")"
        else:
            typ = _SCALAR[f.type]
            if f.type == "string" and (f.namespace_label or f.ch_class == "lowcard"):
                typ = f"LowCardinality({typ})"  # per-namespace values repeat across sockets
        out.append((f.name, typ))
    return out


ALIASES = [("sec", "Int64"), ("nsec", "UInt32"), ("src", "IPv6"), ("dst", "IPv6")]  # read-only, computed


def expected_codecs() -> dict[str, str]:
    return {f.name: _CODEC[f.ch_class] for f in schema.record().fields}


def ddl_columns(sql: str) -> list[tuple[str, str, str]]:
    """(name, type, codec) of the stored columns: ALIAS ones left out, COMMENTs cut."""
    body = sql[sql.index("(\n") + 2 : sql.index("\n)")]
    return [_COLUMN.match(line).groups() for line in body.splitlines() if " ALIAS " not in line]


def test_generated_files_are_current():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gen_schema.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ddl_columns_are_the_proto_fields():
    sql = clickhouse.DDL_PATH.read_text()
    assert sql.startswith("-- generated from proto/xtcp_flat_record.proto by tools/gen_schema.py; do not edit")
    columns = ddl_columns(sql)
    assert [(name, typ) for name, typ, _ in columns] == expected_columns()
    assert {name: codec for name, _, codec in columns} == expected_codecs()
    # Counters are stored as steps, which is what makes a socket-first sort key pay off.
    assert expected_codecs()["tcp_info_bytes_acked"] == "DoubleDelta, ZSTD(1)"
    assert "ORDER BY (hostname, netns, intDiv(timestamp_ns, 3600000000000), inet_diag_msg_socket_cookie, " \
           "timestamp_ns)" in sql


def test_table_ddl_fills_the_placeholders():
    plain = clickhouse.table_ddl()
    assert "CREATE TABLE IF NOT EXISTS xtcp.xtcp_records" in plain
    assert "{" not in plain and "TTL" not in plain
    kept = clickhouse.table_ddl("telemetry", ttl_days=30)
    assert "telemetry.xtcp_records" in kept
    assert "TTL toDateTime(intDiv(timestamp_ns, 1000000000)) + INTERVAL 2592000 SECOND" in kept
    with pytest.raises(ConfigError):
        clickhouse.table_ddl("x; DROP TABLE y")
    with pytest.raises(ConfigError):
        clickhouse.table_ddl(ttl_days=0)


def pipeline_settings() -> dict[str, str]:
    sql = KAFKA_PIPELINE.read_text()
    return dict(re.findall(r"^\s+(kafka_\w+) = '?([^',;\n]+)'?", sql, re.M))


def test_kafka_pipeline_reads_our_envelope():
    settings = pipeline_settings()
    assert settings["kafka_format"] == "ProtobufList"
    proto_file, message = settings["kafka_schema"].split(":")
    assert proto_file == schema.PROTO_PATH.name and message == schema.RECORD_MESSAGE
    # ProtobufList wants a message named Envelope whose row field repeats the row message.
    envelope = schema.load()[schema.ENVELOPE_MESSAGE]
    assert schema.ENVELOPE_MESSAGE == "Envelope"
    (row,) = envelope.fields
    assert (row.name, row.number, row.type, row.repeated) == ("row", 1, schema.RECORD_MESSAGE, True)


statements = clickhouse.ddl.sql_statements


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    pytest.importorskip("chdb")
    store = clickhouse.open_store(tmp_path_factory.mktemp("chdb-ddl"))
    yield store
    store.release()


def describe(store, table: str) -> list[tuple[str, str]]:
    out = store.query(f"DESCRIBE TABLE {table} SETTINGS describe_compact_output = 1", "TabSeparatedRaw")
    return [tuple(line.split("\t")) for line in out.bytes().decode().splitlines()]


def test_ddl_and_pipeline_run_in_chdb(store):
    from golden import cases
    from xtcp_uring import records
    from xtcp_uring.wire.pcap import response_payloads

    store.ensure_table(ttl_days=30)
    assert describe(store, "xtcp.xtcp_records") == expected_columns() + ALIASES

    # The Kafka engine cannot run embedded (chDB has no background consumers): the same
    # statements with a Null engine give the same columns and the same materialized view.
    sql = re.sub(r"ENGINE = Kafka\s+SETTINGS.*?;", "ENGINE = Null;", KAFKA_PIPELINE.read_text(),
                 flags=re.S)
    for stmt in statements(sql):
        store.query(stmt)
    assert describe(store, "xtcp.xtcp_records_kafka") == expected_columns()

    capture = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"
    dump = records.decode_buffers([bytes(p) for p in response_payloads(capture)], strict=False,
                                  labels=records.encode_labels(hostname="via-kafka-table",
                                                               timestamp_ns=time.time_ns()))  # within the TTL
    message = clickhouse.protobuf_list(records.Batch([dump]).envelope())
    store.insert_protobuf_list(message, table="xtcp_records_kafka")
    got = store.query("SELECT count(), sum(tcp_info_rtt) FROM xtcp.xtcp_records WHERE hostname = 'via-kafka-table'")
    assert got.bytes().decode().strip() == f"{dump.count},{int(dump.array()['tcp_info_rtt'].sum())}"


def test_columns_parser_reads_codec_and_comment_lines(store):
    """clickhouse/columns.py reads each column of the generated DDL whole (type, CODEC, COMMENT
    or ALIAS): a table lacking a counter and an alias gets both back, codec and unit included."""
    from xtcp_uring.clickhouse.columns import column_definitions, missing_column_statements

    definitions = column_definitions()
    assert list(definitions) == [name for name, _ in expected_columns() + ALIASES]
    acked = definitions["tcp_info_bytes_acked"]
    assert acked.startswith("UInt64 CODEC(DoubleDelta, ZSTD(1)) COMMENT 'bytes")
    assert definitions["sec"].startswith("Int64 ALIAS intDiv(timestamp_ns, 1000000000) COMMENT ")

    store.query("CREATE DATABASE IF NOT EXISTS olddb")
    old = "\n".join(line for line in clickhouse.table_ddl("olddb").splitlines()
                    if not line.startswith(("    `tcp_info_bytes_acked` ", "    `sec` ")))
    store.query(old)
    existing = set(str(store.query("SELECT name FROM system.columns WHERE database = 'olddb'",
                                   "TabSeparated")).split())
    alters = missing_column_statements("olddb", "xtcp_records", existing)
    assert [a.split("`")[1] for a in alters] == ["tcp_info_bytes_acked", "sec"]
    for statement in alters:
        store.query(statement)
    got = store.query("SELECT name, type, compression_codec, comment FROM system.columns WHERE database = 'olddb' "
                      "AND name IN ('tcp_info_bytes_acked', 'sec') ORDER BY name", "TabSeparatedRaw")
    rows = [line.split("\t") for line in got.bytes().decode().splitlines()]
    assert [(n, t, c) for n, t, c, _ in rows] == [("sec", "Int64", ""),
                                                  ("tcp_info_bytes_acked", "UInt64", "CODEC(DoubleDelta, ZSTD(1))")]
    assert all(comment for *_, comment in rows)
