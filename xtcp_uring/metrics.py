"""Self-metrics for Prometheus, and the tiny HTTP server for /metrics, /healthz and /readyz.

Updated once per poll from the Batch, the poller's stats and the sinks' counters, so the hot
path never touches a metric. Per-namespace series are bounded (``max_namespace_series``): past
the bound, namespaces are summed under ``netns="_other"`` so a host with 5,000 containers does
not make 5,000 series per metric.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .poller import REJECT_REASONS as NETLINK_REJECT_REASONS
from .records import Batch

log = logging.getLogger("xtcp_uring.metrics")

OTHER = "_other"
DECODE_ERROR_KINDS = ("bad_attributes", "short_attributes", "short_messages")
_FAMILY = {2: "inet", 10: "inet6"}


class Metrics:
    def __init__(self, max_namespace_series: int = 100):
        self.max_namespace_series = max_namespace_series
        self._series_names: set[str] = set()
        self._last: dict[str, dict[str, int]] = {}  # counters mirrored from cumulative stats
        r = self.registry = CollectorRegistry()
        self.poll_seconds = Histogram(
            "xtcp_poll_duration_seconds", "Wall time of one poll, namespace reconcile to decoded batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.polls = Counter("xtcp_polls_total", "Polls finished", registry=r)
        self.polls_skipped = Counter("xtcp_polls_skipped_total",
                                     "Ticks skipped because the previous poll was still running", registry=r)
        self.sockets = Gauge("xtcp_sockets", "Sockets in the last poll", ["netns"], registry=r)
        self.dump_seconds = Gauge("xtcp_namespace_dump_seconds", "Dump time of the last poll",
                                  ["netns", "family"], registry=r)
        self.dump_bytes = Counter("xtcp_namespace_dump_bytes_total", "Netlink bytes received",
                                  ["netns"], registry=r)
        self.dump_recvs = Counter("xtcp_namespace_dump_recvs_total", "recv completions", ["netns"], registry=r)
        self.dump_errors = Counter("xtcp_dump_errors_total", "Dumps that failed or were cut short",
                                   ["netns"], registry=r)
        self.decode_errors = Counter("xtcp_decode_errors_total",
                                     "Socket messages or attributes the decoder could not read whole, by kind", ["kind"], registry=r)
        for kind in DECODE_ERROR_KINDS:  # at 0 from the start, so alerts can rate() them
            self.decode_errors.labels(kind)
        self.netlink_rejected = Counter(
            "xtcp_netlink_rejected_total",
            "Netlink input dropped unread: not from the kernel (datagrams), another dump's nlmsg_seq "
            "(messages), a lying length (datagrams)", ["reason"], registry=r)
        for reason in NETLINK_REJECT_REASONS:
            self.netlink_rejected.labels(reason)
        self.unknown_attributes = Counter("xtcp_unknown_attributes_total",
                                          "INET_DIAG attributes of types this decoder does not know",
                                          ["type"], registry=r)
        self.records_published = Counter("xtcp_records_published_total", "Records a sink delivered",
                                         ["sink"], registry=r)
        self.records_dropped = Counter("xtcp_records_dropped_total",
                                       "Records a sink dropped (queue full, or rejected)", ["sink", "reason"],
                                       registry=r)
        self.sink_queue_bytes = Gauge("xtcp_sink_queue_bytes", "Encoded bytes waiting per sink", ["sink"],
                                      registry=r)
        self.namespaces = Gauge("xtcp_namespaces", "Namespaces by state", ["state"], registry=r)
        self.namespace_events = Counter("xtcp_namespace_events_total",
                                        "Namespaces opened, failed, vanished", ["event"], registry=r)
        self.backend = Gauge("xtcp_backend_info", "1 for the dump backend in use", ["backend", "fallback"],
                             registry=r)
        self.last_poll_timestamp = Gauge("xtcp_last_poll_timestamp_seconds", "When the last poll finished",
                                         registry=r)
        self.started = time.time()
        self._refreshers: list = []  # called at scrape time, for state that changes between polls

    def refresh_on_scrape(self, fn) -> None:
        """Call fn() before each render: sinks deliver between polls, a scrape must see it."""
        self._refreshers.append(fn)

    def _netns_label(self, name: str) -> str:
        if name in self._series_names:
            return name
        if len(self._series_names) < self.max_namespace_series:
            self._series_names.add(name)
            return name
        return OTHER

    def _delta(self, key: str, current: dict[str, int]) -> dict[str, int]:
        last = self._last.get(key, {})
        self._last[key] = dict(current)
        return {k: v - last.get(k, 0) for k, v in current.items() if v - last.get(k, 0) > 0}

    def observe_poll(self, batch: Batch, poller_stats) -> None:
        self.poll_seconds.observe(batch.duration_ns / 1e9)
        self.last_poll_timestamp.set(time.time())
        sockets: dict[str, int] = {}
        self.sockets.clear()
        self.dump_seconds.clear()
        for d in batch.dumps:
            ns = self._netns_label(d.netns)
            sockets[ns] = sockets.get(ns, 0) + d.count
            self.dump_seconds.labels(ns, _FAMILY.get(d.family, str(d.family))).set(d.dump_ns / 1e9)
            self.dump_bytes.labels(ns).inc(d.bytes_received)
            self.dump_recvs.labels(ns).inc(d.recvs)
            if d.error:
                self.dump_errors.labels(ns).inc()
        for ns, n in sockets.items():
            self.sockets.labels(ns).set(n)
        s = batch.stats
        for kind in DECODE_ERROR_KINDS:
            if getattr(s, kind):
                self.decode_errors.labels(kind).inc(getattr(s, kind))
        for t, n in s.unknown_by_type.items():
            self.unknown_attributes.labels(str(t)).inc(n)

        ps = poller_stats
        for name, value in self._delta("poller", {"polls": ps.polls, "skipped": ps.skipped_ticks}).items():
            (self.polls if name == "polls" else self.polls_skipped).inc(value)
        for reason, value in self._delta("rejected", ps.netlink_rejected).items():
            self.netlink_rejected.labels(reason).inc(value)
        ns = ps.namespaces
        for event, value in self._delta("ns", {"opened": ns.opened, "failed": ns.failed,
                                               "vanished": ns.vanished, "churn": ns.churn}).items():
            self.namespace_events.labels(event).inc(value)
        self.namespaces.labels("open").set(ns.current)
        self.namespaces.labels("failed").set(ns.current_failed)
        self.backend.clear()
        self.backend.labels(ps.backend or "none", str(bool(ps.fallback)).lower()).set(1)

    def observe_sinks(self, sink_stats: dict) -> None:
        for name, st in sink_stats.items():
            d = self._delta("sink:" + name, {"sent": st.sent_records, "dropped": st.dropped_records,
                                              "rejected": st.rejected_records})
            # Series exist from the first scrape (at 0), so rate() and alerts see them.
            self.records_published.labels(name).inc(d.get("sent", 0))
            for reason, label in (("dropped", "queue_full"), ("rejected", "rejected")):
                self.records_dropped.labels(name, label).inc(d.get(reason, 0))
            self.sink_queue_bytes.labels(name).set(st.queue_bytes)

    def render(self) -> bytes:
        for fn in self._refreshers:
            fn()
        return generate_latest(self.registry)


class MetricsServer:
    """GET /metrics (Prometheus text), /healthz (process alive), /readyz (a poll finished
    within ``ready_after_s``). Plain asyncio: one short request per connection."""

    def __init__(self, metrics: Metrics, host: str, port: int, ready_after_s: float):
        self.metrics, self.host, self.port, self.ready_after_s = metrics, host, port, ready_after_s
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _ready(self) -> bool:
        last = self.metrics.last_poll_timestamp._value.get()  # noqa: SLF001 - a plain gauge read
        return last > 0 and time.time() - last <= self.ready_after_s

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
            elif path == "/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            elif path == "/readyz":
                ok = self._ready()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "text/plain", b"ready\n" if ok else b"no poll finished recently\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
