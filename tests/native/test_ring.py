"""ring.py without sockets: the user_data codec (Python and C agree), and the C ring's
bookkeeping of completions that name no job. Needs io_uring for the ring part, not root."""

from __future__ import annotations

import errno
import itertools
import time

import pytest

from xtcp_uring.native import ring
from xtcp_uring.native import ffi, lib
from xtcp_uring.native.ring import (NET_ID_MAX, OP_CANCEL, OP_CLOSE, OP_MAX, OP_NOP, OP_RECV, OP_SEND,
                             REQUEST_ID_MAX, pack_user_data, unpack_user_data)

OPS = [0, 1, OP_SEND, OP_RECV, OP_CANCEL, OP_NOP, 0x7F, 0x80, OP_MAX - 1, OP_MAX]
REQUESTS = [0, 1, 0x7FFFFF, 0x800000, REQUEST_ID_MAX - 1, REQUEST_ID_MAX]
NETS = [0, 1, 0x7FFFFFFF, 0x80000000, NET_ID_MAX - 1, NET_ID_MAX]


def test_constants_match_c():
    assert (ring.OP_NONE, OP_SEND, OP_RECV, OP_CANCEL, OP_NOP) == (
        lib.XTCP_RING_OP_NONE, lib.XTCP_RING_OP_SEND, lib.XTCP_RING_OP_RECV,
        lib.XTCP_RING_OP_CANCEL, lib.XTCP_RING_OP_NOP)
    assert (OP_MAX, REQUEST_ID_MAX, NET_ID_MAX) == (
        lib.XTCP_RING_OP_MAX, lib.XTCP_RING_REQUEST_MAX, lib.XTCP_RING_NET_MAX)
    assert lib.XTCP_RING_OP_BITS + lib.XTCP_RING_REQUEST_BITS + lib.XTCP_RING_NET_BITS == 64


@pytest.mark.parametrize("op,request_id,net_id", list(itertools.product(OPS, REQUESTS, NETS)))
def test_round_trip_boundaries(op, request_id, net_id):
    u = pack_user_data(op, request_id, net_id)
    assert 0 <= u < 1 << 64
    assert unpack_user_data(u) == (op, request_id, net_id)
    # The C side (ring.h, used for every SQE) packs the same bits.
    assert lib.xtcp_ring_pack(op, request_id, net_id) == u
    assert (lib.xtcp_ring_unpack_op(u), lib.xtcp_ring_unpack_request(u), lib.xtcp_ring_unpack_net(u)) == (
        op, request_id, net_id)


def test_field_positions():
    assert pack_user_data(OP_MAX, 0, 0) == 0xFF << 56
    assert pack_user_data(0, REQUEST_ID_MAX, 0) == 0xFFFFFF << 32
    assert pack_user_data(0, 0, NET_ID_MAX) == 0xFFFFFFFF
    assert pack_user_data(OP_MAX, REQUEST_ID_MAX, NET_ID_MAX) == (1 << 64) - 1
    assert pack_user_data(OP_RECV, 0x123456, 0x89ABCDEF) == 0x02_123456_89ABCDEF
    assert unpack_user_data((1 << 64) - 1) == (OP_MAX, REQUEST_ID_MAX, NET_ID_MAX)
    assert unpack_user_data(0) == (0, 0, 0)


@pytest.mark.parametrize("args", [
    (OP_MAX + 1, 0, 0), (-1, 0, 0),
    (0, REQUEST_ID_MAX + 1, 0), (0, -1, 0),
    (0, 0, NET_ID_MAX + 1), (0, 0, -1),
    (1 << 64, 1 << 64, 1 << 64),
])
def test_pack_rejects_out_of_range(args):
    with pytest.raises(ValueError, match="out of range"):
        pack_user_data(*args)


@pytest.mark.parametrize("u", [-1, 1 << 64, 1 << 70])
def test_unpack_rejects_out_of_range(u):
    with pytest.raises(ValueError, match="out of range"):
        unpack_user_data(u)


@pytest.mark.parametrize("args", [(1.0, 0, 0), (0, "1", 0), (0, 0, None), (True, 0, 0)])
def test_pack_rejects_non_int(args):
    with pytest.raises(TypeError):
        pack_user_data(*args)


