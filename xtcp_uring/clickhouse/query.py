"""`python -m xtcp_uring query`: SQL against the store, directly or through the daemon."""

from __future__ import annotations

import os

from ..errors import ConfigError, SinkError
from .ddl import DEFAULT_DATA_DIR
from .store import open_store

_QUERY_FORMATS = {"table": "PrettyCompactNoEscapesMonoBlock", "json": "JSON", "csv": "CSVWithNames"}


def run_query(sql: str, fmt: str = "table", data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> str:
    """What ``python -m xtcp_uring query`` prints: the result of ``sql`` against the store.

    Args:
        sql: any ClickHouse SQL; the record table is ``xtcp.xtcp_records``.
        fmt: ``table`` (aligned text), ``json`` or ``csv`` (with a header row).
        data_dir: the store's directory (the daemon's ``--data-dir``).

    Raises:
        ConfigError: unknown format, or the store cannot be opened (see ``open_store``).
        SinkError: ClickHouse rejected the statement (the message is ClickHouse's).
    """
    if fmt not in _QUERY_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(_QUERY_FORMATS)}")
    if not os.path.isdir(data_dir):
        raise ConfigError(f"no xtcp store at {data_dir}: run the daemon first or pass --data-dir")
    store = open_store(data_dir)
    try:
        result = store.query(sql, _QUERY_FORMATS[fmt])
        # Address columns are raw bytes: show them escaped rather than fail.
        return result.bytes().decode(errors="backslashreplace") if hasattr(result, "bytes") else str(result)
    finally:
        store.release()


QUERY_SOCKET = "query.sock"  # in the data directory, while a daemon holds the store


def run_query_cli(sql: str, data_dir: str | os.PathLike = DEFAULT_DATA_DIR, fmt: str = "table") -> int:
    """``python -m xtcp_uring query``: print the result; returns the exit code (0).

    chDB locks its directory, so while a daemon stores into ``data_dir`` the query goes to
    that daemon through ``<data_dir>/query.sock``; otherwise the store is opened here.
    """
    import sys

    sock_path = os.path.join(data_dir, QUERY_SOCKET)
    text = _query_daemon(sock_path, sql, fmt) if os.path.exists(sock_path) else None
    if text is None:
        text = run_query(sql, fmt, data_dir)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def _query_daemon(sock_path: str, sql: str, fmt: str) -> str | None:
    """Ask the daemon that holds the store; None when no daemon answers (a stale socket)."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(sock_path)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        s.sendall(json.dumps({"sql": sql, "format": fmt}).encode() + b"\n")
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    status, _, body = b"".join(chunks).partition(b"\n")
    if status == b"ok":
        return body.decode()
    kind, _, message = body.decode().partition(": ")
    raise (ConfigError if kind == "ConfigError" else SinkError)(message)


async def serve_queries(data_dir: str | os.PathLike):
    """Answer ``query`` clients on ``<data_dir>/query.sock`` from this process's store.

    Returns the asyncio server; close it before releasing the store.
    """
    import asyncio
    import json

    sock_path = os.path.join(data_dir, QUERY_SOCKET)

    async def handle(reader, writer):
        try:
            req = json.loads(await reader.readline())
            text = await asyncio.to_thread(run_query, req["sql"], req.get("format", "table"), data_dir)
            writer.write(b"ok\n" + text.encode())
        except (ConfigError, SinkError) as exc:
            writer.write(f"error\n{type(exc).__name__}: {exc}".encode())
        except (ValueError, KeyError) as exc:
            writer.write(f"error\nConfigError: bad query request: {exc}".encode())
        finally:
            await writer.drain()
            writer.close()

    if os.path.exists(sock_path):
        os.unlink(sock_path)  # left by a daemon that was killed; chDB's own lock guards the store
    server = await asyncio.start_unix_server(handle, sock_path)
    os.chmod(sock_path, 0o600)
    return server
