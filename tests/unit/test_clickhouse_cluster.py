"""examples/clickhouse/cluster/xtcp_cluster.sql: every statement parses (ClickHouse's own parser,
in chDB), and the parts that need no cluster run: with the replicated engines made plain,
ON CLUSTER dropped and the Kafka engine a Null table, a real batch inserted through the Kafka
table's view lands in the local record table and fills the local rollups.

chDB has no ZooKeeper, no remote_servers and no Kafka consumers, so replication, the
Distributed tables and consumption are checked by parsing only: that much is what can run
here."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from golden import cases
from xtcp_uring import clickhouse, records, schema
from xtcp_uring.clickhouse import ddl, rollups
from xtcp_uring.wire.pcap import response_payloads

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SQL = REPO / "examples" / "clickhouse" / "cluster" / "xtcp_cluster.sql"  # for servers, not shipped


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    pytest.importorskip("chdb")
    store = clickhouse.open_store(tmp_path_factory.mktemp("chdb-cluster"))
    yield store
    store.release()


def cluster_statements() -> list[str]:
    return ddl.sql_statements(CLUSTER_SQL.read_text())


def without_cluster(stmt: str) -> str | None:
    """The statement as one node without a cluster runs it; None for a Distributed table."""
    if "ENGINE = Distributed(" in stmt:
        return None
    stmt = stmt.replace(" ON CLUSTER xtcp_cluster", "")
    stmt = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'\)", r"\1", stmt)
    return re.sub(r"ENGINE = Kafka\s+SETTINGS.*", "ENGINE = Null", stmt, flags=re.S)


def test_every_statement_parses(store):
    statements = cluster_statements()
    kinds = " ".join(statements)
    # What a cluster needs is there: replicated local tables, Distributed ones of the usual
    # names, a Kafka table with a view per schema version, and the rollups.
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/xtcp/xtcp_records_local', '{replica}')" in kinds
    for name in ("xtcp_records", *rollups.TABLES):
        assert f"ENGINE = Distributed(xtcp_cluster, xtcp, {name}_local, cityHash64(hostname))" in kinds
    assert f"xtcp_records_kafka_v{schema.SCHEMA_VERSION}_mv" in kinds and "ENGINE = Kafka" in kinds
    assert all(" ON CLUSTER xtcp_cluster" in s for s in statements)
    for stmt in statements:  # a syntax error raises
        formatted = store.query(f"SELECT formatQuery(unhex('{stmt.encode().hex()}'))", "TSVRaw").bytes().decode()
        assert formatted.split(None, 2)[:2] == stmt.split(None, 2)[:2]


def test_the_parts_without_a_cluster_run_and_fill_the_rollups(store):
    for stmt in cluster_statements():
        local = without_cluster(stmt)
        if local is not None:
            store.query(local)
    capture = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"

    labels = records.encode_labels(schema_version=schema.SCHEMA_VERSION, hostname="node-a", location="dc1",
                                   timestamp_ns=time.time_ns())
    dump = records.decode_buffers([bytes(p) for p in response_payloads(capture)], strict=False, labels=labels)
    store.insert_protobuf_list(clickhouse.protobuf_list(records.Batch([dump]).envelope()),
                               table="xtcp_records_kafka")
    # Another schema version has no view yet: its rows do not land in the table.
    other = records.encode_labels(schema_version=schema.SCHEMA_VERSION + 1, hostname="node-b",
                                  timestamp_ns=time.time_ns())
    dump_b = records.decode_buffers([bytes(p) for p in response_payloads(capture)], strict=False, labels=other)
    store.insert_protobuf_list(clickhouse.protobuf_list(records.Batch([dump_b]).envelope()),
                               table="xtcp_records_kafka")

    got = store.query("SELECT hostname, count() FROM xtcp.xtcp_records_local GROUP BY hostname", "TSVRaw")
    assert got.bytes().decode().split() == ["node-a", str(dump.count)]
    for table in rollups.TABLES:  # the wide ones and xTCPView's narrow ones (LISTEN sockets: no RTT)
        got = store.query(f"SELECT location, sum(samples) FROM xtcp.{table}_local GROUP BY location", "TSVRaw")
        assert got.bytes().decode().split() == ["dc1", str(dump.count)]
