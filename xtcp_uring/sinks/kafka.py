"""Kafka sink (aiokafka): each message is one ClickHouse ProtobufList message.

``kafka://host:port[,host:port]/topic?compression=zstd&acks=1&linger_ms=5&max_request_size=1M
&records_per_message=0``. A batch becomes messages of at most ``records_per_message`` records
(0: no limit) that fit ``max_request_size``, split at record boundaries; the key is the host
name and the header ``schema_version`` carries ``schema.SCHEMA_VERSION``. A ClickHouse Kafka
engine table with ``kafka_format = 'ProtobufList'`` reads them as they are
(``examples/clickhouse/kafka_pipeline.sql``).

aiokafka reconnects by itself after a broker outage; until then writes time out and the base
retries them while the bounded queue covers the gap. Delivery is at least once: a write that
timed out may still land, and its retry then duplicates it.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import schema
from ..errors import ConfigError
from .base import Encoded, Payload, Sink, SinkConfig

_COMPRESSION = ("zstd", "lz4", "gzip", "snappy", "none")
# Room left in max_request_size for the record batch header, key and headers.
_REQUEST_OVERHEAD = 1024


@dataclass(kw_only=True)
class KafkaConfig(SinkConfig):
    bootstrap: str
    topic: str
    compression: str = "zstd"  # zstd, lz4 and snappy need cramjam; gzip is stdlib
    acks: str = "1"  # 0, 1 or all
    linger_ms: int = 5
    max_request_size: int = 1 << 20  # also Kafka's default message.max.bytes
    records_per_message: int = 0  # 0: as many as fit max_request_size
    request_timeout_ms: int = 10_000
    key: str = ""  # default: this host's name
    client_id: str = "xtcp_uring"

    @classmethod
    def from_url(cls, url: str, **opts) -> "KafkaConfig":
        u = urlsplit(url)
        topic = u.path.strip("/")
        if not u.netloc or not topic or "/" in topic:
            raise ConfigError(f"{url}: expected kafka://host:port[,host:port]/topic")
        return cls._build(url, u.query, opts, bootstrap=u.netloc, topic=topic)

    def validate(self) -> None:
        super().validate()
        if self.compression not in _COMPRESSION:
            raise ConfigError(f"{self.url}: compression must be one of {', '.join(_COMPRESSION)}")
        try:
            from aiokafka import codec
        except ImportError:
            raise ConfigError(f"{self.url}: aiokafka is not installed: pip install 'xtcp_uring[kafka]'") from None
        if self.compression in ("zstd", "lz4", "snappy"):
            if not codec.has_zstd():  # cramjam provides all three
                raise ConfigError(f"{self.url}: compression={self.compression} needs cramjam "
                                  "(pip install cramjam), or use compression=gzip|none")
        if self.acks not in ("0", "1", "all"):
            raise ConfigError(f"{self.url}: acks must be 0, 1 or all")
        if self.max_request_size <= 2 * _REQUEST_OVERHEAD:
            raise ConfigError(f"{self.url}: max_request_size too small")
        if self.records_per_message < 0:
            raise ConfigError(f"{self.url}: records_per_message must be >= 0")


class KafkaSink(Sink):
    scheme = "kafka"
    Config = KafkaConfig
    config: KafkaConfig

    def __init__(self, config: KafkaConfig):
        super().__init__(config)
        self._producer = None
        self._key = (config.key or socket.gethostname()).encode()
        self._headers = [("schema_version", str(schema.SCHEMA_VERSION).encode())]

    @property
    def encoding(self) -> str | None:
        return "envelope"

    def prepare(self, encoded: Encoded) -> list[Payload]:
        c = self.config
        messages = encoded.protobuf_list(c.records_per_message, c.max_request_size - _REQUEST_OVERHEAD)
        if not messages:
            return []
        # One payload per batch: its messages go out together and are retried together.
        return [Payload([m for m, _ in messages], sum(len(m) for m, _ in messages), sum(n for _, n in messages))]

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaProducer

        c = self.config
        self._producer = AIOKafkaProducer(
            bootstrap_servers=c.bootstrap.split(","),
            client_id=c.client_id,
            acks=int(c.acks) if c.acks != "all" else "all",
            compression_type=None if c.compression == "none" else c.compression,
            linger_ms=c.linger_ms,
            max_request_size=c.max_request_size,
            request_timeout_ms=c.request_timeout_ms,
            retry_backoff_ms=min(100, int(c.retry_initial_s * 1000)),
        )
        await self._producer.start()

    async def _write(self, messages: list[bytes]) -> None:
        # Queue every message before awaiting any delivery: aiokafka pipelines them.
        sent, first_error = [], None
        for m in messages:
            try:
                fut = await self._producer.send(self.config.topic, m, key=self._key, headers=self._headers)
                sent.append((m, fut))
            except Exception as exc:
                first_error = first_error or exc
                sent.append((m, None))
        results = await asyncio.gather(*(f for _, f in sent if f is not None), return_exceptions=True)
        outcome = iter(results)
        failed = [m for m, f in sent if f is None or isinstance(next(outcome), BaseException)]
        if failed:
            messages[:] = failed  # a retry resends only what did not land
            if first_error is None:
                first_error = next(r for r in results if isinstance(r, BaseException))
            raise first_error

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def _retriable(self, exc: BaseException) -> bool | None:
        from aiokafka import errors

        if isinstance(exc, errors.KafkaTimeoutError):
            return True
        if isinstance(exc, errors.KafkaError):
            return bool(exc.retriable)
        return super()._retriable(exc)
