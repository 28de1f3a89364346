"""Embedded ClickHouse sink (chDB): ``chdb:///path/to/dir[?retention=7d&max_store_bytes=20G]``.

Creates database ``xtcp``, the record table and the rollups from the generated DDL on connect,
with the retention (default 7 days; ``retention=off`` keeps all; ``ttl_days=N`` is the older
spelling) applied to a store that exists too (``clickhouse.retention``), then inserts each
batch as Arrow record batches built from numpy columns of the C records as chDB reads them
(``clickhouse.arrow_reader``), in a thread: the insert is ClickHouse work that releases the
GIL, and the loop keeps polling. What this costs the daemon, and the store settings that cut
it, is in ``clickhouse.footprint``.

A table (or database) that went missing (someone dropped it) is created again and the insert
retried; every other chDB error but a refused schema is retried by the base with backoff
(``clickhouse.errors``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .. import clickhouse
from ..clickhouse import footprint, retention, rollups
from ..clickhouse.errors import ClickHouseError
from ..errors import ConfigError
from ..native import RECORD_SIZE
from .base import Payload, Sink, SinkStats
from .config import SinkConfig
from .encoded import Encoded

log = logging.getLogger("xtcp_uring.sinks")

SIZE_CHECK_EVERY_S = 30.0  # how often the store's size is held to max_store_bytes
# How often rollups.PRUNE_LAST runs. The Join engine behind xtcp_socket_last keeps every row
# inserted into it, superseded ones too (~55 bytes per record: 5.6 MB per 100k-socket poll,
# measured from system.tables.total_bytes), until a mutation rebuilds it from its live entries;
# hourly that was gigabytes. The rebuild costs ~10 ms per 30k sockets.
PRUNE_EVERY_S = 30.0


@dataclass(kw_only=True)
class ChdbConfig(SinkConfig):
    path: str
    retention: str | None = retention.DEFAULT_RETENTION  # a duration (7d, 12h) or "off"
    ttl_days: int | None = None  # the older spelling of retention, in days
    max_store_bytes: int | None = None  # drop the oldest record partitions past this
    database: str = clickhouse.DATABASE

    def validate(self) -> None:
        super().validate()
        if self.ttl_days is not None and self.ttl_days <= 0:
            raise ConfigError(f"{self.url}: ttl_days must be positive")
        retention.parse_retention(self.retention, f"{self.url}: retention")
        if self.max_store_bytes is not None and self.max_store_bytes <= 0:
            raise ConfigError(f"{self.url}: max_store_bytes must be positive, e.g. 20G")

    @property
    def retention_s(self) -> int | None:
        """Seconds rows are kept; None: forever."""
        if self.ttl_days is not None:
            return self.ttl_days * 86400
        return retention.parse_retention(self.retention)

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "ChdbConfig":
        path = u.netloc + u.path  # chdb:///abs/dir, or chdb://rel/dir relative to the cwd
        if not path:
            raise ConfigError(f"{url}: expected chdb:///path/to/dir")
        return cls._build(url, u.query, opts, path=path)


class ChdbSink(Sink):
    scheme = "chdb"
    Config = ChdbConfig
    config: ChdbConfig

    def __init__(self, config: ChdbConfig):
        super().__init__(config)
        self.store: clickhouse.Store | None = None
        self.stats = StoreStats()
        self._size_checked = 0.0
        self._pruned = time.monotonic()
        self._paged_out = False

    def prepare(self, encoded: Encoded) -> list[Payload]:
        # The batch itself: its Arrow columns are made as chDB reads them (clickhouse.arrow_reader),
        # a fresh reader per attempt. Its size is that of its C records, which it keeps alive.
        batch = encoded.batch
        return [Payload(batch, len(batch) * RECORD_SIZE, len(batch))]

    async def _connect(self) -> None:
        self.store = await asyncio.to_thread(clickhouse.open_store, self.config.path)
        await asyncio.to_thread(self.store.ensure_table, self.config.database,
                                retention_s=self.config.retention_s)
        await asyncio.to_thread(self._hold_size, True)

    async def _write(self, batch) -> None:
        await asyncio.to_thread(self._insert, batch)
        if not self._paged_out:  # once: what start-up and the first insert touched of chDB's and pyarrow's code
            self._paged_out = True
            await asyncio.to_thread(footprint.page_out_libraries)
        await asyncio.to_thread(self._hold_size)
        await asyncio.to_thread(self._prune_last_samples)

    def _prune_last_samples(self) -> None:
        """Every PRUNE_EVERY_S: forget the previous samples of sockets gone for an hour
        (rollups.PRUNE_LAST), which also rebuilds the in-memory Join without the rows later
        samples replaced (see PRUNE_EVERY_S)."""
        if time.monotonic() - self._pruned < PRUNE_EVERY_S:
            return
        self._pruned = time.monotonic()
        try:
            self.store.query(rollups.PRUNE_LAST.replace("{db}", self.config.database))
        except ClickHouseError as exc:  # the next hour tries again; entries only cost memory meanwhile
            log.warning("%s: could not prune %s: %s", self.name, rollups.LAST_TABLE, exc)

    def _hold_size(self, now: bool = False) -> None:
        """Every SIZE_CHECK_EVERY_S: drop the oldest record partitions past max_store_bytes."""
        limit = self.config.max_store_bytes
        if limit is None or (not now and time.monotonic() - self._size_checked < SIZE_CHECK_EVERY_S):
            return
        self._size_checked = time.monotonic()
        try:
            dropped, left = retention.enforce_max_bytes(self.store, self.config.database, limit)
        except ClickHouseError as exc:  # the insert went in; the next check tries again
            log.warning("%s: could not hold the store to max_store_bytes: %s", self.name, exc)
            return
        self.stats.partitions_dropped += len(dropped)
        self.stats.store_bytes = left
        if left > limit and not self.stats.over_limit_warned:
            self.stats.over_limit_warned = True
            log.warning("%s: the store takes %.1f MB with only the current hour of records and the rollups left, "
                        "above max_store_bytes (%.1f MB): raise --max-store-bytes", self.name, left / 1e6,
                        limit / 1e6)

    def _insert(self, batch) -> None:
        try:
            self.store.insert_batch(batch, self.config.database)
        except ClickHouseError as exc:
            if not exc.table_missing:
                raise
            log.warning("%s: %s.%s is missing (%s): creating it again", self.name, self.config.database,
                        clickhouse.TABLE, exc)
            self.store.ensure_table(self.config.database, retention_s=self.config.retention_s)
            self.store.insert_batch(batch, self.config.database)

    async def _disconnect(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            store.release()


@dataclass
class StoreStats(SinkStats):
    partitions_dropped: int = 0  # record partitions dropped to stay under max_store_bytes
    store_bytes: int = 0  # bytes on disk at the last size check
    over_limit_warned: bool = False
