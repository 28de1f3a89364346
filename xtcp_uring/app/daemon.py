"""The daemon: poll every --interval, publish each batch to every sink, stop cleanly.

Theory of operation: one Poller yields a batch per poll; a SinkGroup encodes it once per
framing and queues it on every sink (bounded, counted). SIGTERM/SIGINT stop the ticker but let
the poll in flight finish, so its batch still reaches the sinks, then the sinks flush and the
process exits 0 — unless a sink delivered nothing in the whole run (``delivery``: exit 75).
SIGHUP rescans every namespace source (threads included) before the next poll. With
``--close-events on`` (the default) a second task forwards the poller's close batches to the
same sinks (``closes.forward_closes``); at the end, what the subscriptions still held goes too.

At start the soft open-file limit is raised to the hard one (``namespaces.limits``); the namespace cap
(``--max-namespaces``) is sized from it. ``--once`` with ``--sink`` is one poll delivered to
those sinks, flushed, with the same exit code, and no listener.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import socket
import time

from .. import sinks
from ..clickhouse.retention import describe_retention
from ..errors import ConfigError
from ..namespaces.limits import FD_EXHAUSTED, default_max_namespaces, raise_open_file_limit
from ..privileges import current as current_privileges
from .closes import forward_closes
from .coverage import coverage_line, dump_errors, no_match_message
from .delivery import DeliveryWatch
from .options import daemon_poller_options, parse_listen, query_options, sink_options, sink_urls, store_options

log = logging.getLogger("xtcp_uring.daemon")

WARN_EVERY_S = 300.0  # the same warning (netns, error) at most once per 5 minutes


class _RateLimitedWarnings:
    def __init__(self):
        self._last: dict[tuple, float] = {}

    def warn(self, key: tuple, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._last[key] = now
            log.warning(msg, *args)


def run_daemon(args) -> int:
    # The store holds every namespace's connections: what we create is ours alone (0700/0600).
    os.umask(0o077)
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works the same, a little slower
        return asyncio.run(_serve(args))
    return uvloop.run(_serve(args))


async def _serve(args) -> int:
    from ..poller import Poller
    from .metrics import Metrics, MetricsServer

    once = getattr(args, "once", False)
    listen = None if once else parse_listen(args.metrics_listen)  # a bad value fails before any I/O
    ui_listen = None if once else parse_listen(args.ui_listen, flag="--ui-listen")
    query_opts = query_options(args)
    urls = sink_urls(args)
    if store_options(args) and not any(u.startswith("chdb:") for u in urls):
        log.warning("--retention and --max-store-bytes bound the embedded store (chdb sink), and no sink here is "
                    "one: a server's retention is its table's TTL (examples/clickhouse/)")
    group = sinks.SinkGroup([sinks.open_sink(u, **sink_options(args, u)) for u in urls])
    for url, sink in zip(args.sink or [], group.sinks):
        if sink.name != url:  # something was masked: a password sits on our command line
            log.warning("sink %s: its password is on the command line, readable by every local user in "
                        "/proc/%d/cmdline; use password_file= or the sink's password environment variable",
                        sink.name, os.getpid())
    # The io_uring path encodes each chunk as it arrives, while the kernel builds the next one.
    poller = Poller(**daemon_poller_options(args, encode=group.encoding))
    metrics = Metrics(args.max_namespace_series)
    # The host's --location/--label/--tag: in /metrics and on every Kafka message too.
    poller.host_labels.register_target_info(metrics.registry, args.hostname or socket.gethostname())
    for sink in group.sinks:
        if sink.scheme == "kafka":
            sink.add_headers(poller.host_labels.kafka_headers())
    watch = DeliveryWatch()

    def observe_sinks() -> None:
        stats = group.stats()
        metrics.observe_sinks(stats)
        watch.observe(stats)

    def not_ready() -> str | None:
        watch.observe(group.stats())
        return watch.not_ready()

    metrics.refresh_on_scrape(observe_sinks)
    server = None
    if listen is not None:
        server = MetricsServer(metrics, *listen, ready_after_s=3 * args.interval + 30, not_ready=not_ready)
        await server.start()  # first: a busy port is one line and an exit, nothing else opened
    try:
        await _run(args, group, poller, metrics, observe_sinks, query_opts, once, ui_listen)
    finally:
        if server is not None:
            await server.close()
    observe_sinks()
    for name, st in group.stats().items():
        log.info("sink %s: sent %d records, dropped %d, rejected %d", name, st.sent_records,
                 st.dropped_records, st.rejected_records)
    DeliveryWatch.check_run(group.stats())
    return 0


async def _run(args, group, poller, metrics, observe_sinks, query_opts: dict, once: bool, ui_listen=None) -> None:
    limit = raise_open_file_limit()
    if poller.max_namespaces is None:
        # Close events hold a second socket per namespace (options.close_event_options).
        poller.max_namespaces = default_max_namespaces(limit.soft, 2 if poller.close_events_enabled else 1)
    log.info("%s; polling at most %d namespaces%s", limit.describe(), poller.max_namespaces,
             "" if args.max_namespaces else " (--max-namespaces default: the limit less a reserve for chDB "
             "and sinks%s)" % (", halved: close events hold a second socket per namespace"
                               if poller.close_events_enabled else ""))
    privileges = current_privileges()
    for line in privileges.report():
        (log.info if ": yes" in line else log.warning)("%s", line)

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_fd_exhaustion_handler(metrics))
    stopping = asyncio.Event()

    def on_stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("%s: finishing the poll in flight, flushing sinks", signame)
            stopping.set()
            loop.create_task(poller.stop())

    def on_hup() -> None:
        log.info("SIGHUP: rescanning namespaces before the next poll")
        if poller.manager is not None:
            poller.manager.rescan_all()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hup)

    warnings = _RateLimitedWarnings()
    query_server = view = None
    async with group:
        local_store = [s for s in group.sinks if s.scheme == "chdb"]
        if ui_listen and not local_store:
            raise ConfigError("--ui-listen serves the embedded store, and no chdb sink is configured; "
                              "for a ClickHouse server run `python -m xtcp_uring view --clickhouse URL`")
        for s in local_store:
            log.info("store %s: records kept %s, rollups xtcp_1m 35d and xtcp_1h 400d, %s", s.config.path,
                     describe_retention(s.config.retention_s),
                     f"at most {s.config.max_store_bytes / 2**30:.1f} GiB on disk (oldest hours dropped first)"
                     if s.config.max_store_bytes else "no byte bound (--max-store-bytes)")
        if local_store and not once:
            from ..clickhouse import serve_queries

            store = local_store[0].config
            query_server = await serve_queries(store.path, database=store.database, **query_opts)
            if ui_listen:
                view = await _serve_view(store, query_opts["limits"], ui_listen)
        try:
            async with poller:
                log.info("polling %s every %.1fs with %s into %s", poller.selection, args.interval,
                         poller.stats.backend, ", ".join(s.name for s in group.sinks))
                closes = asyncio.create_task(forward_closes(poller, group, metrics), name="xtcp-close-events")
                frozen = False
                async for batch in poller:
                    await group.send(batch)
                    _log_poll(batch, poller, warnings)
                    metrics.observe_poll(batch, poller.stats)
                    observe_sinks()
                    if not frozen:
                        # What start-up made lives as long as we do: keep it out of the cyclic
                        # collector, whose full passes over it were ~7% of a Kafka daemon's CPU.
                        frozen = True
                        gc.freeze()
                    # Let go of this poll's records and encoded bytes before the next poll
                    # decodes: their blocks go back to the pool and are reused, rather than a
                    # second set (~80 MB at 100k sockets) being made while this one is held.
                    del batch
                if poller.close_events is not None:  # what arrived since the last flush goes out too
                    await poller.close_events.close()
                    await asyncio.wait({closes}, timeout=30)  # it sends the last batches, then ends
                closes.cancel()
                await asyncio.gather(closes, return_exceptions=True)
        finally:
            if view is not None:
                await view.close()
                view.backend.close()
            if query_server is not None:
                query_server.close()


async def _serve_view(store, limits, listen: tuple[str, int]):
    """The dashboard over this daemon's store, through the query path (``run_statement``)."""
    from ..view import StoreBackend, serve

    backend = StoreBackend(store.path, database=store.database, limits=limits)
    try:
        return await serve(backend, *listen, flag="--ui-listen")
    except BaseException:
        backend.close()
        raise


