"""The daemon: poll every --interval, publish each batch to every sink, stop cleanly.

Theory of operation: one Poller yields a batch per poll; a SinkGroup encodes it once per
framing and queues it on every sink (bounded, counted). SIGTERM/SIGINT stop the ticker but let
the poll in flight finish, so its batch still reaches the sinks, then the sinks flush and the
process exits 0 — unless a sink delivered nothing in the whole run (``delivery``: exit 75).
SIGHUP rescans every namespace source (threads included) before the next poll.

At start the soft open-file limit is raised to the hard one (``limits``); the namespace cap
(``--max-namespaces``) is sized from it. ``--once`` with ``--sink`` is one poll delivered to
those sinks, flushed, with the same exit code, and no listener.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time

from . import sinks
from .clickhouse import DEFAULT_DATA_DIR
from .delivery import DeliveryWatch
from .limits import FD_EXHAUSTED, default_max_namespaces, raise_open_file_limit
from .privileges import current as current_privileges
from .errors import ConfigError

log = logging.getLogger("xtcp_uring.daemon")

WARN_EVERY_S = 300.0  # the same warning (netns, error) at most once per 5 minutes


def env_default(name: str, default):
    """The XTCP_<NAME> environment variable, else default: every flag's fallback."""
    return os.environ.get("XTCP_" + name.upper().replace("-", "_"), default)


def add_daemon_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("daemon: when")
    g.add_argument("--interval", type=float, default=float(env_default("interval", 10.0)), help="seconds between polls")
    g.add_argument("--jitter", type=float, default=float(env_default("jitter", 0.1)),
                   help="random delay per tick, as a fraction of the interval (default 0.1)")
    g.add_argument("--max-polls", type=int, default=int(env_default("max_polls", 0)) or None,
                   help="stop after this many polls (default: run until SIGTERM)")
    g = p.add_argument_group("daemon: where to")
    g.add_argument("--sink", action="append", default=None,
                   help="destination URL, repeatable: kafka://host:9092/topic, chdb:///dir, "
                        "clickhouse+http://host:8123/db, file:///x.pb, udp://host:port, - (stdout). "
                        "Default: chdb under --data-dir. XTCP_SINK takes a comma-separated list")
    g.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR),
                   help="embedded ClickHouse store for the default sink and `query` (default ./xtcp-data)")
    g.add_argument("--queue-bytes", default=env_default("queue_bytes", None),
                   help="per-sink bound of queued encoded batches, e.g. 64M (oldest dropped past it)")
    g.add_argument("--hostname", default=env_default("hostname", None), help="hostname label (default: this host's)")
    g.add_argument("--allow-insecure", action="store_true", default=env_default("allow_insecure", "") in ("1", "true"),
                   help="let a sink send credentials unencrypted to another host (Kafka SASL without TLS, "
                        "Basic auth over clickhouse+http); refused otherwise")
    g = p.add_argument_group("daemon: the query socket (<data-dir>/query.sock, read-only SQL)")
    g.add_argument("--query-group", default=env_default("query_group", None),
                   help="group (name or gid) whose members may query too (default: root and this user only)")
    g.add_argument("--query-timeout", type=float, default=float(env_default("query_timeout", 30.0)),
                   help="seconds one query may run (default 30)")
    g.add_argument("--query-max-result-bytes", default=env_default("query_max_result_bytes", "32M"),
                   help="largest result a query may return, e.g. 32M (default)")
    g.add_argument("--query-max-memory", default=env_default("query_max_memory", "512M"),
                   help="memory one query may use, e.g. 512M (default)")
    g = p.add_argument_group("daemon: operations")
    g.add_argument("--metrics-listen", default=env_default("metrics_listen", "127.0.0.1:9108"),
                   help="HOST:PORT or [IPV6]:PORT for /metrics, /healthz, /readyz (default 127.0.0.1:9108); "
                        "'off' to disable")
    g.add_argument("--max-namespace-series", type=int, default=int(env_default("max_namespace_series", 100)),
                   help="per-namespace metric series before the rest are summed as _other")


def sink_urls(args) -> list[str]:
    urls = args.sink or [u for u in env_default("sink", "").split(",") if u]
    return urls or [f"chdb://{os.path.abspath(args.data_dir)}"]


def sinks_given(args) -> bool:
    """Did the user name a sink (flag or XTCP_SINK), rather than take the default store?"""
    return bool(args.sink or env_default("sink", ""))


class _RateLimitedWarnings:
    def __init__(self):
        self._last: dict[tuple, float] = {}

    def warn(self, key: tuple, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._last[key] = now
            log.warning(msg, *args)


def query_options(args) -> dict:
    """``serve_queries`` keywords from the --query-* flags.

    Raises:
        ConfigError: a size, duration or group that does not parse or does not exist.
    """
    import grp

    from .clickhouse import QueryLimits
    from .sinks.base import parse_size

    sizes = {}
    for flag, value in (("--query-max-result-bytes", args.query_max_result_bytes),
                        ("--query-max-memory", args.query_max_memory)):
        try:
            sizes[flag] = parse_size(str(value))
        except ValueError:
            raise ConfigError(f"{flag} {value!r}: want a byte count such as 32M or 1G") from None
    limits = QueryLimits(timeout_s=args.query_timeout, max_result_bytes=sizes["--query-max-result-bytes"],
                         max_memory_bytes=sizes["--query-max-memory"])
    group = args.query_group
    if group is not None:
        try:
            group = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"--query-group {args.query_group}: no such group") from None
    return {"limits": limits, "group": group}


