"""UDP sink: ``udp://host:port?max_datagram=60000``, one ClickHouse ProtobufList message per
datagram. A batch is split at record boundaries into datagrams of at most ``max_datagram``
bytes (IPv4's limit is 65507; 60000 leaves room for tunnels). Fire and forget: a datagram that
leaves the socket counts as sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..errors import ConfigError
from ..framing import ENVELOPE
from .base import Payload, Sink
from .config import SinkConfig
from .encoded import Encoded


@dataclass(kw_only=True)
class UdpConfig(SinkConfig):
    host: str
    port: int
    max_datagram: int = 60_000

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "UdpConfig":
        try:
            port = u.port
        except ValueError:
            port = None
        if not u.hostname or not port:
            raise ConfigError(f"{url}: expected udp://host:port")
        return cls._build(url, u.query, opts, host=u.hostname, port=port)

    def validate(self) -> None:
        super().validate()
        if not 1024 <= self.max_datagram <= 65507:
            raise ConfigError(f"{self.url}: max_datagram must be within 1024..65507")


class UdpSink(Sink):
    scheme = "udp"
    Config = UdpConfig
    config: UdpConfig

    def __init__(self, config: UdpConfig):
        super().__init__(config)
        self._transport = None

    @property
    def encoding(self) -> str | None:
        return ENVELOPE

    def prepare(self, encoded: Encoded) -> list[Payload]:
        return [Payload(m, len(m), n) for m, n in encoded.protobuf_list(0, self.config.max_datagram)]

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(self.config.host, self.config.port)
        )

    async def _write(self, datagram: bytes) -> None:
        self._transport.sendto(datagram)

    async def _disconnect(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
