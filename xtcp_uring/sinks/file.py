"""File and stdout sinks: bytes appended to a file object.

``file:///path.pb`` appends length-delimited XtcpFlatRecord messages (ClickHouse
``FORMAT Protobuf``; any protobuf library's delimited reader). ``-`` writes to stdout in
``format`` jsonl (people), pb (as the file) or pblist (one ClickHouse ProtobufList message per
batch; ClickHouse reads one such message per INSERT, so pipe one batch per insert).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from dataclasses import dataclass

from .. import output
from ..errors import ConfigError
from ..framing import FORMAT_FRAMING, FORMATS, JSONL, PB, PBLIST
from .base import Payload, Sink
from .config import SinkConfig
from .encoded import Encoded


@dataclass(kw_only=True)
class FileConfig(SinkConfig):
    path: str
    fsync: bool = False  # fsync after every batch

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "FileConfig":
        path = u.netloc + u.path
        if not path:
            raise ConfigError(f"{url}: expected file:///path/to/file.pb")
        return cls._build(url, u.query, opts, path=path)


@dataclass(kw_only=True)
class StdoutConfig(SinkConfig):
    format: str = JSONL

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "StdoutConfig":
        return cls._build(url, u.query, opts)

    def validate(self) -> None:
        super().validate()
        if self.format not in FORMATS:
            raise ConfigError(f"{self.url}: format must be one of {', '.join(FORMATS)}")


def _encode(encoded: Encoded, fmt: str) -> bytes:
    if fmt == PB:
        return encoded.delimited()
    if fmt == PBLIST:
        return b"".join(m for m, _ in encoded.protobuf_list())

    def jsonl() -> bytes:
        buf = io.BytesIO()
        output.write_jsonl(encoded.batch, buf)
        return buf.getvalue()

    return encoded.memo(JSONL, jsonl)


class FileSink(Sink):
    scheme = "file"
    Config = FileConfig
    config: FileConfig

    def __init__(self, config: SinkConfig):
        super().__init__(config)
        self._file = None
        self._format = getattr(config, "format", PB)
        self._fsync = getattr(config, "fsync", False)

    @property
    def encoding(self) -> str | None:
        return FORMAT_FRAMING.get(self._format)

    def prepare(self, encoded: Encoded) -> list[Payload]:
        data = _encode(encoded, self._format)
        return [Payload(data, len(data), len(encoded))]

    async def _connect(self) -> None:
        self._file = await asyncio.to_thread(open, self.config.path, "ab")

    async def _write(self, data: bytes) -> None:
        await asyncio.to_thread(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        output.write_all(self._file, data)  # whole, even when a signal cuts a pipe write short
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    async def _disconnect(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            await asyncio.to_thread(f.close)


class StdoutSink(FileSink):
    scheme = "stdout"
    Config = StdoutConfig
    config: StdoutConfig

    async def _connect(self) -> None:
        self._file = sys.stdout.buffer

    async def _disconnect(self) -> None:
        self._file = None  # never close the process's stdout
