"""The embedded store stays bounded: retention on new and existing stores, the byte bound, and a
store of the old layout moved aside, all through the chDB sink the daemon uses."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time

import pytest

from golden import cases
from xtcp_uring import clickhouse, records
from xtcp_uring.clickhouse import retention, rollups
from xtcp_uring.app.metrics import Metrics
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.sinks import open_sink

pytest.importorskip("chdb")

CAPTURE = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"
HOUR_NS = 3600 * 10**9
RECORDS = 909  # sockets in CAPTURE
# The record table's keys before #14 (time first, a partition per day).
PRE14_ORDER = "ORDER BY (hostname, netns, timestamp_ns, inet_diag_msg_socket_cookie)"
PRE14_PARTITION = "PARTITION BY toDate(intDiv(timestamp_ns, 1000000000))"


def batch_at(timestamp_ns: int, poll_id: int) -> records.Batch:
    dump = records.decode_buffers([bytes(p) for p in response_payloads(CAPTURE)], strict=False,
                                  labels=records.encode_labels(hostname="h1", netns="ns", poll_id=poll_id,
                                                               timestamp_ns=timestamp_ns))
    return records.Batch([dump], poll_id=poll_id)


def scalar(store, sql: str) -> str:
    return store.query(sql, "TabSeparatedRaw").bytes().decode().strip()


async def deliver(url: str, *batches, **opts):
    sink = open_sink(url, **opts)
    async with sink:
        for b in batches:
            await sink.send(b)
        await sink.flush(timeout=60)
    return sink


def wait_for(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


async def test_retention_is_applied_to_an_existing_store(tmp_path):
    url = f"chdb://{tmp_path}/store"
    now = time.time_ns()
    await deliver(url, batch_at(now - 3 * 24 * HOUR_NS, 1), batch_at(now, 2), retention="30d")
    store = clickhouse.open_store(tmp_path / "store")
    try:
        assert scalar(store, "SELECT count() FROM xtcp.xtcp_records") == str(2 * RECORDS)
    finally:
        store.release()

    # Reopened with a shorter retention: the TTL changes and the 3-day-old rows go.
    await deliver(url, retention="2d")
    store = clickhouse.open_store(tmp_path / "store")
    try:
        assert "toIntervalSecond(172800)" in scalar(
            store, "SELECT engine_full FROM system.tables WHERE database = 'xtcp' AND name = 'xtcp_records'")
        wait_for(lambda: scalar(store, "SELECT count() FROM xtcp.xtcp_records") == str(RECORDS))
    finally:
        store.release()


def test_retention_flag_is_checked_before_anything_starts(tmp_path):
    for flag, value in (("--retention", "7x"), ("--retention", "-1d"), ("--max-store-bytes", "lots")):
        proc = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--sink", f"chdb://{tmp_path}/s",
                               f"{flag}={value}"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 64, proc.stderr
        assert proc.stderr.count("\n") == 1 and flag in proc.stderr and "Traceback" not in proc.stderr
    assert retention.parse_retention("12h") == 43200 and retention.parse_retention("off") is None


def test_the_flags_reach_the_store_and_the_records(tmp_path):
    # app/options.py hands --retention to the chdb sink and --location, --emit to the Poller.
    listener = socket.create_server(("127.0.0.1", 0))  # at least one socket in this namespace
    with listener:
        proc = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", "host", "--uring", "off",
                               "--sink", f"chdb://{tmp_path}/s", "--retention", "2d", "--location", "dc-flag",
                               "--emit", "changed", "--keyframe-every", "5"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    store = clickhouse.open_store(tmp_path / "s")
    try:
        assert "toIntervalSecond(172800)" in scalar(
            store, "SELECT engine_full FROM system.tables WHERE database = 'xtcp' AND name = 'xtcp_records'")
        rows = int(scalar(store, "SELECT count() FROM xtcp.xtcp_records WHERE location = 'dc-flag'"))
        assert rows > 0  # the first poll of --emit changed sends every socket (all new)
        assert scalar(store, f"SELECT location, sum(samples) FROM xtcp.{rollups.MINUTE_TABLE} GROUP BY location"
                      ).split() == ["dc-flag", str(rows)]
    finally:
        store.release()


async def test_max_store_bytes_drops_the_oldest_hours_first(tmp_path, caplog):
    url = f"chdb://{tmp_path}/store"
    now = time.time_ns()
    hours = [now - k * HOUR_NS for k in (5, 4, 3, 2, 1, 0)]
    await deliver(url, *(batch_at(ts, i) for i, ts in enumerate(hours, 1)))
    caplog.set_level(logging.INFO)
    # A bound the newest hour and the rollups alone exceed: every older hour goes, in order.
    sink = await deliver(url, max_store_bytes=1)
    assert sink.stats.partitions_dropped == 5
    assert "above max_store_bytes" in caplog.text
    dropped = [r.getMessage() for r in caplog.records if "dropped xtcp.xtcp_records partition" in r.getMessage()]
    assert [m.split(" partition ")[1].split(" ")[0] for m in dropped] == [str(ts // HOUR_NS) for ts in hours[:5]]
    metrics = Metrics()
    metrics.observe_sinks({sink.name: sink.stats})
    assert metrics.store_partitions_dropped.labels(sink.name)._value.get() == 5
    store = clickhouse.open_store(tmp_path / "store")
    try:
        assert scalar(store, "SELECT DISTINCT poll_id FROM xtcp.xtcp_records") == "6"
        # The rollups keep the hours the raw table lost.
        assert scalar(store, f"SELECT sum(samples) FROM xtcp.{rollups.MINUTE_TABLE}") == str(6 * RECORDS)
    finally:
        store.release()


async def test_a_store_of_the_old_layout_is_moved_aside(tmp_path, caplog):
    store = clickhouse.open_store(tmp_path / "store")
    try:
        store.query("CREATE DATABASE xtcp")
        old = clickhouse.table_ddl().replace("SETTINGS ttl_only_drop_parts = 1", "")
        old = old.replace(old[old.index("PARTITION BY"):old.index("\n", old.index("ORDER BY"))],
                          f"{PRE14_PARTITION}\n{PRE14_ORDER}")
        store.query(old)
        store.insert_arrow(clickhouse.arrow_table(batch_at(time.time_ns(), 1)))
    finally:
        store.release()

    caplog.set_level(logging.INFO)
    await deliver(f"chdb://{tmp_path}/store", batch_at(time.time_ns(), 2))
    (warning,) = [r.getMessage() for r in caplog.records if "moved it to" in r.getMessage()]
    moved = warning.split("moved it to xtcp.")[1].split(" ")[0]
    assert moved.startswith("xtcp_records_before_")
    store = clickhouse.open_store(tmp_path / "store")
    try:
        assert scalar(store, f"SELECT DISTINCT poll_id FROM xtcp.{moved}") == "1"  # old rows kept
        assert scalar(store, "SELECT DISTINCT poll_id FROM xtcp.xtcp_records") == "2"
        assert scalar(store, "SELECT sorting_key FROM system.tables WHERE database = 'xtcp' AND "
                             "name = 'xtcp_records'").startswith("hostname, netns, intDiv(timestamp_ns")
        assert "toIntervalSecond(604800)" in scalar(  # the default retention holds for it too
            store, f"SELECT engine_full FROM system.tables WHERE database = 'xtcp' AND name = '{moved}'")
        # The rollups follow the new table.
        assert scalar(store, f"SELECT sum(samples) FROM xtcp.{rollups.MINUTE_TABLE}") == str(RECORDS)
    finally:
        store.release()
