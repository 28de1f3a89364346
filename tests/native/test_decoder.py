"""The C decoder on bytes alone: every capture against the struct oracle, cut and corrupted input.

Any input decodes or yields a typed error/counter; nothing crashes (h11's tr() discipline).
"""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import oracle
from xtcp_uring import native, records
from xtcp_uring.errors import DecodeError, NetlinkError
from xtcp_uring.wire.pcap import PcapError, response_payloads

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2"
# A capture in the shared testdata that holds no data: all of its 929,928 bytes are zero.
ZEROED_CAPTURE = TESTDATA / "6_1_103" / "6_1_103_tcp_1000_sockets.pcap"
CAPTURES = sorted(p for p in TESTDATA.glob("*/*.pcap") if p != ZEROED_CAPTURE)
SAMPLE = TESTDATA / "6_6_44" / "tcp_10_sockets.pcap"


def payloads(path: Path) -> list[bytes]:
    return [bytes(p) for p in response_payloads(path)]


def as_python(value):
    if isinstance(value, np.ndarray):  # bytes16 / char16 columns
        return value.tobytes()
    return int(value)


def record_dicts(dump: records.Dump) -> list[dict]:
    arr = dump.array()
    return [{name: as_python(arr[i][name]) for name in arr.dtype.names} for i in range(dump.count)]


def compare_with_oracle(rec: dict, want: dict) -> list[str]:
    bad = []
    for name, value in want.items():
        got = rec[name]
        if name in ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination"):
            got = got[: rec[name + "_len"]]
        elif name == "congestion_algorithm_string":
            got = got.split(b"\0")[0].decode()
        if got != value:
            bad.append(f"{name}: C {got!r} != oracle {value!r}")
    return bad


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_capture_matches_the_struct_oracle(path):
    bufs = payloads(path)
    dump = records.decode_buffers(bufs, strict=False)
    want = [d for b in bufs for d in oracle.decode_buffer(b)]
    assert dump.count == len(want)
    got = record_dicts(dump)
    mismatches = [m for r, w in zip(got, want) for m in compare_with_oracle(r, w)]
    assert mismatches == []
    assert dump.stats.malformed_offset is None and dump.stats.bad_attributes == 0


def test_a_zeroed_capture_is_a_clear_error():
    with pytest.raises(PcapError, match="bad magic"):
        payloads(ZEROED_CAPTURE)


def test_whole_split_and_per_message_feeding_agree():
    bufs = payloads(SAMPLE)
    whole = b"".join(bufs)
    # The capture's packets are separate recvs; joined they end at the first NLMSG_DONE.
    first_dump = bufs[: next(i for i, b in enumerate(bufs) if native.count_socket_messages(b) == 0) + 1]
    joined = records.decode_buffers([b"".join(first_dump)], strict=False)
    split = records.decode_buffers(first_dump, strict=False)
    assert joined.count == split.count > 0
    assert record_dicts(joined) == record_dicts(split)
    # Message by message: the same again.
    msgs, off = [], 0
    one = b"".join(first_dump)
    while off < len(one):
        (mlen,) = struct.unpack_from("=I", one, off)
        msgs.append(one[off:off + mlen])
        off += (mlen + 3) & ~3
    per_msg = records.decode_buffers(msgs, strict=False)
    assert record_dicts(per_msg) == record_dicts(joined)
    assert len(whole) > len(one)


def _last_message_offset(buf: bytes) -> int:
    off = last = 0
    while off < len(buf):
        (mlen,) = struct.unpack_from("=I", buf, off)
        last = off
        off += (mlen + 3) & ~3
    return last


def test_cut_at_every_byte_of_the_last_message():
    buf = max(payloads(SAMPLE), key=len)
    last = _last_message_offset(buf)
    full = record_dicts(records.decode_buffers([buf], strict=False))
    for cut in range(last + 1, len(buf)):
        dump = records.decode_buffers([buf[:cut]], strict=False)
        assert record_dicts(dump) == full[: len(full) - 1], cut
        assert dump.stats.malformed_offset == last, cut
        with pytest.raises(DecodeError, match=f"offset {last}"):
            records.decode_buffers([buf[:cut]], strict=True)


def test_lying_nlmsg_len_is_a_decode_error_with_offset():
    buf = bytearray(payloads(SAMPLE)[1])
    struct.pack_into("=I", buf, 0, len(buf) + 100)
    with pytest.raises(DecodeError, match="offset 0"):
        records.decode_buffers([bytes(buf)])
    struct.pack_into("=I", buf, 0, 8)  # shorter than nlmsghdr
    dump = records.decode_buffers([bytes(buf)], strict=False)
    assert dump.count == 0 and dump.stats.malformed_offset == 0


def test_lying_attribute_length_keeps_the_socket_and_counts():
    buf = bytearray(payloads(SAMPLE)[1])
    (mlen,) = struct.unpack_from("=I", buf, 0)
    struct.pack_into("=H", buf, 16 + 72, 0xFFF0)  # first attribute claims to run past the message
    dump = records.decode_buffers([bytes(buf)], strict=False)
    clean = records.decode_buffers([payloads(SAMPLE)[1]], strict=False)
    assert dump.count == clean.count
    assert dump.stats.bad_attributes == 1
    a, b = record_dicts(dump)[0], record_dicts(clean)[0]
    assert a["inet_diag_msg_socket_cookie"] == b["inet_diag_msg_socket_cookie"]
    assert a["tcp_info_len"] == 0 and b["tcp_info_len"] > 0


def _message(payload: bytes, mtype: int = 20, flags: int = 2) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), mtype, flags, 1, 0) + payload + b"\0" * (-len(payload) % 4)


