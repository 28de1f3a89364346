"""The faces of close events: the daemon's forwarder, and `python -m xtcp_uring closes`.

    python -m xtcp_uring closes --namespaces all --format table

streams every TCP socket destroyed in any selected namespace, like ``ss -E`` but for all of
them, as JSON lines (the same fields as the daemon's records, container and pod context
included) or a table. The flags are
``options``'s (``--close-events``, ``--close-events-rcvbuf``, the subcommand's own); the
reading is ``closes.CloseEvents``'s.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import os
import signal
import socket
import sys

from .. import output, records, schema
from ..closes import CloseEvents
from ..enrich import ContainerEnricher
from ..enrich.namespace_labels import NamespaceLabeler
from ..errors import SinkError
from ..namespaces import NamespaceManager
from ..poller import container_roots

__all__ = ["forward_closes", "stream_closes"]

log = logging.getLogger("xtcp_uring.closes")

_TABLE = ("netns", "src", "dst", "state", "bytes_acked", "bytes_received", "total_retrans", "rtt_us")


async def forward_closes(poller, group, metrics) -> None:
    """Daemon task: every close batch to the sinks, beside (never in front of) the polls."""
    events = poller.close_events
    if events is None:
        return
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


def stream_closes(*, namespaces: str, fmt: str, rcvbuf: int, use_uring, rescan_s: float, flush_s: float,
                  max_records: int | None) -> int:
    """The ``closes`` subcommand: close records to stdout until SIGINT/SIGTERM or ``max_records``."""
    return asyncio.run(_stream(namespaces, fmt, rcvbuf, use_uring, rescan_s, flush_s, max_records))


async def _stream(namespaces: str, fmt: str, rcvbuf: int, use_uring, rescan_s: float, flush_s: float,
                  max_records: int | None) -> int:
    version = records.encode_labels(schema_version=schema.SCHEMA_VERSION)
    host = records.encode_labels(hostname=socket.gethostname(), kernel_release=os.uname().release)

    labeler = NamespaceLabeler(None, ContainerEnricher(container_roots(None)))  # as the Poller's records

    def labels(ns, ts: int) -> bytes:
        return version + records.encode_labels(timestamp_ns=ts) + host + labeler.namespace_part(ns, 0)

    manager = NamespaceManager(namespaces, close_events_rcvbuf=rcvbuf)
    events = CloseEvents(labels=labels, use_uring=use_uring, flush_interval=flush_s)
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
            await asyncio.to_thread(labeler.refresh, manager.namespaces)
            try:
                await asyncio.wait_for(stop.wait(), rescan_s)
            except asyncio.TimeoutError:
                pass

    follower = asyncio.create_task(follow())
    written = 0

    def emit(batch) -> int:
        buf = io.BytesIO()
        n = _write_table(batch, buf) if fmt == "table" else output.write(batch, buf, "jsonl")
        _write_all(sys.stdout.fileno(), buf.getvalue())
        return n

    if fmt == "table":
        _write_all(sys.stdout.fileno(), ("  ".join(f"{c:>15}" for c in _TABLE) + "\n").encode())
    try:
        while not stop.is_set() and (max_records is None or written < max_records):
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
        if max_records is None or written < max_records:
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
