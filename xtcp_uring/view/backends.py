"""Where the page's statements run: all read-only, all with bound parameters.

* ``StoreBackend``: the embedded store in this process (the daemon's own, or one that no daemon
  holds), through ``run_statement`` — the same checks and limits as ``query`` and ``query.sock``.
* ``DaemonBackend``: a store a daemon holds, through its ``query.sock``.
* ``HttpBackend``: a ClickHouse server's HTTP interface (``--clickhouse URL``), with
  ``readonly=1`` and the parameters as ``param_<name>``.

Each returns ``(column names, rows)``; 64-bit integers, which ClickHouse's JSON quotes, come
back as numbers.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from ..clickhouse import QUERY_SOCKET, QueryLimits
from ..clickhouse.ddl import DATABASE
from ..clickhouse.errors import ClickHouseError
from ..errors import ConfigError

CONCURRENT = 2  # statements at once: the page asks for a dozen, the poller keeps the rest of the host
_NUMERIC = ("Int", "UInt", "Float", "Decimal")


def decode_result(body: bytes) -> tuple[list[str], list[list]]:
    """ClickHouse's JSONCompact as (names, rows), numbers as numbers. chDB's streamed results are
    one document per block, one after the other (none for an empty result): rows are joined."""
    text = body.decode(errors="replace")
    decoder = json.JSONDecoder()
    meta, rows, at = [], [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        doc, at = decoder.raw_decode(text, at)
        meta = doc["meta"]
        rows.extend(doc["data"])
    names = [m["name"] for m in meta]
    numeric = [i for i, m in enumerate(meta) if _is_number(m["type"])]
    for row in rows:
        for i in numeric:
            if isinstance(row[i], str):
                row[i] = float(row[i]) if any(c in row[i] for c in ".eEn") else int(row[i])
    return names, rows


def _is_number(type_name: str) -> bool:
    base = type_name.removeprefix("Nullable(").removeprefix("LowCardinality(")
    return base.startswith(_NUMERIC)


class Backend:
    database = DATABASE

    def __init__(self):
        self._slots = asyncio.Semaphore(CONCURRENT)

    async def query(self, sql: str, params: dict[str, str]) -> tuple[list[str], list[list]]:
        async with self._slots:
            body = await asyncio.to_thread(self._run, sql, params)
        return decode_result(body)

    def _run(self, sql: str, params: dict[str, str]) -> bytes:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class StoreBackend(Backend):
    """The embedded store of this process, opened (or shared) with ``open_store``."""

    def __init__(self, data_dir: str | os.PathLike, database: str = DATABASE, limits: QueryLimits | None = None):
        from ..clickhouse import open_store

        super().__init__()
        self.database = database
        self.limits = limits or QueryLimits()
        self._store = open_store(data_dir)

    def _run(self, sql: str, params: dict[str, str]) -> bytes:
        from ..clickhouse.query import run_statement

        chunks: list[bytes] = []
        run_statement(self._store, sql, "jsoncompact", self.limits, chunks.append, self.database, params)
        return b"".join(chunks)

    def describe(self) -> str:
        return f"the embedded store {self._store.path}"

    def close(self) -> None:
        if self._store is not None:
            self._store.release()
            self._store = None


class DaemonBackend(Backend):
    """A store held by a running daemon: asked through its ``query.sock``."""

    def __init__(self, data_dir: str | os.PathLike):
        super().__init__()
        self.sock_path = os.path.join(os.path.abspath(data_dir), QUERY_SOCKET)

    def _run(self, sql: str, params: dict[str, str]) -> bytes:
        from ..clickhouse.query import query_daemon

        chunks: list[bytes] = []
        if not query_daemon(self.sock_path, sql, "jsoncompact", chunks.append, params):
            raise ClickHouseError(f"the daemon behind {self.sock_path} is gone; restart `view` once it runs again")
        return b"".join(chunks)

    def describe(self) -> str:
        return f"the daemon's store through {self.sock_path}"


class HttpBackend(Backend):
    """A ClickHouse server: ``http(s)://[user[:password]@]host:port[/database]``.

    Raises:
        ConfigError: another scheme, or a password sent unencrypted to another host.
    """

    def __init__(self, url: str, limits: QueryLimits | None = None, timeout_s: float = 30.0):
        super().__init__()
        want = "want http(s)://[user[:password]@]host:8123[/database]"
        try:
            u = urllib.parse.urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address: a user's typo, one line
            raise ConfigError(f"--clickhouse {url!r}: {exc}; {want}") from None
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(f"--clickhouse {url!r}: {want}")
        db = u.path.strip("/") or DATABASE
        if not db.isidentifier():
            raise ConfigError(f"--clickhouse: database {db!r} is not a plain identifier")
        if u.password and u.scheme == "http" and not _is_loopback(u.hostname):
            raise ConfigError(f"--clickhouse {u.hostname}: a password over plain http travels readable; use https")
        self.database = db
        self.limits = limits or QueryLimits()
        self.timeout_s = timeout_s
        try:
            port = f":{u.port}" if u.port else ""
        except ValueError:  # a port that is no number or out of range: the user's, so one line
            raise ConfigError(f"--clickhouse {url!r}: the port is not a number from 1 to 65535") from None
        self.base = f"{u.scheme}://{u.hostname}{port}/"
        self.auth = None
        if u.username:
            cred = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
            self.auth = "Basic " + base64.b64encode(cred.encode()).decode()

    def _run(self, sql: str, params: dict[str, str]) -> bytes:
        # readonly last: ClickHouse applies the URL's settings in order, and readonly=1 forbids later changes.
        settings = [("database", self.database), ("default_format", "JSONCompact"),
                    ("max_execution_time", f"{self.limits.timeout_s:g}"),
                    ("max_result_bytes", str(self.limits.max_result_bytes)),
                    ("max_memory_usage", str(self.limits.max_memory_bytes)), ("readonly", "1")]
        query = urllib.parse.urlencode(settings + [(f"param_{k}", v) for k, v in params.items()])
        req = urllib.request.Request(self.base + "?" + query, data=sql.encode(), method="POST")
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.read(self.limits.max_result_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise ClickHouseError(f"ClickHouse at {self.base}: {exc.read(2000).decode(errors='replace').strip()}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClickHouseError(f"ClickHouse at {self.base}: {getattr(exc, 'reason', exc)}") from None

    def describe(self) -> str:
        return f"ClickHouse at {self.base} (database {self.database})"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def open_backend(data_dir: str | None, clickhouse: str | None, limits: QueryLimits | None = None) -> Backend:
    """The backend for ``view``: a server when ``clickhouse`` is given, else the store at
    ``data_dir`` (through its daemon when one holds it)."""
    if clickhouse:
        return HttpBackend(clickhouse, limits)
    from ..clickhouse.query import _daemon_socket

    data_dir = data_dir or "./xtcp-data"
    if _daemon_socket(os.path.join(data_dir, QUERY_SOCKET)):
        return DaemonBackend(data_dir)
    if not os.path.isdir(data_dir):
        raise ConfigError(f"no xtcp store at {data_dir}: run the daemon first, or pass --data-dir or --clickhouse")
    return StoreBackend(data_dir, limits=limits)