def _fd_exhaustion_handler(metrics):
    """The loop's exception handler: a listener that cannot accept for want of fds is counted
    and logged in one line (plain asyncio would log a traceback per attempt); the rest as usual."""
    last = [0.0]

    def handle(loop, context) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in FD_EXHAUSTED:
            metrics.fd_exhausted.labels("accept").inc()
            if time.monotonic() - last[0] >= WARN_EVERY_S:
                last[0] = time.monotonic()
                log.warning("cannot accept a connection: %s (counted in xtcp_fd_exhausted_total)", exc.strerror)
            return
        loop.default_exception_handler(context)

    return handle


def human_size(n: int) -> str:
    """Bytes for a log line: 312 B, 4.2 KB, 1.25 MB (a poll of two sockets is not "0.00 MB")."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1e3:.1f} KB"
    return f"{n / 1e6:.2f} MB"


def _log_poll(batch, poller, warnings: _RateLimitedWarnings) -> None:
    namespaces = len({d.netns for d in batch.dumps if d.family})  # not those that could not be opened
    nbytes = sum(d.bytes_received for d in batch.dumps)
    failed = [d for d in batch.dumps if d.error and d.family]  # namespaces not opened: the coverage line
    log.info("poll %d: %d namespaces, %d sockets, %.1f ms, %s, %s%s", batch.poll_id, namespaces,
             len(batch), batch.duration_ns / 1e6, human_size(nbytes), batch.backend,
             f", {len(failed)} dumps failed" if failed else "")
    emitted = poller.stats.emit
    if emitted is not None:
        last = emitted.last_poll
        log.info("poll %d: --emit changed sent %d of %d records (%s)", batch.poll_id, len(batch), sum(last.values()),
                 ", ".join(f"{k} {v}" for k, v in last.items() if v))
    manager = poller.manager
    if manager is not None and not batch.dumps and not manager.selection.all:
        warnings.warn(("no match",), "%s (still looking every poll)", no_match_message(manager))
    line = coverage_line(batch, manager)
    if line:  # the same every poll without privilege: once per WARN_EVERY_S, or when its reasons change
        warnings.warn(("coverage", re.sub(r"\d+", "N", line)), "%s", line)
    for line in dump_errors(batch):
        warnings.warn(("dump", line), "%s", line)
    s = batch.stats
    if s.malformed_offset is not None or s.bad_attributes or s.unknown_attributes or s.rejected_seq:
        warnings.warn(("decode",), "decoder: malformed message at %s, %d messages of another dump dropped, "
                      "%d bad and %d unknown attributes (counted in xtcp_netlink_rejected_total, "
                      "xtcp_decode_errors_total, xtcp_unknown_attributes_total)",
                      s.malformed_offset, s.rejected_seq, s.bad_attributes, s.unknown_attributes)
