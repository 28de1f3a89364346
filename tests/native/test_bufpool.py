"""The buffer pool: big record arrays are reused across polls, and views keep theirs alive."""

import gc
from pathlib import Path

import numpy as np

from xtcp_uring import native, records
from xtcp_uring.wire.pcap import response_payloads

CAPTURE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2" / "6_6_44" / "tcp_1000_sockets.pcap"


def big_dump() -> records.Dump:
    # ~9,000 records = ~4.6 MB of records: above the pool's 1 MiB floor.
    return records.decode_buffers([bytes(p) for p in response_payloads(CAPTURE)], strict=False)


def test_a_dropped_dump_gives_its_array_to_the_next_one():
    first = big_dump()
    gc.collect()
    before = native.pool_stats()
    del first
    gc.collect()
    assert native.pool_stats()["kept_blocks"] == before["kept_blocks"] + 1
    second = big_dump()
    after = native.pool_stats()
    assert after["reused"] == before["reused"] + 1
    assert second.count > 8000


def test_a_numpy_view_keeps_the_records_alive_after_its_dump_is_gone():
    dump = big_dump()
    rtt = dump.array()["tcp_info_rtt"]
    want = rtt.copy()
    del dump
    gc.collect()
    other = big_dump()  # would take the same block if the view did not hold it
    other.array()["tcp_info_rtt"][:] = 12345
    assert np.array_equal(rtt, want)


def test_the_pool_is_bounded():
    kept = [big_dump() for _ in range(12)]
    del kept
    gc.collect()
    s = native.pool_stats()
    assert s["kept_blocks"] <= 4 and s["kept_bytes"] <= 192 << 20


def test_a_block_serves_only_its_own_kind():
    """Record arrays and encoded bytes keep to their own blocks: a block lent to the other kind
    would keep the pages of its bigger role resident for nothing (the soak's RSS)."""
    from xtcp_uring.native import lib

    gc.collect()
    lib.xtcp_pool_drain()  # only this test's block in the pool
    p = lib.xtcp_buf_alloc(3 << 20, lib.XTCP_BUF_RECORDS)
    lib.xtcp_buf_free(p)
    before = native.pool_stats()
    q = lib.xtcp_buf_alloc(2 << 20, lib.XTCP_BUF_ENCODED)
    assert native.pool_stats()["reused"] == before["reused"]  # not the records block
    r = lib.xtcp_buf_alloc(2 << 20, lib.XTCP_BUF_RECORDS)
    assert native.pool_stats()["reused"] == before["reused"] + 1
    assert r == p
    lib.xtcp_buf_free(q)
    lib.xtcp_buf_free(r)


def test_growing_keeps_the_contents_through_every_path():
    """Small (malloc) -> mapped -> mapped again (mremap) -> a kept block: same bytes."""
    from xtcp_uring.native import ffi, lib

    gc.collect()
    lib.xtcp_pool_drain()
    pattern = bytes(range(256)) * 1000  # 256,000 bytes
    p = lib.xtcp_buf_alloc(len(pattern), lib.XTCP_BUF_OTHER)
    ffi.memmove(p, pattern, len(pattern))
    for size in (700_000, 3 << 20, 9 << 20):
        p = lib.xtcp_buf_grow(p, size, lib.XTCP_BUF_OTHER)
        assert p != ffi.NULL and lib.xtcp_buf_cap(p) >= size
        assert ffi.buffer(p, len(pattern))[:] == pattern
    lib.xtcp_buf_free(p)  # kept: 9 MB
    small = lib.xtcp_buf_alloc(len(pattern), lib.XTCP_BUF_OTHER)
    ffi.memmove(small, pattern, len(pattern))
    big = lib.xtcp_buf_grow(small, 5 << 20, lib.XTCP_BUF_OTHER)  # takes the kept 9 MB block
    assert big == p and ffi.buffer(big, len(pattern))[:] == pattern
    lib.xtcp_buf_free(big)
