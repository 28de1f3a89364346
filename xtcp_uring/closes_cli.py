"""The faces of close events: the daemon's flags and forwarder, and `python -m xtcp_uring closes`.

    python -m xtcp_uring closes --namespaces all --format table

streams every TCP socket destroyed in any selected namespace, like ``ss -E`` but for all of
them, as JSON lines (the same fields as the daemon's records) or a table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import logging
import os
import signal
import sys

from . import output, records, schema
from .errors import ConfigError

log = logging.getLogger("xtcp_uring.closes")

_TABLE = ("netns", "src", "dst", "state", "bytes_acked", "bytes_received", "total_retrans", "rtt_us")


def _env(name: str, default):
    from .daemon import env_default

    return env_default(name, default)


def parse_rcvbuf(value) -> int:
    from .sinks.base import parse_size

    try:
        size = parse_size(str(value))
    except ValueError:
        raise ConfigError(f"--close-events-rcvbuf {value!r}: want a byte count such as 4M") from None
    if not 4096 <= size <= 1 << 31:
        raise ConfigError(f"--close-events-rcvbuf {value!r}: between 4K and 2G")
    return size


def add_close_options(p: argparse.ArgumentParser) -> None:
    """The daemon's close-event flags."""
    g = p.add_argument_group("close events (every socket's final state, short-lived ones included)")
    g.add_argument("--close-events", choices=("on", "off"), default=_env("close_events", "on"),
                   help="subscribe to each namespace's TCP destroy events and send one close record per "
                        "socket end to the sinks (default on; not with --once)")
    g.add_argument("--close-events-rcvbuf", default=_env("close_events_rcvbuf", "4M"),
                   help="receive buffer of each namespace's subscription; events past it are lost and "
                        "counted in xtcp_close_events_lost_total (default 4M)")


def daemon_close_options(args) -> dict:
    """Poller keywords for the daemon: close events on unless --once or --close-events off."""
    if getattr(args, "once", False) or getattr(args, "close_events", "off") != "on":
        return {}
    return {"close_events": True, "close_events_rcvbuf": parse_rcvbuf(args.close_events_rcvbuf)}


async def forward_closes(poller, group, metrics) -> None:
    """Daemon task: every close batch to the sinks, beside (never in front of) the polls."""
    events = poller.close_events
    if events is None:
        return
    from .errors import SinkError

    metrics.refresh_on_scrape(lambda: metrics.observe_closes(events.stats))  # losses come without records
    failing = None
    async for batch in events:
        try:
            await group.send(batch)
        except SinkError as exc:  # the sink counts what it could not take; the polls report it too
            if str(exc) != failing:
                failing = str(exc)
                log.error("close events: %s", exc)
        metrics.observe_closes(events.stats)


def add_subparser_options(p: argparse.ArgumentParser) -> None:
    p.description = "Stream the final state of every TCP socket closed in the selected namespaces."
    p.add_argument("--namespaces", default="all", help="all | host | names or globs (default all)")
    p.add_argument("--format", default="jsonl", choices=("jsonl", "table"))
    p.add_argument("--uring", choices=("auto", "on", "off"), default="auto",
                   help="read with io_uring, or plain sockets (off)")
    p.add_argument("--rcvbuf", default="4M", help="receive buffer per namespace subscription (default 4M)")
    p.add_argument("--rescan", type=float, default=2.0, help="seconds between namespace rescans (default 2)")
    p.add_argument("--flush", type=float, default=0.2, help="seconds between writes (default 0.2)")
    p.add_argument("--max-records", type=int, default=None, help="exit after this many close records")


def cmd_closes(args) -> int:
    if args.rescan <= 0 or args.flush <= 0:
        raise ConfigError("--rescan and --flush are seconds > 0")
    rcvbuf = parse_rcvbuf(args.rcvbuf)
    use_uring = {"auto": "auto", "on": True, "off": False}[args.uring]
    return asyncio.run(_stream(args, rcvbuf, use_uring))


async def _stream(args, rcvbuf: int, use_uring) -> int:
    import socket

    from .closes import CloseEvents
    from .namespaces import NamespaceManager

    version = records.encode_labels(schema_version=schema.SCHEMA_VERSION)
    host = records.encode_labels(hostname=socket.gethostname(), kernel_release=os.uname().release)

    def labels(ns, ts: int) -> bytes:
        return (version + records.encode_labels(timestamp_ns=ts) + host +
                records.encode_labels(netns=ns.name, netns_inode=ns.inode, netns_cookie=ns.cookie, netns_pid=ns.pid))

    manager = NamespaceManager(args.namespaces, close_events_rcvbuf=rcvbuf)
    events = CloseEvents(labels=labels, use_uring=use_uring, flush_interval=args.flush)
    manager.before_close.append(events.forget)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    events.start()

    async def follow() -> None:
        while not stop.is_set():
            await manager.reconcile()
            events.sync(manager.namespaces)
            try:
                await asyncio.wait_for(stop.wait(), args.rescan)
            except asyncio.TimeoutError:
                pass

    follower = asyncio.create_task(follow())
    written = 0

    def emit(batch) -> int:
        buf = io.BytesIO()
        n = _write_table(batch, buf) if args.format == "table" else output.write(batch, buf, "jsonl")
        _write_all(sys.stdout.fileno(), buf.getvalue())
        return n

    if args.format == "table":
        _write_all(sys.stdout.fileno(), ("  ".join(f"{c:>15}" for c in _TABLE) + "\n").encode())
    try:
        while not stop.is_set() and (args.max_records is None or written < args.max_records):
            waiter = asyncio.ensure_future(events.next_batch())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if waiter not in done:
                waiter.cancel()
                break
            written += emit(waiter.result())
    finally:
        stop.set()
        await asyncio.gather(follower, return_exceptions=True)
        await events.close()  # what the subscriptions still held comes out too
        if args.max_records is None or written < args.max_records:
            for batch in events.take_ready():
                written += emit(batch)
        lost = events.stats.lost
        manager.close()
        if lost:
            log.warning("%d close events lost (receive buffer full): raise --rcvbuf", lost)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    """Every byte, in order: a signal can cut a write to a full pipe short (whole lines only)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_table(batch: records.Batch, out) -> int:
    lines = []
    for d in batch.dumps:
        a = d.array()
        for i in range(d.count):
            r = a[i]
            src = _addr(r, "inet_diag_msg_socket_source", r["inet_diag_msg_socket_source_port"])
            dst = _addr(r, "inet_diag_msg_socket_destination", r["inet_diag_msg_socket_destination_port"])
            row = (d.netns, src, dst, int(r["inet_diag_msg_state"]), int(r["tcp_info_bytes_acked"]),
                   int(r["tcp_info_bytes_received"]), int(r["tcp_info_total_retrans"]), int(r["tcp_info_rtt"]))
            lines.append("  ".join(f"{str(v):>15}" for v in row))
    if lines:
        out.write(("\n".join(lines) + "\n").encode())
    return len(lines)


def _addr(r, name: str, port) -> str:
    n = int(r[name + "_len"])
    if n not in (4, 16):
        return ""
    ip = ipaddress.ip_address(bytes(r[name][:n]))
    return f"[{ip}]:{int(port)}" if n == 16 else f"{ip}:{int(port)}"
