"""The daemon's query socket: ``<data-dir>/query.sock`` answers read-only SQL from the store.

Who may ask: the kernel's record of the client (SO_PEERCRED, SO_PEERGROUPS) must say root, the
daemon's own uid, or a member of ``--query-group``; anyone else gets one error frame and the
door. What they may ask: one statement that ``readonly`` lets through, run on a connection of
its own (never the sink's session) under ``QueryLimits``, streamed back in frames (``query``)
and cut at the result cap. A client that sends nothing for ``IDLE_TIMEOUT_S``, a request line
over ``MAX_REQUEST_BYTES`` or one that stops reading is dropped. At most ``CONCURRENT_QUERIES``
run at once; the others wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat

from ..errors import ConfigError, XtcpError
from . import datadir
from .ddl import DATABASE
from .query import (DATA, DONE, ERROR, FORMATS, FRAME, MAX_REQUEST_BYTES, QUERY_SOCKET, QueryLimits,
                    QueryRefused, check_params, peer_credentials, run_statement)
from .store import open_store

log = logging.getLogger("xtcp_uring.query")

IDLE_TIMEOUT_S = 10.0
CONCURRENT_QUERIES = 2  # each may take --query-max-memory; the poller keeps the rest of the host


class QueryServer:
    """Serves ``query.sock`` from this process's store; ``close()`` before the store's last release."""

    def __init__(self, data_dir: str | os.PathLike, *, database: str = DATABASE, limits: QueryLimits | None = None,
                 group: int | None = None):
        self.data_dir = os.path.abspath(data_dir)
        self.path = os.path.join(self.data_dir, QUERY_SOCKET)
        self.database = database
        self.limits = limits or QueryLimits()
        self.group = group
        self.refused = 0  # clients turned away by the peer check
        self._refused_uids: set[int] = set()
        self._server: asyncio.AbstractServer | None = None
        self._store = None
        self._slots = asyncio.Semaphore(CONCURRENT_QUERIES)

    async def start(self) -> None:
        """Bind the socket (replacing one a killed daemon left, if it is ours).

        Raises:
            ConfigError: the data dir or an existing ``query.sock`` belongs to another user, or
                ``query.sock`` is something else than a socket.
        """
        if not self.database.isidentifier():
            raise ConfigError(f"database name {self.database!r} is not a plain identifier")
        self._store = await asyncio.to_thread(open_store, self.data_dir)
        try:
            if os.path.lexists(self.path):
                st = datadir.check_owner(self.path)
                if not stat.S_ISSOCK(st.st_mode):
                    raise ConfigError(f"{self.path} exists and is not a socket: remove it")
                os.unlink(self.path)  # left by a daemon that was killed; chDB's lock guards the store
            self._server = await asyncio.start_unix_server(self._handle, self.path, limit=MAX_REQUEST_BYTES)
            if self.group is None:
                os.chmod(self.path, 0o600)
            else:
                os.chown(self.path, -1, self.group)
                os.chmod(self.path, 0o660)
                datadir.share_with_group(self.data_dir, self.group)
        except BaseException:
            self._store.release()
            self._store = None
            raise

    def close(self) -> None:
        """Stop accepting and let the store go; queries in flight finish in their threads."""
        if self._server is not None:
            self._server.close()
            self._server = None
            if os.path.lexists(self.path):
                os.unlink(self.path)
        if self._store is not None:
            self._store.release()
            self._store = None

    def allowed(self, uid: int, gid: int, groups: tuple[int, ...]) -> bool:
        return uid in (0, os.geteuid()) or (self.group is not None and (gid == self.group or self.group in groups))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid, uid, gid, groups = peer_credentials(writer.get_extra_info("socket"))
            # Read the request line even from a client about to be refused: closing on unread
            # bytes would reset the connection and lose the error frame on its way.
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
            except asyncio.TimeoutError:
                raise ConfigError(f"no request within {IDLE_TIMEOUT_S:g} s") from None
            except (ValueError, asyncio.LimitOverrunError):
                raise ConfigError(f"request longer than {MAX_REQUEST_BYTES} bytes") from None
            if not self.allowed(uid, gid, groups):
                self._note_refused(pid, uid)
                who = ["root"] + ([datadir.user_name(os.geteuid())] if os.geteuid() else [])
                who.append(f"group {self.group} (--query-group)" if self.group is not None else "no group (--query-group)")
                raise QueryRefused(f"{datadir.user_name(uid)} may not query this store: it answers {', '.join(who)}")
            sql, fmt, params = _parse_request(line)
            async with self._slots:
                await self._answer(writer, sql, fmt, params)
            await self._send(writer, DONE, b"")
        except XtcpError as exc:
            payload = json.dumps({"kind": type(exc).__name__, "message": str(exc)}).encode()
            try:
                await self._send(writer, ERROR, payload)
            except (OSError, asyncio.TimeoutError):
                pass  # the client left or stopped reading: nobody to tell
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # a client that stopped reading: drop what it did not take
            else:
                writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, sql: str, fmt: str, params: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()

        def emit(data: bytes) -> None:  # in the query's thread: wait until the client took it
            asyncio.run_coroutine_threadsafe(self._send(writer, DATA, data), loop).result(IDLE_TIMEOUT_S + 1)

        await asyncio.to_thread(run_statement, self._store, sql, fmt, self.limits, emit, self.database, params)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, kind: bytes, payload: bytes) -> None:
        writer.write(FRAME.pack(kind, len(payload)) + payload)
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT_S)

    def _note_refused(self, pid: int, uid: int) -> None:
        self.refused += 1
        if uid not in self._refused_uids:  # once per uid: a loop of refused clients cannot flood the log
            self._refused_uids.add(uid)
            log.warning("%s: refused a client running as %s (pid %d); --query-group admits a group",
                        self.path, datadir.user_name(uid), pid)


def _parse_request(line: bytes) -> tuple[str, str, dict[str, str]]:
    try:
        req = json.loads(line)
        sql, fmt, params = req["sql"], req.get("format", "table"), req.get("params")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError("bad query request: want one JSON line {\"sql\": ..., \"format\": ..., \"params\": {...}}") from None
    if not isinstance(sql, str) or fmt not in FORMATS:
        raise ConfigError(f"bad query request: sql must be text and format one of {', '.join(FORMATS)}")
    return sql, fmt, check_params(params)


async def serve_queries(data_dir: str | os.PathLike, **options) -> QueryServer:
    """Start a ``QueryServer`` (options: ``database``, ``limits``, ``group``); close it when done."""
    server = QueryServer(data_dir, **options)
    await server.start()
    return server
