"""The daemon: poll every --interval, publish each batch to every sink, stop cleanly.

Theory of operation: one Poller yields a batch per poll; a SinkGroup encodes it once per
framing and queues it on every sink (bounded, counted). SIGTERM/SIGINT stop the ticker but let
the poll in flight finish, so its batch still reaches the sinks, then the sinks flush and the
process exits 0. SIGHUP rescans every namespace source (threads included) before the next poll.
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
    g = p.add_argument_group("daemon: operations")
    g.add_argument("--metrics-listen", default=env_default("metrics_listen", "127.0.0.1:9108"),
                   help="HOST:PORT for /metrics, /healthz, /readyz; 'off' to disable")
    g.add_argument("--max-namespace-series", type=int, default=int(env_default("max_namespace_series", 100)),
                   help="per-namespace metric series before the rest are summed as _other")


def sink_urls(args) -> list[str]:
    urls = args.sink or [u for u in env_default("sink", "").split(",") if u]
    return urls or [f"chdb://{os.path.abspath(args.data_dir)}"]


class _RateLimitedWarnings:
    def __init__(self):
        self._last: dict[tuple, float] = {}

    def warn(self, key: tuple, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._last[key] = now
            log.warning(msg, *args)


def run_daemon(args) -> int:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works the same, a little slower
        return asyncio.run(_serve(args))
    return uvloop.run(_serve(args))


async def _serve(args) -> int:
    from .metrics import Metrics, MetricsServer
    from .poller import Poller, poller_options_from_args

    options = poller_options_from_args(args)
    sink_opts = {"queue_bytes": args.queue_bytes} if args.queue_bytes else {}
    urls = sink_urls(args)
    group = sinks.SinkGroup([sinks.open_sink(u, **({"format": args.format} if u == "-" else {}), **sink_opts)
                             for u in urls])
    # The io_uring path encodes each chunk as it arrives, while the kernel builds the next one.
    poller = Poller(interval=args.interval, jitter=args.jitter, max_polls=args.max_polls,
                    hostname=args.hostname, encode=group.encoding, **options)
    metrics = Metrics(args.max_namespace_series)
    metrics.refresh_on_scrape(lambda: metrics.observe_sinks(group.stats()))
    server = None
    if args.metrics_listen and args.metrics_listen != "off":
        host, _, port = args.metrics_listen.rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--metrics-listen wants HOST:PORT, not {args.metrics_listen!r}")
        server = MetricsServer(metrics, host or "127.0.0.1", int(port), ready_after_s=3 * args.interval + 30)

    privileges = current_privileges()
    for line in privileges.report():
        (log.info if ": yes" in line else log.warning)("%s", line)

    loop = asyncio.get_running_loop()
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
        if server is not None:
            await server.start()
        local_store = [u for u in urls if u.startswith("chdb://")]
        if local_store:
            from .clickhouse import serve_queries

            query_server = await serve_queries(local_store[0][len("chdb://"):].split("?")[0])
        try:
            async with poller:
                log.info("polling %s every %.1fs with %s into %s", poller.selection, args.interval,
                         poller.stats.backend, ", ".join(s.name for s in group.sinks))
                async for batch in poller:
                    await group.send(batch)
                    _log_poll(batch, poller, warnings)
                    metrics.observe_poll(batch, poller.stats)
                    metrics.observe_sinks(group.stats())
        finally:
            if query_server is not None:
                query_server.close()
            if server is not None:
                await server.close()
    metrics.observe_sinks(group.stats())
    for name, st in group.stats().items():
        log.info("sink %s: sent %d records, dropped %d, rejected %d", name, st.sent_records,
                 st.dropped_records, st.rejected_records)
    return 0


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
