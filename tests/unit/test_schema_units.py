"""Every record field has a unit for its ClickHouse COMMENT (xtcp_uring/schema_units.py), and the
generated DDL carries it."""

from __future__ import annotations

from pathlib import Path

from xtcp_uring import schema
from xtcp_uring.clickhouse.columns import column_definitions
from xtcp_uring.schema_units import unit_of

KAFKA_PIPELINE = Path(__file__).resolve().parents[2] / "examples" / "clickhouse" / "kafka_pipeline.sql"


def test_every_field_has_a_unit():
    assert [f.name for f in schema.record().fields if unit_of(f.name) is None] == []


def test_units_follow_the_kernel():
    assert {n: unit_of(n) for n in ("tcp_info_rtt", "tcp_info_min_rtt", "tcp_info_rcv_rtt", "tcp_info_rto",
                                    "tcp_info_last_data_recv", "tcp_info_pacing_rate", "tcp_info_snd_wnd",
                                    "tcp_info_snd_cwnd", "tcp_info_bytes_acked", "inet_diag_msg_expires")} == {
        "tcp_info_rtt": "microseconds", "tcp_info_min_rtt": "microseconds", "tcp_info_rcv_rtt": "microseconds",
        "tcp_info_rto": "microseconds", "tcp_info_last_data_recv": "milliseconds",
        "tcp_info_pacing_rate": "bytes per second", "tcp_info_snd_wnd": "bytes", "tcp_info_snd_cwnd": "segments",
        "tcp_info_bytes_acked": "bytes", "inet_diag_msg_expires": "milliseconds"}


def test_generated_ddl_comments_every_column_and_adds_the_aliases():
    defs = column_definitions()
    fields = [f.name for f in schema.record().fields]
    assert list(defs) == fields + ["sec", "nsec", "src", "dst"]
    for name in fields:
        assert f" COMMENT '{unit_of(name)}" in defs[name], name
    assert defs["sec"].startswith("Int64 ALIAS intDiv(timestamp_ns, 1000000000)")
    assert defs["src"].startswith("IPv6 ALIAS ")
    kafka = KAFKA_PIPELINE.read_text()
    assert kafka.startswith("-- generated from proto/xtcp_flat_record.proto")
    assert "` IPv6 ALIAS" not in kafka and "`sec`" not in kafka and "`tcp_info_rtt` UInt32 COMMENT 'microseconds'" in kafka
