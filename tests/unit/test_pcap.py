"""Tests for xtcp_uring.pcap over xtcp2's real nlmon captures, whole, re-encoded and cut."""

from __future__ import annotations

import struct

import pytest

from golden import cases
from golden.cases import capture_files
from xtcp_uring.wire.netlink import NETLINK_SOCK_DIAG, NLM_F_REQUEST
from xtcp_uring.wire.pcap import (
    ARPHRD_NETLINK,
    NetlinkPacket,
    PcapError,
    iter_netlink_packets,
    response_payloads,
)

ROOT = cases.testdata_root()
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason=f"no test data at {ROOT}")

CAPTURES = [pytest.param(p, id=i) for i, p, usable in capture_files() if usable]
SMALL = ROOT / "4_19_319/4_19_319_tcp_10_sockets.pcap"
A4 = ROOT / "6_6_44/ss_tcp_info_a_4.pcap"

# Packets per capture, counted with tshark-independent arithmetic: every record of the file.
# (request packets, all packets); 5_15_164 tcp_10 and the 6_6_44 variants also hold
# NETLINK_ROUTE (protocol 0) traffic.
KNOWN_COUNTS = {
    "4_19_319-tcp_10_sockets": (2, 7),
    "5_15_164-tcp_10_sockets": (6, 20),
    "6_6_44-tcp_10_sockets": (6, 21),
    "6_6_44-ss_tcp_info_a_4": (2, 6),
    "6_6_44-tcp_100_sockets_vegas": (8, 41),
    "6_8_12-tcp_1000_sockets": (2, 27),
}

NLMSG = struct.Struct("<IHHII")


def _id_path(case_id: str):
    for i, p, _ in capture_files():
        if i == case_id:
            return p
    raise KeyError(case_id)


@pytest.mark.parametrize("path", CAPTURES)
def test_every_capture_reads_whole(path):
    pkts = list(iter_netlink_packets(path))
    assert pkts
    pos = 24
    for p in pkts:
        assert isinstance(p, NetlinkPacket)
        assert p.offset == pos  # records are contiguous
        pos += 16 + p.caplen
        assert p.hatype == ARPHRD_NETLINK
        assert p.caplen == p.wirelen  # nothing was cut by the snaplen
        assert len(p.payload) == p.caplen - 16
        assert isinstance(p.payload, memoryview)
        assert p.byteorder == "little"
    assert pos == path.stat().st_size
    # SOCK_DIAG, plus NETLINK_ROUTE (0) traffic that shared the nlmon device in some captures
    assert {p.protocol for p in pkts} <= {0, NETLINK_SOCK_DIAG}
    assert any(p.protocol == NETLINK_SOCK_DIAG for p in pkts)
    assert [p.ts_ns for p in pkts] == sorted(p.ts_ns for p in pkts)


@pytest.mark.parametrize("case_id", sorted(KNOWN_COUNTS))
def test_packet_and_request_counts(case_id):
    path = _id_path(case_id)
    pkts = list(iter_netlink_packets(path))
    requests = [p for p in pkts if p.is_request]
    assert (len(requests), len(pkts)) == KNOWN_COUNTS[case_id]
    diag = [p for p in pkts if p.protocol == NETLINK_SOCK_DIAG]
    diag_requests = [p for p in diag if p.is_request]
    responses = list(response_payloads(path))
    assert len(responses) == len(diag) - len(diag_requests)
    for pl in responses:
        _len, _type, flags, _seq, _pid = NLMSG.unpack_from(pl, 0)
        assert not flags & NLM_F_REQUEST


def test_first_packet_cooked_header_and_request():
    raw = SMALL.read_bytes()
    first = next(iter(iter_netlink_packets(SMALL)))
    # The cooked header itself, read straight from the file: big-endian fields.
    pkttype, hatype, alen, proto = struct.unpack_from(">HHH8xH", raw, 24 + 16)
    assert (hatype, proto) == (824, 4)
    assert (first.pkttype, first.hatype, first.protocol) == (pkttype, hatype, proto)
    # ss's dump request: SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST|NLM_F_ROOT|NLM_F_MATCH, seq 123456
    length, mtype, flags, seq, _pid = NLMSG.unpack_from(first.payload, 0)
    assert (length, mtype, flags, seq) == (72, 20, 0x0301, 123456)
    assert first.is_request
    assert bytes(first.payload[16:20]) == bytes([2, 6, 0x7F, 0])  # AF_INET, TCP, ext 0x7f


def test_responses_start_with_sock_diag_and_end_with_done():
    types = []
    for pl in response_payloads(SMALL):
        off = 0
        while off + 16 <= len(pl):
            length, mtype, flags, _seq, _pid = NLMSG.unpack_from(pl, off)
            types.append(mtype)
            off += (length + 3) & ~3
    assert types[0] == 20
    assert types.count(3) == 2  # NLMSG_DONE per family (AF_INET, AF_INET6)
    assert types.count(20) == 33  # the 33 sockets `ss` lists for this capture


def test_timestamp_is_ns_from_usec_capture():
    first = next(iter(iter_netlink_packets(A4)))
    assert first.ts_ns == 1722876840 * 1_000_000_000 + 201010 * 1000


