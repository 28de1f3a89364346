"""ClickHouse server sink over HTTP: ``clickhouse+http://[user:password@]host:8123/db``.

Each batch is one ``INSERT INTO db.xtcp_records`` request. ``format=arrow`` (default) sends an
Arrow IPC stream of the same columns the chDB sink inserts, and needs nothing on the server
but the table. ``format=protobuf_list`` sends our Envelope bytes (one ProtobufList message per
request, as ClickHouse reads one per stream) and needs ``xtcp_flat_record.proto`` in the
server's ``format_schema_path``. ``create_table=true`` runs the DDL first, and again if the
table goes missing (single servers; on a cluster create the tables once by hand from
``examples/clickhouse``). Errors are retried unless ClickHouse's code says the batch itself is
refused (``clickhouse.errors``). Stdlib ``http.client`` in a thread: one keep-alive connection
per sink.

``clickhouse+https://`` verifies the server against ``ca_file=`` (default: the system's CAs);
``cert_file=``/``key_file=`` present a client certificate. The password comes from
``password_file=``, else the environment variable ``password_env=`` names (default
``XTCP_CLICKHOUSE_PASSWORD``), else the URL's user info (which the daemon warns about when it is
on its command line). Basic auth over plain HTTP to a host off this machine is refused unless
the daemon runs with ``--allow-insecure``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode

from .. import clickhouse, schema
from ..clickhouse.ddl import rollup_statements
from ..clickhouse import errors as ch_errors
from ..clickhouse.errors import ClickHouseError
from ..errors import ConfigError, SinkError
from ..framing import ENVELOPE
from .base import Payload, Sink
from .config import SinkConfig
from .encoded import Encoded
from .security import check_tls_peer, cleartext_hosts, client_tls_context, public_url, read_secret

_FORMATS = ("arrow", "protobuf_list")


@dataclass(kw_only=True)
class ClickHouseHttpConfig(SinkConfig):
    host: str
    port: int = 8123
    database: str = clickhouse.DATABASE
    secure: bool = False
    user: str = ""
    password: str = field(default="", repr=False)  # from the URL's user info or a keyword only
    password_file: str = ""
    password_env: str = "XTCP_CLICKHOUSE_PASSWORD"
    ca_file: str = ""  # https: PEM bundle the server's certificate must chain to
    cert_file: str = ""  # https: client certificate
    key_file: str = ""
    format: str = "arrow"
    create_table: bool = False
    ttl_days: int | None = None

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "ClickHouseHttpConfig":
        if not u.hostname:
            raise ConfigError(f"{url}: expected clickhouse+http://[user:password@]host:8123/db")
        fixed = dict(host=u.hostname, secure=u.scheme == "clickhouse+https")
        try:
            fixed["port"] = u.port or (8443 if fixed["secure"] else 8123)
        except ValueError:
            raise ConfigError(f"{url}: bad port") from None
        if u.path.strip("/"):
            fixed["database"] = u.path.strip("/")
        if any(k == "password" for k, _ in parse_qsl(u.query)):
            raise ConfigError(f"{public_url(url)}: give the password with password_file= or the environment "
                              "variable XTCP_CLICKHOUSE_PASSWORD, not in the URL")
        if u.username:
            fixed["user"] = unquote(u.username)
            fixed["password"] = unquote(u.password or "")
        return cls._build(url, u.query, opts, **fixed)

    def cleartext_credentials(self) -> list[str]:
        return cleartext_hosts([self.host]) if self.user and not self.secure else []

    def validate(self) -> None:
        super().validate()
        self.password = read_secret(self.url, "password", file=self.password_file, env=self.password_env,
                                    inline=self.password)
        if self.password and not self.user:
            self.user = "default"  # ClickHouse's own default user
        self.ssl_context = None
        if self.secure:
            self.ssl_context = client_tls_context(self.url, ca_file=self.ca_file, cert_file=self.cert_file,
                                                  key_file=self.key_file)
        elif self.ca_file or self.cert_file or self.key_file:
            raise ConfigError(f"{self.url}: ca_file, cert_file and key_file need clickhouse+https://")
        if self.format not in _FORMATS:
            raise ConfigError(f"{self.url}: format must be one of {', '.join(_FORMATS)}")
        if not self.database.isidentifier():
            raise ConfigError(f"{self.url}: database {self.database!r} is not a plain identifier")


class ClickHouseHttpSink(Sink):
    scheme = "clickhouse+http"
    Config = ClickHouseHttpConfig
    config: ClickHouseHttpConfig

    def __init__(self, config: ClickHouseHttpConfig):
        super().__init__(config)
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"Content-Type": "application/octet-stream"}
        if config.user:
            token = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    @property
    def encoding(self) -> str | None:
        return ENVELOPE if self.config.format == "protobuf_list" else None

    def prepare(self, encoded: Encoded) -> list[Payload]:
        if self.config.format == "protobuf_list":
            return [Payload(("ProtobufList", m), len(m), n) for m, n in encoded.protobuf_list()]
        body = encoded.memo("arrow_ipc", lambda: _arrow_ipc(encoded.arrow()))
        columns = encoded.memo("arrow_columns", lambda: tuple(encoded.arrow().column_names))
        return [Payload(("ArrowStream", body, columns), len(body), len(encoded))]

    def _insert_sql(self, fmt: str, columns=()) -> str:
        table = f"{self.config.database}.{clickhouse.TABLE}"
        cols = f" ({', '.join(f'`{c}`' for c in columns)})" if columns else ""
        settings = ""
        if fmt == "ProtobufList":
            # Relative to the server's format_schema_path, where the .proto must be copied.
            settings = f" SETTINGS format_schema = '{schema.PROTO_PATH.name}:{schema.RECORD_MESSAGE}'"
        return f"INSERT INTO {table}{cols}{settings} FORMAT {fmt}"

    async def _connect(self) -> None:
        c = self.config
        if c.secure:
            await check_tls_peer(c.host, c.port, c.ssl_context, c.write_timeout_s)
        if self.config.create_table:
            db = self.config.database
            await asyncio.to_thread(self._post, f"CREATE DATABASE IF NOT EXISTS {db}", b"")
            await asyncio.to_thread(self._post, clickhouse.table_ddl(db, self.config.ttl_days), b"")
            await asyncio.to_thread(self._add_missing_columns, db)
            for stmt in rollup_statements(db):  # the same rollups as the embedded store
                await asyncio.to_thread(self._post, stmt, b"")

    def _add_missing_columns(self, db: str) -> None:
        """A table made by an older version gets the columns added since (``clickhouse.columns``)."""
        from ..clickhouse.columns import missing_column_statements

        # ClickHouse answers HTTP queries in TabSeparated: one name per line
        names = self._post(f"SELECT name FROM system.columns WHERE database = '{db}' AND table = "
                           f"'{clickhouse.TABLE}'", b"").decode().split()
        if not names:
            return  # no answer to compare with (the table was just made, or the user may not read system)
        for statement in missing_column_statements(db, clickhouse.TABLE, set(names)):
            self._post(statement, b"")

    async def _write(self, data) -> None:
        fmt, body, *columns = data
        try:
            await asyncio.to_thread(self._post, self._insert_sql(fmt, *columns), body)
        except ClickHouseError as exc:
            if not (exc.table_missing and self.config.create_table):
                raise  # a missing table the operator creates is retried meanwhile
            await self._connect()  # someone dropped it: create it again, then insert
            await asyncio.to_thread(self._post, self._insert_sql(fmt, *columns), body)

    def _post(self, sql: str, body: bytes) -> bytes:
        if self._conn is None:
            c = self.config
            if c.secure:
                self._conn = http.client.HTTPSConnection(c.host, c.port, timeout=c.write_timeout_s,
                                                         context=c.ssl_context)
            else:
                self._conn = http.client.HTTPConnection(c.host, c.port, timeout=c.write_timeout_s)
        try:
            self._conn.request("POST", "/?" + urlencode({"query": sql}), body=body, headers=self._headers)
            resp = self._conn.getresponse()
            text = resp.read()
        except Exception:
            self._conn.close()
            self._conn = None
            raise
        if resp.status != 200:
            raise _http_error(self.config.url, resp.status, resp.getheader("X-ClickHouse-Exception-Code"), text)
        return text

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _http_error(url: str, status: int, code_header: str | None, body: bytes) -> SinkError:
    """ClickHouse's code (header, else the body's "Code: N.") decides whether to retry. Without
    one (a proxy answered), only a request the server calls malformed or too large is refused."""
    text = body[:2000].decode(errors="replace").strip()
    code = int(code_header) if code_header and code_header.strip().isdigit() else ch_errors.error_code(text)
    if code is not None:
        return ch_errors.from_text(f"{url}: HTTP {status}", text, code)
    err = SinkError(f"{url}: HTTP {status}: {ch_errors.one_line(text)}")
    err.retriable = status not in (400, 413, 415, 422)
    return err


def _arrow_ipc(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
