"""The dashboard's HTTP server: the page, its static files, and one JSON endpoint per chart.

Plain asyncio, GET only, one request per connection, bounded in size, time and concurrency
(like the metrics server). Routes:

* ``/`` the page; ``/static/<file>`` its script, style and the vendored uPlot (read once at
  start from the package: nothing is fetched from elsewhere, at build or at run time);
* ``/api/charts`` the list of charts; ``/api/chart/<name>?<filters>`` one chart's data;
  ``/api/filters?<filters>`` the choices of each filter; ``/api/connection?cookie=N&<filters>``
  one connection's samples and close record.

Answers: 200 JSON; 400 ``{"error": ...}`` for a parameter the page cannot use (nothing runs);
404 for another path; 502 when the store refused or failed a statement. A request whose Host is
not this server's address, ``localhost`` or an IP literal is refused (421): a DNS-rebinding page
in the user's browser cannot read the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import time
import urllib.parse
from pathlib import Path

from ..errors import XtcpError
from ..listen import start_listener
from . import charts, filters, rollup
from .backends import Backend

log = logging.getLogger("xtcp_uring.view")

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".txt": "text/plain; charset=utf-8"}
MAX_REQUEST_BYTES = 8192
MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 60.0  # a chart over a big range may take seconds
SECURITY_HEADERS = ("Content-Security-Policy: default-src 'self'; img-src 'self' data:; object-src 'none'; "
                    "frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
                    "Cache-Control: no-store\r\n")
DEFAULT_LISTEN = "127.0.0.1:9109"


class HttpError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


class ViewServer:
    """Serves the dashboard from ``backend`` on ``host:port`` (port 0: any free port);
    ``rollups=False`` answers every chart from the records (to compare, or to measure them);
    ``records_max_s``: the span of the records the per-socket charts read at most (None: all)."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 9109, flag: str = "--listen",
                 rollups: bool = True, records_max_s: int | None = charts.RECORDS_MAX_S):
        self.backend, self.host, self.port, self.flag, self.rollups = backend, host, port, flag, rollups
        self.records_max_s = records_max_s
        self._server: asyncio.AbstractServer | None = None
        self._connections = 0
        self._static = {p.relative_to(STATIC_DIR).as_posix(): p.read_bytes()
                        for p in STATIC_DIR.rglob("*") if p.is_file() and p.suffix in STATIC_TYPES}
        self._asn: tuple[float, str | None] = (0.0, None)
        self._columns: dict[str, tuple[float, frozenset[str]]] = {}
        self._coverage: tuple[float, rollup.Coverage | None] = (-60.0, None)
        self.requests = 0
        self.errors = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ConfigError: the address cannot be bound.
        """
        self._server = await start_listener(self._handle, self.host, self.port, flag=self.flag,
                                            limit=MAX_REQUEST_BYTES)
        bound = [s.getsockname() for s in self._server.sockets]
        self.port = bound[0][1]
        self._bound_hosts = {a[0].split("%")[0] for a in bound} | {self.host}
        log.info("dashboard on %s over %s", self.url, self.backend.describe())
        exposed = [a[0] for a in bound if not ipaddress.ip_address(a[0].split("%")[0]).is_loopback]
        if exposed:
            log.warning("the dashboard listens on %s, reachable from other hosts: it shows every connection "
                        "of this host; bind 127.0.0.1 or firewall port %d", ", ".join(exposed), self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            try:
                status, ctype, body = await asyncio.wait_for(self._answer(reader), REQUEST_TIMEOUT_S)
            except HttpError as exc:
                self.errors += 1
                status, ctype, body = exc.status, "application/json", json.dumps({"error": str(exc)}).encode()
            except asyncio.TimeoutError:
                self.errors += 1
                status, ctype, body = "504 Gateway Timeout", "application/json", b'{"error": "timed out"}'
            except Exception as exc:  # a bug of ours: one line in the log and a 500, never a dropped page
                self.errors += 1
                log.exception("dashboard request failed")
                status, ctype, body = ("500 Internal Server Error", "application/json",
                                       json.dumps({"error": f"internal error: {type(exc).__name__}"}).encode())
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"{SECURITY_HEADERS}Connection: close\r\n\r\n".encode() + body)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.LimitOverrunError, ValueError):
            raise HttpError("431 Request Header Fields Too Large", f"request over {MAX_REQUEST_BYTES} bytes") from None
        except asyncio.IncompleteReadError:
            raise HttpError("400 Bad Request", "incomplete request") from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise HttpError("400 Bad Request", "malformed request line")
        if parts[0] != "GET":
            raise HttpError("405 Method Not Allowed", "only GET: the dashboard is read-only")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        self._check_host(headers.get("host", ""))
        self.requests += 1
        try:
            url = urllib.parse.urlsplit(parts[1])
        except ValueError:  # e.g. "http://[::1/": the client's mistake, not a 500 of ours
            raise HttpError("400 Bad Request", "malformed request target") from None
        return await self._route(url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True))

    def _check_host(self, host: str) -> None:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        if name in ("localhost", *self._bound_hosts):
            return
        try:
            ipaddress.ip_address(name)
            return
        except ValueError:
            raise HttpError("421 Misdirected Request", f"Host {host[:80]!r} is not this server; open it by its "
                            "address or localhost") from None

    async def _route(self, path: str, query: dict[str, list[str]]) -> tuple[str, str, bytes]:
        if path in ("/", "/index.html"):
            return self._file("index.html")
        if path.startswith("/static/"):
            return self._file(path.removeprefix("/static/"))
        if path == "/api/charts":
            return _json({"charts": [{"name": c.name, "title": c.title, "kind": c.kind, "unit": c.unit}
                                     for c in charts.CHARTS.values()]})
        if path.startswith("/api/chart/"):
            chart = charts.CHARTS.get(path.removeprefix("/api/chart/"))
            if chart is None:
                raise HttpError("404 Not Found", f"no chart {path.removeprefix('/api/chart/')[:40]!r}; "
                                f"charts: {', '.join(charts.CHARTS)}")
            return _json(await self.chart(chart, self._filters(query)))
        if path == "/api/filters":
            return _json(await self.choices(self._filters(query)))
        if path == "/api/connection":
            f = self._filters(query)
            if f.cookie is None:
                raise HttpError("400 Bad Request", "cookie: required (the socket cookie of the connection)")
            return _json(await self.connection(f))
        raise HttpError("404 Not Found", f"no such page {path[:80]!r}")

    def _file(self, name: str) -> tuple[str, str, bytes]:
        body = self._static.get(name)
        if body is None:
            raise HttpError("404 Not Found", f"no static file {name[:80]!r}")
        return "200 OK", STATIC_TYPES[Path(name).suffix], body

    @staticmethod
    def _filters(query: dict[str, list[str]]) -> filters.Filters:
        try:
            return filters.parse(query)
        except filters.BadRequest as exc:
            raise HttpError("400 Bad Request", str(exc)) from None

    async def _run(self, sql: str, params: dict[str, str]) -> tuple[list[str], list[list]]:
        try:
            return await self.backend.query(sql, params)
        except XtcpError as exc:
            log.warning("dashboard query failed: %s", exc)
            raise HttpError("502 Bad Gateway", f"the store refused the query: {exc}") from None

    async def chart(self, chart: charts.Chart, f: filters.Filters) -> dict:
        asn = await self._asn_dictionary() if chart.name == "prefixes" else None
        params = f.params() | ({"asn_dict": asn} if asn else {})
        plan = None
        if self.rollups and chart.name in rollup.SQL:
            plan = rollup.plan(chart, f, await self.coverage(), asn)
        note = plan.note if plan is not None else ""
        bound = self.records_max_s
        if plan is None and chart.name in charts.PER_SOCKET and bound is not None and f.t1 - f.t0 > bound:
            f = dataclasses.replace(f, t0=f.t1 - bound)  # bounded: see charts.RECORDS_MAX_S
            params, note = f.params() | ({"asn_dict": asn} if asn else {}), charts.RECORDS_NOTE
        started = time.monotonic()
        if plan is None:
            names, rows = await self._run(charts.chart_sql(chart, f, asn), params)
        else:
            names, rows = await self._run(plan.sql, params | plan.params)
        doc = {"chart": chart.name, "title": chart.title, "kind": chart.kind, "unit": chart.unit,
               "source": "raw" if plan is None else "rollup", "from": f.t0 if plan is None else plan.t0,
               "to": f.t1 if plan is None else plan.t1, "step": f.step_s,
               "ms": round((time.monotonic() - started) * 1000, 1), **chart.shape(rows, names, f)}
        if plan is not None:
            doc["table"] = plan.table
        if note:
            doc["note"] = note
        return doc

    async def choices(self, f: filters.Filters) -> dict:
        out = {}
        fast = rollup.choices_plan(f, await self.coverage()) if self.rollups else None
        records = f
        if fast is not None:  # a long range: locations and states from the rollup, namespaces of its last hour
            statements, params, netns_from = fast
            for name, sql in statements.items():
                _, rows = await self._run(sql, f.params() | params)
                out[name] = rows
            records = dataclasses.replace(f, t0=netns_from)
        for name, sql in charts.CHOICES_SQL.items():
            if name not in out:
                _, out[name] = await self._run(sql.replace("{where}", records.where()), records.params())
        return {name: [filters.STATE_NAMES.get(v, str(v)) if name == "state" else v for v, _ in rows]
                for name, rows in out.items()}

    async def coverage(self) -> rollup.Coverage:
        """The rollup tables' columns and first rows' times, checked once a minute."""
        checked, cov = self._coverage
        if cov is not None and time.monotonic() - checked < 60:
            return cov
        columns = {t: await self._columns_of(t) for t in rollup.TABLES}
        firsts = [t for t in map(rollup.first_table, rollup.ROLLUPS) if columns[t]]
        since: dict[str, int | None] = dict.fromkeys(firsts)
        if firsts:
            _, rows = await self._run(
                "SELECT table, toUInt32(min(min_time)) FROM system.parts WHERE database = {db:String} AND active "
                "AND rows > 0 AND has(splitByChar(',', {tables:String}), table) GROUP BY table",
                {"db": self.backend.database, "tables": ",".join(firsts)})
            since.update({table: int(first) for table, first in rows})
        cov = rollup.Coverage(columns, since)
        self._coverage = (time.monotonic(), cov)
        return cov

    async def connection(self, f: filters.Filters) -> dict:
        close_expr = ""
        if "event" in await self._columns_of(charts.TABLE):  # close records (#13): the table says whether it has them
            close_expr = "countIf(event = 'close') > 0 AS closed, "
        names, rows = await self._run(charts.CONNECTION_SQL.replace("{where}", f.where()), f.params())
        info_names, info = await self._run(
            charts.CONNECTION_INFO_SQL.replace("{where}", f.where()).replace("{close_expr}", close_expr), f.params())
        return {"cookie": str(f.cookie), "columns": names, "rows": rows,
                "info": [dict(zip(info_names, r)) for r in info]}

    async def _asn_dictionary(self) -> str | None:
        """``db.asn`` when that dictionary exists and did not fail (it loads on first use, so
        NOT_LOADED counts); checked once a minute."""
        checked, name = self._asn
        if time.monotonic() - checked < 60:
            return name
        db = self.backend.database
        _, rows = await self._run("SELECT count() FROM system.dictionaries WHERE database = {db:String} "
                                  "AND name = 'asn' AND status NOT IN ('FAILED', 'FAILED_AND_RELOADING')", {"db": db})
        name = f"{db}.asn" if rows and rows[0][0] else None
        self._asn = (time.monotonic(), name)
        return name

    async def _columns_of(self, table: str) -> frozenset[str]:
        """The columns of ``table`` (none when it does not exist), checked once a minute: the
        rollup and the close records come with other work, on stores of other versions."""
        checked, cols = self._columns.get(table, (-60.0, frozenset()))
        if time.monotonic() - checked < 60:
            return cols
        _, rows = await self._run("SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                                  {"db": self.backend.database, "t": table})
        cols = frozenset(r[0] for r in rows)
        self._columns[table] = (time.monotonic(), cols)
        return cols


def _json(doc: dict) -> tuple[str, str, bytes]:
    return "200 OK", "application/json", json.dumps(doc, separators=(",", ":")).encode()