def _attr(rtype: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), rtype) + value + b"\0" * (-len(value) % 4)


def _header(family=2, sport=4000, dport=5000, cookie=(7, 1)) -> bytes:
    return (struct.pack("=BBBB", family, 1, 0, 0) + struct.pack(">HH", sport, dport)
            + b"\x7f\0\0\1".ljust(16, b"\0") * 2
            + struct.pack("=IIIIIIII", 0, cookie[0], cookie[1], 0, 0, 0, 1000, 42))


def test_unknown_attribute_types_are_counted_not_fatal():
    msg = _message(_header() + _attr(23, b"\1\2\3\4") + _attr(99, b"x") + _attr(5, b"\x20"))
    dump = records.decode_buffers([msg])
    rec = record_dicts(dump)[0]
    assert dump.stats.unknown_attributes == 2
    assert dump.stats.unknown_by_type == {23: 1, 63: 1}
    assert rec["type_of_service"] == 0x20  # decoding went on after the unknown ones
    assert rec["attributes_present"] & (1 << 31) and rec["attributes_present"] & (1 << 5)
    assert rec["inet_diag_msg_socket_cookie"] == (1 << 32) | 7


def test_congestion_name_that_is_not_ascii_still_encodes_valid_protobuf():
    # Found by the fuzzer: raw bytes here made a protobuf string no parser accepts.
    dump = records.decode_buffers([_message(_header() + _attr(4, b"cu\xffbic\0"))])
    (msg,) = list(records.Batch([dump]))
    assert msg.congestion_algorithm_string == "cu?bic"


def test_short_attribute_is_ignored_and_counted():
    dump = records.decode_buffers([_message(_header() + _attr(16, b"\1" * 12))])  # BBRINFO needs 20 B
    assert dump.stats.short_attributes == 1
    assert record_dicts(dump)[0]["bbr_info_bw_lo"] == 0


def test_nlmsg_error_raises_with_the_kernel_errno():
    err = _message(struct.pack("=i", -errno.EINVAL) + b"\0" * 16, mtype=2)
    with pytest.raises(NetlinkError) as info:
        records.decode_buffers([_message(_header()) + err])
    assert info.value.errno == errno.EINVAL
    dump = records.decode_buffers([_message(_header()) + err], strict=False)
    assert dump.count == 1 and dump.stats.error == errno.EINVAL


def test_requests_and_short_messages_are_skipped_with_counters():
    request = _message(b"\2\6\0\0" + b"\0" * 52, flags=0x301)  # what a capture holds besides replies
    short = _message(b"\2" * 40)
    dump = records.decode_buffers([request + short + _message(_header())])
    assert dump.count == 1
    assert dump.stats.other_messages == 1 and dump.stats.short_messages == 1


KERNEL_TCP_INFO_SIZES = [104, 120, 136, 144, 160, 168, 192, 200, 224, 232, 240, 248, 280]


@pytest.mark.parametrize("size", KERNEL_TCP_INFO_SIZES)
def test_tcp_info_is_decoded_by_payload_length(size):
    info = bytes(range(1, 256)) + bytes(range(1, 26))  # 280 distinct-ish non-zero bytes
    dump = records.decode_buffers([_message(_header() + _attr(2, info[:size]))])
    rec = record_dicts(dump)[0]
    want = oracle.decode_message(_header() + _attr(2, info[:size]))
    assert rec["tcp_info_len"] == size
    for off, fmt, name in oracle.TCP_INFO_FIELDS:
        assert rec[name] == want[name], name
        if off + struct.calcsize(fmt) > size:
            assert rec[name] == 0, f"{name} beyond a {size}-byte payload must read as absent (0)"


def test_bytes_276_to_279_follow_the_kernel_release():
    info = bytearray(280)
    struct.pack_into("=I", info, 276, 0b1011_0110 | (0x123456 << 8))
    msg = _message(_header() + _attr(2, bytes(info)))
    old = record_dicts(records.decode_buffers([msg], layout=native.tcp_info_layout("6.18.44")))[0]
    new = record_dicts(records.decode_buffers([msg], layout=native.tcp_info_layout("7.0.1")))[0]
    assert (old["tcp_info_accecn_fail_mode"], old["tcp_info_accecn_opt_seen"]) == (0b1011_0110 | 0x5600, 0x1234)
    assert old["tcp_info_ecn_mode"] == 0 and old["tcp_info_options2"] == 0
    assert (new["tcp_info_ecn_mode"], new["tcp_info_accecn_opt_seen"], new["tcp_info_accecn_fail_mode"]) == (2, 1, 0b1011)
    assert new["tcp_info_options2"] == 0x123456
    assert native.tcp_info_layout("garbage") == native.TCP_INFO_LAYOUT_6_18


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data):
    dump = records.decode_buffers([data], strict=False)
    assert dump.count <= native.count_socket_messages(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_corruption_of_a_real_dump_never_crashes(data):
    buf = bytearray(payloads(SAMPLE)[1])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    dump = records.decode_buffers([bytes(buf)], strict=False)
    assert dump.count <= native.count_socket_messages(bytes(buf))


def test_replies_to_another_request_are_skipped_by_seq():
    buf = _message(_header()) + _message(_header(sport=4001))  # _message writes nlmsg_seq 1
    assert records.decode_buffers([buf], seq=1).count == 2
    stale = records.decode_buffers([buf], seq=2)
    assert stale.count == 0 and stale.stats.rejected_seq == 2
    assert records.decode_buffers([buf]).count == 2  # captures: any seq
