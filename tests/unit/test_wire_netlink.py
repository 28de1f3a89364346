"""wire.netlink: the header walk over real captures and over bytes that lie about their length."""

from __future__ import annotations

import pytest

from golden import cases
from xtcp_uring.errors import DecodeError
from xtcp_uring.wire.netlink import (NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSGHDR,
                                     NLMSGHDR_LEN, SOCK_DIAG_BY_FAMILY, header, message_seq, set_seq, walk)
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.wire.request import AF_INET, build_request

ROOT = cases.testdata_root()


def test_a_request_is_one_message_and_its_seq_can_be_restamped():
    req = build_request(AF_INET, seq=7)
    ((offset, hdr),) = list(walk(req))
    assert offset == 0 and hdr.len == len(req) and hdr.type == SOCK_DIAG_BY_FAMILY
    assert hdr.flags == NLM_F_REQUEST | NLM_F_DUMP and message_seq(req) == 7
    assert message_seq(set_seq(req, 0xFFFFFFFF)) == 0xFFFFFFFF and len(set_seq(req, 1)) == len(req)


@pytest.mark.skipif(not ROOT.is_dir(), reason=f"no test data at {ROOT}")
def test_every_captured_reply_walks_to_its_end_message_by_message():
    pcaps = [path for _, path, usable in cases.capture_files() if usable]
    dones = 0
    for pcap in pcaps:
        types = []
        for payload in response_payloads(pcap):
            end = 0
            for offset, hdr in walk(payload):
                assert offset >= end and hdr.flags & NLM_F_MULTI
                end = offset + hdr.len
                types.append(hdr.type)
            assert end <= len(payload) < end + 4  # whole messages, at most the last one's padding
        assert set(types) <= {SOCK_DIAG_BY_FAMILY, NLMSG_DONE, NLMSG_ERROR}, pcap.name  # none: requests only
        dones += types.count(NLMSG_DONE)
    assert dones >= len(pcaps) // 2, "most captures hold whole dumps"


@pytest.mark.parametrize("length", [0, NLMSGHDR_LEN - 1, 64])
def test_a_length_below_the_header_or_past_the_end_stops_the_walk_where_it_lies(length):
    good = build_request(AF_INET)
    lying = NLMSGHDR.pack(length, NLMSG_DONE, NLM_F_MULTI, 1, 0) + bytes(20 if length == 64 else 4)
    with pytest.raises(DecodeError) as err:
        list(walk(good + lying))
    assert err.value.offset == len(good)


def test_a_short_tail_is_not_a_header():
    assert header(b"\x10\x00\x00", 0) is None
    assert list(walk(bytes(NLMSGHDR_LEN - 1))) == []
