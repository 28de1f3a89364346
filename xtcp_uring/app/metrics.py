"""Self-metrics for Prometheus, and the tiny HTTP server for /metrics, /healthz and /readyz.

Updated once per poll from the Batch, the poller's stats and the sinks' counters, so the hot
path never touches a metric. Per-namespace series are bounded (``max_namespace_series``): past
the bound, namespaces are summed under ``netns="_other"`` so a host with 5,000 containers does
not make 5,000 series per metric.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..listen import start_listener
from ..poller import REJECT_REASONS as NETLINK_REJECT_REASONS
from ..records import Batch
from .options import parse_listen  # noqa: F401  (its home moved: `view` needs it without prometheus_client)

log = logging.getLogger("xtcp_uring.metrics")

OTHER = "_other"
MAX_REQUEST_BYTES = 8192  # request line and headers together; a scrape sends a few hundred
MAX_CONNECTIONS = 32  # at once; more are closed unanswered (Prometheus scrapes one at a time)
REQUEST_TIMEOUT_S = 5.0  # the whole request, so a slow sender cannot hold a connection
FD_EXHAUSTED_WHERE = ("scan", "open", "accept")
DECODE_ERROR_KINDS = ("bad_attributes", "short_attributes", "short_messages")
# Close records dropped on our side: the consumer did not take a batch in time (queue_full), or
# nobody took a subscription's records before MAX_PENDING (overflow, in C).
CLOSE_DROP_REASONS = ("queue_full", "overflow")
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
        self.emit_records = Counter("xtcp_emit_records_total",
                                    "--emit changed: records kept by reason (new, state, retrans, rtt, changed, "
                                    "keyframe) or left out (unchanged)", ["decision"], registry=r)
        self.sockets_vanished = Counter("xtcp_sockets_vanished_total",
                                        "--emit changed: sockets of one poll absent from the next", registry=r)
        self.store_partitions_dropped = Counter(
            "xtcp_store_partitions_dropped_total",
            "Partitions (hours) of records the embedded store dropped to stay under --max-store-bytes", ["sink"],
            registry=r)
        self.store_bytes = Gauge("xtcp_store_bytes", "Bytes the embedded store took on disk at its last size check",
                                 ["sink"], registry=r)
        self.namespaces = Gauge("xtcp_namespaces", "Namespaces by state", ["state"], registry=r)
        self.namespace_events = Counter("xtcp_namespace_events_total",
                                        "Namespaces opened, failed, vanished, skipped, evicted", ["event"],
                                        registry=r)
        self.max_namespaces = Gauge("xtcp_max_namespaces", "Namespaces polled at most (--max-namespaces)",
                                    registry=r)
        self.fd_exhausted = Counter("xtcp_fd_exhausted_total",
                                    "Times the open-file limit (EMFILE/ENFILE) was hit, by where", ["where"],
                                    registry=r)
        for where in FD_EXHAUSTED_WHERE:
            self.fd_exhausted.labels(where)
        self.backend = Gauge("xtcp_backend_info", "1 for the dump backend in use", ["backend", "fallback"],
                             registry=r)
        self.last_poll_timestamp = Gauge("xtcp_last_poll_timestamp_seconds", "When the last poll finished",
                                         registry=r)
        self.close_events = Counter("xtcp_close_events_total",
                                    "Close records (destroyed TCP sockets) received, per namespace", ["netns"],
                                    registry=r)
        self.close_events_lost = Counter("xtcp_close_events_lost_total",
                                         "Close events the kernel dropped (subscription receive buffer full), "
                                         "per namespace", ["netns"], registry=r)
        self.close_batches_dropped = Counter(
            "xtcp_close_batches_dropped_total",
            "Close batches dropped because the consumer (the sinks) did not take them in time", registry=r)
        self.close_records_dropped = Counter(
            "xtcp_close_records_dropped_total",
            "Close records dropped on our side: in batches not taken in time (queue_full), or held too long "
            "untaken (overflow)", ["reason"], registry=r)
        for reason in CLOSE_DROP_REASONS:
            self.close_records_dropped.labels(reason)
        self.close_subscriptions = Gauge(
            "xtcp_close_subscriptions",
            "Namespaces with a close-event subscription (open), and polled ones without (missing)", ["state"],
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

    def observe_closes(self, stats) -> None:
        """Close-event counters from ``closes.CloseStats`` (cumulative, mirrored as deltas)."""
        for counter, key, current in ((self.close_events, "close_records", stats.records_by_netns),
                                      (self.close_events_lost, "close_lost", stats.lost_by_netns)):
            summed: dict[str, int] = {}
            for name, value in current.items():
                label = self._netns_label(name)
                summed[label] = summed.get(label, 0) + value
            for label, delta in self._delta(key, summed).items():
                counter.labels(label).inc(delta)
        for name, value in self._delta("close_dropped", {"batches": stats.dropped_batches,
                                                         "queue_full": stats.dropped_records,
                                                         "overflow": stats.overflow}).items():
            if name == "batches":
                self.close_batches_dropped.inc(value)
            else:
                self.close_records_dropped.labels(name).inc(value)
        self.close_subscriptions.labels("open").set(stats.subscriptions)
        self.close_subscriptions.labels("missing").set(stats.unsubscribed)

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
        if getattr(ps, "emit", None) is not None:
            for decision, value in self._delta("emit", {**ps.emit.total, "_vanished": ps.emit.vanished}).items():
                if decision == "_vanished":
                    self.sockets_vanished.inc(value)
                else:
                    self.emit_records.labels(decision).inc(value)
        for name, value in self._delta("poller", {"polls": ps.polls, "skipped": ps.skipped_ticks}).items():
            (self.polls if name == "polls" else self.polls_skipped).inc(value)
        for reason, value in self._delta("rejected", ps.netlink_rejected).items():
            self.netlink_rejected.labels(reason).inc(value)
        ns = ps.namespaces
        for event, value in self._delta("ns", {"opened": ns.opened, "failed": ns.failed,
                                               "vanished": ns.vanished, "churn": ns.churn,
                                               "skipped": ns.skipped_total, "evicted": ns.evicted}).items():
            self.namespace_events.labels(event).inc(value)
        self.namespaces.labels("open").set(ns.current)
        self.namespaces.labels("failed").set(ns.current_failed)
        self.namespaces.labels("skipped").set(ns.skipped)
        self.max_namespaces.set(ns.max_namespaces)
        for where, value in self._delta("fd", {"scan": ns.fd_exhausted_scan, "open": ns.fd_exhausted_open}).items():
            self.fd_exhausted.labels(where).inc(value)
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
            if hasattr(st, "partitions_dropped"):  # the embedded store
                d = self._delta("store:" + name, {"dropped": st.partitions_dropped})
                self.store_partitions_dropped.labels(name).inc(d.get("dropped", 0))
                self.store_bytes.labels(name).set(st.store_bytes)

    def render(self) -> bytes:
        for fn in self._refreshers:
            fn()
        return generate_latest(self.registry)


class MetricsServer:
    """GET /metrics (Prometheus text), /healthz (process alive), /readyz (a poll finished
    within ``ready_after_s`` and every sink delivers). Plain asyncio: one short request per
    connection, bounded in size, time and concurrency; read-only.

    ``not_ready`` is called at each /readyz: it returns why the daemon is not ready (a sink
    that delivers nothing), or None.
    """

    def __init__(self, metrics: Metrics, host: str, port: int, ready_after_s: float, not_ready=None):
        self.metrics, self.host, self.port, self.ready_after_s = metrics, host, port, ready_after_s
        self._not_ready = not_ready or (lambda: None)
        self._server: asyncio.AbstractServer | None = None
        self._connections = 0

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            ConfigError: the address cannot be bound (in use, not on this host, not resolvable).
        """
        self._server = await start_listener(
            self._handle, self.host, self.port, flag="--metrics-listen", limit=MAX_REQUEST_BYTES,
            in_use="the port is in use (another xtcp_uring?); choose another port or 'off'")
        bound = [sock.getsockname() for sock in self._server.sockets]
        self.port = bound[0][1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        exposed = [addr[0] for addr in bound if not ipaddress.ip_address(addr[0].split("%")[0]).is_loopback]
        if exposed:
            log.warning("metrics listen on %s, reachable from other hosts: /metrics names every network "
                        "namespace polled; bind 127.0.0.1 or firewall port %d", ", ".join(exposed), self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _ready(self) -> tuple[bool, bytes]:
        last = self.metrics.last_poll_timestamp._value.get()  # noqa: SLF001 - a plain gauge read
        if not (last > 0 and time.time() - last <= self.ready_after_s):
            return False, b"no poll finished recently\n"
        why = self._not_ready()
        return (False, why.encode() + b"\n") if why else (True, b"ready\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            status, ctype, body = await asyncio.wait_for(self._answer(reader), REQUEST_TIMEOUT_S)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        size = 0
        try:
            line = await reader.readline()
            size += len(line)
            while True:
                header = await reader.readline()
                size += len(header)
                if header in (b"\r\n", b"\n", b"") or size > MAX_REQUEST_BYTES:
                    break
        except (asyncio.LimitOverrunError, ValueError):  # one line past the StreamReader limit
            size = MAX_REQUEST_BYTES + 1
        if size > MAX_REQUEST_BYTES:
            return "431 Request Header Fields Too Large", "text/plain", b"request too large\n"
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", "text/plain", b"bad request\n"
        if parts[0] != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?")[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ok, body = self._ready()
            return ("200 OK" if ok else "503 Service Unavailable"), "text/plain", body
        return "404 Not Found", "text/plain", b"not found\n"