def run_daemon(args) -> int:
    # The store holds every namespace's connections: what we create is ours alone (0700/0600).
    os.umask(0o077)
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works the same, a little slower
        return asyncio.run(_serve(args))
    return uvloop.run(_serve(args))


async def _serve(args) -> int:
    from .metrics import Metrics, MetricsServer, parse_listen
    from .poller import Poller, poller_options_from_args

    once = getattr(args, "once", False)
    listen = None if once else parse_listen(args.metrics_listen)  # a bad value fails before any I/O
    options = poller_options_from_args(args)
    query_opts = query_options(args)
    sink_opts = {"queue_bytes": args.queue_bytes} if args.queue_bytes else {}
    urls = sink_urls(args)
    group = sinks.SinkGroup([sinks.open_sink(u, allow_insecure=args.allow_insecure,
                                             **({"format": args.format} if u == "-" else {}), **sink_opts)
                             for u in urls])
    for url, sink in zip(args.sink or [], group.sinks):
        if sink.name != url:  # something was masked: a password sits on our command line
            log.warning("sink %s: its password is on the command line, readable by every local user in "
                        "/proc/%d/cmdline; use password_file= or the sink's password environment variable",
                        sink.name, os.getpid())
    # The io_uring path encodes each chunk as it arrives, while the kernel builds the next one.
    from .closes_cli import daemon_close_options

    options.update(daemon_close_options(args))  # before any I/O: a bad --close-events-rcvbuf is one line
    poller = Poller(interval=args.interval, jitter=args.jitter, max_polls=args.max_polls,
                    hostname=args.hostname, encode=group.encoding, **options)
    metrics = Metrics(args.max_namespace_series)
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
        await _run(args, group, poller, metrics, observe_sinks, query_opts, once)
    finally:
        if server is not None:
            await server.close()
    observe_sinks()
    for name, st in group.stats().items():
        log.info("sink %s: sent %d records, dropped %d, rejected %d", name, st.sent_records,
                 st.dropped_records, st.rejected_records)
    DeliveryWatch.check_run(group.stats())
    return 0


async def _run(args, group, poller, metrics, observe_sinks, query_opts: dict, once: bool) -> None:
    limit = raise_open_file_limit()
    if poller.max_namespaces is None:
        # Close events hold a second socket per namespace (closes_cli.daemon_close_options).
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
    query_server = None
    async with group:
        local_store = [s for s in group.sinks if s.scheme == "chdb"]
        if local_store and not once:
            from .clickhouse import serve_queries

            store = local_store[0].config
            query_server = await serve_queries(store.path, database=store.database, **query_opts)
        try:
            async with poller:
                log.info("polling %s every %.1fs with %s into %s", poller.selection, args.interval,
                         poller.stats.backend, ", ".join(s.name for s in group.sinks))
                from .closes_cli import forward_closes

                closes = asyncio.create_task(forward_closes(poller, group, metrics), name="xtcp-close-events")
                async for batch in poller:
                    await group.send(batch)
                    _log_poll(batch, poller, warnings)
                    metrics.observe_poll(batch, poller.stats)
                    observe_sinks()
                if poller.close_events is not None:  # what arrived since the last flush goes out too
                    await poller.close_events.close()
                    await asyncio.wait({closes}, timeout=30)  # it sends the last batches, then ends
                closes.cancel()
                await asyncio.gather(closes, return_exceptions=True)
        finally:
            if query_server is not None:
                query_server.close()


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


def _log_poll(batch, poller, warnings: _RateLimitedWarnings) -> None:
    namespaces = len({d.netns for d in batch.dumps})
    nbytes = sum(d.bytes_received for d in batch.dumps)
    failed = [d for d in batch.dumps if d.error]
    log.info("poll %d: %d namespaces, %d sockets, %.1f ms, %.2f MB, %s%s", batch.poll_id, namespaces,
             len(batch), batch.duration_ns / 1e6, nbytes / 1e6, batch.backend,
             f", {len(failed)} dumps failed" if failed else "")
    for d in failed:
        warnings.warn(("dump", d.netns, d.error), "netns %s: %s", d.netns, d.error)
    s = batch.stats
    if s.malformed_offset is not None or s.bad_attributes or s.unknown_attributes or s.rejected_seq:
        warnings.warn(("decode",), "decoder: malformed message at %s, %d messages of another dump dropped, "
                      "%d bad and %d unknown attributes (counted in xtcp_netlink_rejected_total, "
                      "xtcp_decode_errors_total, xtcp_unknown_attributes_total)",
                      s.malformed_offset, s.rejected_seq, s.bad_attributes, s.unknown_attributes)
