"""The chDB sink outlives what a disk, a mount or an operator does to its store: a full
filesystem, a read-only remount, too many open files, a dropped table. Batches stay queued
and are delivered when the fault passes, none lost; only a batch the table refuses is
rejected, and counted apart. Real tmpfs mounts (root), real chDB."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess

import pytest

from integration.test_sinks_chdb import make_batch
from xtcp_uring import clickhouse
from xtcp_uring.clickhouse import errors as ch_errors
from xtcp_uring.sinks import open_sink

pytest.importorskip("chdb")
pytestmark = pytest.mark.root

RECORDS = 909  # per make_batch() copy
FAST_RETRY = {"retry_initial_s": 0.05, "retry_max_s": 0.2}


@contextlib.contextmanager
def tmpfs(path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory) -> str:
    """Write a file until the filesystem is full; returns its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
    return path


async def wait_until(predicate, sink, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"condition not reached: {sink.stats}"
        await asyncio.sleep(0.05)


def stored(sink, poll_ids) -> int:
    ids = ", ".join(map(str, poll_ids))
    return int(sink.store.query(f"SELECT count() FROM xtcp.xtcp_records WHERE poll_id IN ({ids})").bytes())


def assert_waiting(sink, batches: int) -> None:
    """Everything sent during the fault is still queued or in flight: nothing dropped or refused."""
    st = sink.stats
    assert st.queue_batches + st.inflight_batches == batches, st
    assert st.dropped_batches == st.rejected_batches == 0, st


async def test_full_disk_keeps_batches_queued_then_delivers_them_all(tmp_path):
    with tmpfs(tmp_path / "fs", "48m") as fs:
        async with open_sink(f"chdb://{fs}/store", **FAST_RETRY) as sink:
            await sink.send(make_batch(1))
            await sink.flush(timeout=60)
            filler = fill(fs)
            for poll_id in range(2, 6):
                await sink.send(make_batch(poll_id))
            await wait_until(lambda: sink.stats.errors >= 3, sink)
            assert_waiting(sink, 4)
            assert sink.stats.sent_batches == 1
            os.unlink(filler)
            await sink.flush(timeout=60)
            assert sink.stats.sent_batches == 5 and sink.stats.rejected_batches == sink.stats.dropped_batches == 0
            assert stored(sink, range(1, 6)) == 5 * RECORDS


async def test_read_only_remount_keeps_batches_queued_then_delivers_them(tmp_path):
    data = tmp_path / "store"
    # chDB writes parts under <data>/store; its lock file stays open for writing in <data>,
    # which would keep the whole directory from being remounted read-only.
    with tmpfs(data / "store", "64m") as parts:
        async with open_sink(f"chdb://{data}", **FAST_RETRY) as sink:
            await sink.send(make_batch(11))
            await sink.flush(timeout=60)
            subprocess.run(["mount", "-o", "remount,ro", str(parts)], check=True)
            try:
                for poll_id in (12, 13):
                    await sink.send(make_batch(poll_id))
                await wait_until(lambda: sink.stats.errors >= 3, sink)
                assert_waiting(sink, 2)
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(parts)], check=True)
            await sink.flush(timeout=60)
            assert sink.stats.sent_batches == 3 and sink.stats.rejected_batches == 0
            assert stored(sink, (11, 12, 13)) == 3 * RECORDS


async def test_too_many_open_files_is_retried(tmp_path):
    async with open_sink(f"chdb://{tmp_path}/store", **FAST_RETRY) as sink:
        await sink.send(make_batch(21))
        await sink.flush(timeout=60)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        batch = make_batch(22)
        lowest_free = os.dup(0)  # a new fd takes the lowest free number: none may open past it
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await sink.send(batch)
            await wait_until(lambda: sink.stats.errors >= 2, sink)
            assert_waiting(sink, 1)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await sink.flush(timeout=60)
        assert sink.stats.sent_batches == 2 and sink.stats.rejected_batches == 0
        assert stored(sink, (21, 22)) == 2 * RECORDS


@pytest.mark.parametrize("drop", ["DROP TABLE xtcp.xtcp_records SYNC", "DROP DATABASE xtcp SYNC"])
async def test_a_dropped_table_is_created_again_and_ingestion_goes_on(tmp_path, drop):
    async with open_sink(f"chdb://{tmp_path}/store", **FAST_RETRY) as sink:
        await sink.send(make_batch(31))
        await sink.flush(timeout=60)
        sink.store.query(drop)
        await sink.send(make_batch(32))
        await sink.send(make_batch(33))
        await sink.flush(timeout=60)
        assert sink.stats.sent_batches == 3 and sink.stats.rejected_batches == sink.stats.dropped_batches == 0
        assert stored(sink, (32, 33)) == 2 * RECORDS


async def test_only_a_batch_the_table_refuses_is_rejected_and_counted_apart(tmp_path):
    async with open_sink(f"chdb://{tmp_path}/store", **FAST_RETRY) as sink:
        # A table someone made with another column set: our batches never fit it.
        sink.store.query("DROP TABLE xtcp.xtcp_records SYNC")
        sink.store.query("CREATE TABLE xtcp.xtcp_records (hostname String) ENGINE = Memory")
        await sink.send(make_batch(41))
        await sink.flush(timeout=60)
        st = sink.stats
        assert (st.rejected_batches, st.rejected_records, st.sent_batches, st.dropped_batches) == (1, RECORDS, 0, 0)


def test_error_codes_are_chdbs(tmp_path):
    """Every code the classifier names is the one chDB's own error table gives that name."""
    store = clickhouse.open_store(tmp_path / "store")
    try:
        named = {**ch_errors.SCHEMA_REJECTED, ch_errors.UNKNOWN_TABLE: "UNKNOWN_TABLE",
                 ch_errors.UNKNOWN_DATABASE: "UNKNOWN_DATABASE"}
        rows = store.query("SELECT DISTINCT code, name FROM system.errors "
                           "SETTINGS system_events_show_zero_values = 1", "TSV").bytes().decode()
        chdb_names = {int(code): name for code, name in (line.split("\t") for line in rows.splitlines())}
        assert {code: chdb_names.get(code) for code in named} == named
    finally:
        store.release()