def test_bytes_and_memoryview_sources_match_path():
    raw = SMALL.read_bytes()
    want = [(p.ts_ns, bytes(p.payload)) for p in iter_netlink_packets(SMALL)]
    for src in (raw, bytearray(raw), memoryview(raw)):
        got = [(p.ts_ns, bytes(p.payload)) for p in iter_netlink_packets(src)]
        assert got == want
    # payloads are views into the caller's buffer, not copies
    p = next(iter(iter_netlink_packets(raw)))
    assert p.payload.obj is raw


def _reencode(raw: bytes, *, big: bool, nano: bool) -> bytes:
    """Rewrite a little-endian µs pcap's headers in another byte order / resolution."""
    e = ">" if big else "<"
    magic, vmaj, vmin, zone, sig, snap, link = struct.unpack_from("<IHHiIII", raw, 0)
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, vmaj, vmin, zone, sig, snap, link)]
    pos = 24
    while pos < len(raw):
        sec, usec, incl, orig = struct.unpack_from("<IIII", raw, pos)
        out.append(struct.pack(e + "IIII", sec, usec * 1000 if nano else usec, incl, orig))
        out.append(raw[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
    return b"".join(out)


@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_byte_orders_and_nanosecond_magic(big, nano):
    raw = SMALL.read_bytes()
    want = [(p.ts_ns, p.protocol, bytes(p.payload)) for p in iter_netlink_packets(raw)]
    data = _reencode(raw, big=big, nano=nano)
    pkts = list(iter_netlink_packets(data))
    assert [(p.ts_ns, p.protocol, bytes(p.payload)) for p in pkts] == want
    assert {p.byteorder for p in pkts} == {"big" if big else "little"}


def test_truncated_record_data_reports_offset_and_count(tmp_path):
    raw = SMALL.read_bytes()
    pkts = list(iter_netlink_packets(raw))
    last = pkts[-1]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: last.offset + 16 + 5])  # 5 bytes into the last record's data
    with pytest.raises(PcapError) as ei:
        list(iter_netlink_packets(cut))
    err = ei.value
    assert err.offset == last.offset + 16
    assert err.packets_read == len(pkts) - 1
    assert str(cut) in str(err)
    assert f"byte offset {last.offset + 16}" in str(err)
    assert f"after {len(pkts) - 1} complete packets" in str(err)


def test_truncated_record_header(tmp_path):
    raw = SMALL.read_bytes()
    second = list(iter_netlink_packets(raw))[1]
    cut = tmp_path / "hdr.pcap"
    cut.write_bytes(raw[: second.offset + 7])
    with pytest.raises(PcapError, match=r"truncated record header.*after 1 complete packets") as ei:
        list(iter_netlink_packets(cut))
    assert ei.value.offset == second.offset


def test_every_cut_raises_pcaperror_or_reads_a_prefix():
    """Cut at every byte of the first two records: a clean prefix or PcapError, never struct.error."""
    raw = A4.read_bytes()
    pkts = list(iter_netlink_packets(raw))
    boundaries = {24} | {p.offset + 16 + p.caplen for p in pkts}
    end = pkts[1].offset + 16 + pkts[1].caplen
    for n in range(0, end + 1):
        try:
            got = list(iter_netlink_packets(raw[:n]))
        except PcapError as e:
            assert n not in boundaries
            assert 0 <= e.offset <= n
        else:
            assert n in boundaries
            assert [bytes(p.payload) for p in got] == [bytes(p.payload) for p in pkts[: len(got)]]


def test_bad_magic(tmp_path):
    pcapng = tmp_path / "x.pcapng"
    pcapng.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(PcapError, match=r"byte offset 0: bad magic 0x0a0d0d0a") as ei:
        list(iter_netlink_packets(pcapng))
    assert ei.value.source == str(pcapng)
    with pytest.raises(PcapError, match="truncated pcap global header"):
        list(iter_netlink_packets(b"\xd4\xc3\xb2\xa1"))


def test_all_nul_capture_is_bad_magic():
    nul = [p for i, p, usable in capture_files() if not usable]
    for path in nul:
        with pytest.raises(PcapError, match="bad magic 0x00000000"):
            list(iter_netlink_packets(path))


def test_wrong_linktype_names_it_and_asks_for_nlmon():
    raw = bytearray(SMALL.read_bytes())
    struct.pack_into("<I", raw, 20, 1)  # LINKTYPE_ETHERNET
    with pytest.raises(PcapError, match=r"unsupported link type 1: .*nlmon") as ei:
        list(iter_netlink_packets(bytes(raw)))
    assert ei.value.offset == 20
    assert isinstance(ei.value, ValueError)


def test_record_shorter_than_cooked_header():
    raw = SMALL.read_bytes()
    bad = raw[:24] + struct.pack("<IIII", 1, 2, 8, 8) + bytes(8)
    with pytest.raises(PcapError, match="shorter than the 16-byte nlmon cooked header"):
        list(iter_netlink_packets(bad))


def test_response_payloads_protocol_filter():
    path = _id_path("5_15_164-tcp_10_sockets")
    everything = list(response_payloads(path, protocol=None))
    diag = list(response_payloads(path))
    assert len(everything) > len(diag)
    assert len(diag) == 5  # SOCK_DIAG responses only; NETLINK_ROUTE replies are left out
