"""Embedded ClickHouse sink (chDB): ``chdb:///path/to/dir[?ttl_days=N]``.

Creates database ``xtcp`` and the table from the generated DDL on connect, then inserts each
batch as one Arrow table built from numpy columns of the C records (``clickhouse.arrow_table``),
in a thread: the insert is ClickHouse work that releases the GIL, and the loop keeps polling.

A table (or database) that went missing (someone dropped it) is created again and the insert
retried; every other chDB error but a refused schema is retried by the base with backoff
(``clickhouse.errors``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .. import clickhouse
from ..clickhouse.errors import ClickHouseError
from ..errors import ConfigError
from .base import Payload, Sink
from .config import SinkConfig
from .encoded import Encoded

log = logging.getLogger("xtcp_uring.sinks")


@dataclass(kw_only=True)
class ChdbConfig(SinkConfig):
    path: str
    ttl_days: int | None = None
    database: str = clickhouse.DATABASE

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

    def prepare(self, encoded: Encoded) -> list[Payload]:
        table = encoded.arrow()
        return [Payload(table, table.nbytes, table.num_rows)]

    async def _connect(self) -> None:
        self.store = await asyncio.to_thread(clickhouse.open_store, self.config.path)
        await asyncio.to_thread(self.store.ensure_table, self.config.database, self.config.ttl_days)

    async def _write(self, table) -> None:
        await asyncio.to_thread(self._insert, table)

    def _insert(self, table) -> None:
        try:
            self.store.insert_arrow(table, self.config.database)
        except ClickHouseError as exc:
            if not exc.table_missing:
                raise
            log.warning("%s: %s.%s is missing (%s): creating it again", self.name, self.config.database,
                        clickhouse.TABLE, exc)
            self.store.ensure_table(self.config.database, self.config.ttl_days)
            self.store.insert_arrow(table, self.config.database)

    async def _disconnect(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            store.release()