@pytest.fixture(params=[0, lib.XTCP_RING_DECODE_THREAD], ids=["inline-decode", "decode-thread"])
def raw_ring(request):
    err = ffi.new("int *")
    r = lib.xtcp_ring_new(8, request.param, err)
    if r == ffi.NULL:
        pytest.skip(f"io_uring unavailable: errno {err[0]}")
    yield r
    lib.xtcp_ring_free(r)


def _reap_all(r, expect_cqes):
    events = ffi.new("struct xtcp_ring_event[]", 4)
    st = ffi.new("struct xtcp_ring_stats *")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert lib.xtcp_ring_reap(r, events, 4, 0) == 0
        lib.xtcp_ring_stats(r, st)
        if st.cqes >= expect_cqes:
            return st
        time.sleep(0.001)
    raise AssertionError(f"only {st.cqes} of {expect_cqes} CQEs came")


def test_unknown_completions_are_counted_not_fatal(raw_ring):
    foreign = [
        0,  # op NONE
        pack_user_data(OP_RECV, 5, 9),  # a job index that does not exist
        pack_user_data(OP_SEND, 0, 0),
        pack_user_data(0xEE, 0, 0),  # an op we never issue
        pack_user_data(OP_CLOSE, 0, 0),  # a close subscription's RECV, with no subscription
    ]
    for u in foreign:
        assert lib.xtcp_ring_queue_nop(raw_ring, u) == 0
    assert lib.xtcp_ring_queue_nop(raw_ring, pack_user_data(OP_NOP, 0, 0)) == 0  # ours
    assert lib.xtcp_ring_submit(raw_ring) == 6
    st = _reap_all(raw_ring, 5)
    assert st.unknown_completions == len(foreign)
    assert lib.xtcp_ring_pending(raw_ring) == 0
    assert lib.xtcp_ring_reset(raw_ring) == 0


def test_more_jobs_than_sq_entries_are_queued_in_order(raw_ring):
    """The SQ holds 8 entries; 20 jobs on bad fds still all complete, each with EBADF."""
    req = bytes(72)
    for i in range(20):
        assert lib.xtcp_ring_add_job(raw_ring, i, -1, req, len(req), 2, b"", 0) == i
    lib.xtcp_ring_submit(raw_ring)
    events = ffi.new("struct xtcp_ring_event[]", 20)
    seen = {}
    deadline = time.monotonic() + 10
    while len(seen) < 20 and time.monotonic() < deadline:
        k = lib.xtcp_ring_reap(raw_ring, events, 20, 0)
        for i in range(k):
            seen[events[i].job] = (events[i].net_id, events[i].error)
        if not k:
            time.sleep(0.001)
    assert seen == {i: (i, errno.EBADF) for i in range(20)}
    out = ffi.new("struct xtcp_ring_output *")
    assert lib.xtcp_ring_job_take(raw_ring, 0, out) == 0
    assert (out.count, out.records, out.encoded_len, out.encoded) == (0, ffi.NULL, 0, ffi.NULL)
    assert lib.xtcp_ring_job_take(raw_ring, 0, out) == -errno.ENOENT  # handed over once only
    assert lib.xtcp_ring_job_take(raw_ring, 20, out) == -errno.ENOENT
    assert lib.xtcp_ring_reset(raw_ring) == 0


def test_set_output_accepts_only_whole_dump_framings_and_known_layouts(raw_ring):
    for framing in (lib.XTCP_RING_NO_ENCODE, lib.XTCP_FRAME_DELIMITED, lib.XTCP_FRAME_ENVELOPE_ROWS):
        assert lib.xtcp_ring_set_output(raw_ring, lib.XTCP_TCP_INFO_LAYOUT_7_0, framing) == 0
    assert lib.xtcp_ring_set_output(raw_ring, 0, lib.XTCP_FRAME_SINGLE) == -errno.EINVAL
    assert lib.xtcp_ring_set_output(raw_ring, 0, 7) == -errno.EINVAL
    assert lib.xtcp_ring_set_output(raw_ring, 9, lib.XTCP_FRAME_DELIMITED) == -errno.EINVAL
