"""The C protobuf encoder: output parses with the protobuf package into the decoded values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf.internal.decoder import _DecodeVarint32

from xtcp_uring import native, records, schema
from xtcp_uring.wire.pcap import response_payloads

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2"
CAPTURES = [
    TESTDATA / "6_6_44" / "tcp_100_sockets_bbr.pcap",
    TESTDATA / "6_6_44" / "tcp_100_sockets_dctcp.pcap",
    TESTDATA / "6_8_12" / "6_8_12_tcp_100_sockets.pcap",
    TESTDATA / "4_19_319" / "4_19_319_tcp_100_sockets.pcap",
]


def decode(path: Path, **labels) -> records.Dump:
    return records.decode_buffers([bytes(p) for p in response_payloads(path)], strict=False,
                                  labels=records.encode_labels(**labels))


def expected_value(row, name: str):
    value = row[name]
    if name in ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination"):
        return value.tobytes()[: row[name + "_len"]]
    if name == "congestion_algorithm_string":
        return value.tobytes().split(b"\0")[0].decode()
    return int(value)


def assert_message_matches(msg, row):
    for f in schema.socket_fields():
        assert getattr(msg, f.name) == expected_value(row, f.name), f.name


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_envelope_parses_into_the_decoded_values(path):
    dump = decode(path, hostname="edge-1", netns="host", timestamp_ns=1_700_000_000_123_456_789,
                  kernel_release="6.6.44", netns_cookie=1, dump_family=2)
    _, envelope_cls = schema.message_classes()
    env = envelope_cls()
    env.ParseFromString(records.Batch([dump]).envelope())
    assert len(env.row) == dump.count > 50
    arr = dump.array()
    for msg, row in zip(env.row, arr):
        assert_message_matches(msg, row)
        assert (msg.hostname, msg.netns, msg.timestamp_ns, msg.kernel_release) == (
            "edge-1", "host", 1_700_000_000_123_456_789, "6.6.44")


def test_delimited_stream_and_single_messages():
    dump = decode(CAPTURES[0], hostname="h")
    record_cls, _ = schema.message_classes()
    data, off, msgs = dump.encode(native.FRAME_DELIMITED), 0, []
    while off < len(data):
        size, off = _DecodeVarint32(data, off)
        msgs.append(record_cls.FromString(data[off:off + size]))
        off += size
    assert len(msgs) == dump.count
    iterated = list(records.Batch([dump]))
    assert iterated == msgs
    for msg, row in zip(msgs, dump.array()):
        assert_message_matches(msg, row)


def test_envelopes_of_several_dumps_concatenate():
    a, b = decode(CAPTURES[0], netns="a"), decode(CAPTURES[2], netns="b")
    _, envelope_cls = schema.message_classes()
    env = envelope_cls.FromString(records.Batch([a, b]).envelope())
    assert [r.netns for r in env.row] == ["a"] * a.count + ["b"] * b.count
    batch = records.Batch([a, b])
    assert len(batch) == a.count + b.count
    assert np.array_equal(batch.column("tcp_info_rtt"),
                          np.concatenate([a.array()["tcp_info_rtt"], b.array()["tcp_info_rtt"]]))


def test_encoder_grows_its_buffer_for_long_labels():
    dump = decode(CAPTURES[0], label="x" * 5000)  # makes every record ~5 KiB
    _, envelope_cls = schema.message_classes()
    env = envelope_cls.FromString(dump.encode(native.FRAME_ENVELOPE_ROWS))
    assert len(env.row) == dump.count and all(r.label == "x" * 5000 for r in env.row)


def test_only_namespace_fields_are_labels():
    with pytest.raises(ValueError, match="tcp_info_rtt"):
        records.encode_labels(tcp_info_rtt=5)


def test_empty_dump_encodes_to_nothing():
    empty = records.decode_buffers([])
    assert len(records.Batch([empty])) == 0 and records.Batch([empty]).envelope() == b""
    assert records.Batch([empty]).column("tcp_info_rtt").shape == (0,)
