"""The buffer pool: big record arrays are reused across polls, and views keep theirs alive."""

import gc
from pathlib import Path

import numpy as np

from xtcp_uring import native, records
from xtcp_uring.pcap import response_payloads

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
