"""Close events: every TCP socket's final state, taken when the kernel destroys it.

A poll sees only the sockets alive at that instant. The kernel also broadcasts every destroyed
TCP socket (its ``inet_diag_msg`` and final ``tcp_info``) to subscribers of the destroy groups
of the socket's own namespace. ``NamespaceManager(close_events_rcvbuf=...)`` opens one such
subscription socket per namespace next to the dump socket (same opener thread, through
``native.netns.open_close_socket``, connected to the kernel so only the kernel can feed it);
``CloseEvents`` reads them all and hands out
``records.Batch`` objects whose records carry ``event = EVENT_CLOSE`` and ``event_time_ns``
(receive time), with the namespace labels of a poll's records.

Two readers give the same records through the same C decoder:
- io_uring: the dump ring itself (``backends.uring.UringBackend.share_ring``, the Poller's
  backend; a ring of our own, with no dumps, when there is none, as in the ``closes``
  subcommand) keeps one multishot RECV armed per subscription (``native.ring.Ring.close_add``
  over ``csrc/close_events.c``) across polls and decodes each datagram in C as it completes.
  The backend reads the ring's eventfd, reaps for the poll and for us alike and tells us
  (``ring_ready``); we only take each namespace's record array when a batch is due.
- plain sockets (io_uring disabled): one non-blocking reader per subscription on the event
  loop, checking the sender (nl_pid 0) of every datagram; decoded in C when a batch is due.

Batching: a batch goes out every ``flush_interval`` seconds or as soon as ``flush_records``
records are waiting, whichever first; never while a poll waits (a reap during a poll only
decodes; batches have their own queue). Overload is counted, never silent: a full receive queue
makes the kernel drop events and fail the next recv with ENOBUFS; the kernel's own drop counter
then says how many (``lost``, per namespace: ``xtcp_close_events_lost_total``). Batches a slow
consumer does not take are dropped past ``queue_size`` and counted (``dropped_batches``,
``dropped_records``: ``xtcp_close_batches_dropped_total`` / ``xtcp_close_records_dropped_total``).

Room: beside ``backends`` (it reads sockets and rings through ``native`` and hands out
``records.Batch``); the ``Poller`` drives it, ``app`` exports its counters and owns its flags.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from . import records
from .errors import RingUnavailableError
from .native import HOST_TCP_INFO_LAYOUT
from .native.closes import decode_closes, socket_drops
from .wire.netlink import KERNEL_PORT_ID, NETLINK_SOCK_DIAG

__all__ = ["CloseEvents", "CloseStats", "DEFAULT_RCVBUF"]

log = logging.getLogger("xtcp_uring.closes")

DEFAULT_RCVBUF = 4 << 20  # ~8,000 events of ~500 B of kernel skb overhead each before any loss
_RECV_LEN = 65536
_RING_ENTRIES = 256
_PLAIN_READS_PER_WAKE = 1024  # then back to the loop, so polls and other readers get a turn


@dataclass
class CloseStats:
    records: int = 0  # close records handed out
    lost: int = 0  # events the kernel dropped (receive queue full), over all namespaces
    lost_by_netns: dict[str, int] = field(default_factory=dict)
    records_by_netns: dict[str, int] = field(default_factory=dict)
    overflow: int = 0  # records dropped in C because nobody took them
    batches: int = 0
    dropped_batches: int = 0  # not taken by the consumer in time (queue_size)
    dropped_records: int = 0
    subscriptions: int = 0  # live
    unsubscribed: int = 0  # polled namespaces without a close socket (could not be opened)
    rejected_sender: int = 0  # datagrams from anyone but the kernel (plain reader): dropped
    recv_errors: int = 0
    backend: str = ""


class _Sub:
    __slots__ = ("ns", "index", "sock", "pending", "drops_seen")

    def __init__(self, ns, index: int = -1, sock: socket.socket | None = None):
        self.ns = ns
        self.index = index  # the ring's subscription index
        self.sock = sock  # the plain reader's socket (over ns.close_fd, detached when done)
        self.pending: list[tuple[bytes, int]] = []  # plain: (datagram, receive time)
        self.drops_seen = 0


class CloseEvents:
    """Reads the close-event subscriptions of the namespaces it is given; yields batches.

    Args:
        labels: ``labels(ns, timestamp_ns) -> bytes``: the [ns] label bytes for the records of
            one namespace (``records.encode_labels``), as a poll's records have them.
        layout: tcp_info tail layout (``native.tcp_info_layout``).
        use_uring: True, False, or "auto" (io_uring, else the plain reader).
        flush_interval / flush_records: a batch goes out after this long or this many records.
        queue_size: batches kept for a slow consumer; beyond, the oldest is dropped, counted.
        sample: ``sample(dump)`` thins a namespace's close records in place (the Poller's
            deterministic sampling by cookie: a socket kept in the polls is kept here too).
        ring_host: the ``backends.uring.UringBackend`` whose ring the subscriptions share (the
            Poller's); None: with io_uring, a ring of our own (no dumps on it).

    Use: ``start()`` on the event loop, ``sync(namespaces)`` after each reconcile, ``forget(ns)``
    before a namespace's sockets are closed (``NamespaceManager.before_close``), then
    ``async for batch in close_events`` (or ``await next_batch()``), ``await close()``.
    """

    def __init__(self, *, labels: Callable[[object, int], bytes], layout: int = HOST_TCP_INFO_LAYOUT,
                 use_uring: bool | str = "auto", flush_interval: float = 1.0, flush_records: int = 10000,
                 queue_size: int = 64, sample: Callable[[records.Dump], None] | None = None,
                 ring_host=None):
        self._labels = labels
        self._sample = sample
        self._layout = layout
        self._use_uring = use_uring
        self.flush_interval = float(flush_interval)
        self.flush_records = int(flush_records)
        self.queue_size = int(queue_size)
        self.stats = CloseStats()
        self._subs: dict[int, _Sub] = {}  # net_id -> subscription
        self._by_index: dict[int, _Sub] = {}
        self._dirty: set[int] = set()  # ring indices with something to take
        self._orphans: list = []  # taken from namespaces that went away, for the next batch
        self._warned_missing: set[str] = set()
        self._host = ring_host  # the UringBackend whose ring we read through, once started
        self._own_host = False  # we made it (and close it)
        self._detached: list = []  # namespaces to subscribe again on the host's next ring
        self._flushing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: collections.deque[records.Batch] = collections.deque()
        self._changed: asyncio.Event | None = None
        self._timer: asyncio.Task | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def _ring(self):
        """The ring the subscriptions live on (``native.ring.Ring``), None: plain sockets."""
        return self._host.ring if self._host is not None else None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        if self._use_uring is False:
            self._host = None
        elif self._host is None:
            try:
                from .backends.uring import UringBackend  # ImportError where the extension lacks the ring

                self._host = UringBackend(decode_thread=False, tcp_info_layout=self._layout, entries=_RING_ENTRIES)
                self._own_host = True
            except (RingUnavailableError, OSError, ImportError) as exc:
                if self._use_uring is True:
                    raise
                log.info("close events: io_uring unavailable (%s), reading with plain sockets", exc)
        if self._host is not None:
            self._host.share_ring(self)
        self.stats.backend = "io_uring" if self._host is not None else "sockets"
        self._timer = self._loop.create_task(self._flush_every(), name="xtcp-close-events-flush")

    async def close(self) -> None:
        """End every subscription; what they received is queued as a last batch, which
        iteration still yields (then ends) and ``take_ready()`` returns. Idempotent."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        for sub in list(self._subs.values()):
            self.forget(sub.ns)
        self.flush()
        self._closed = True
        host, self._host = self._host, None
        if host is not None:
            host.unshare_ring(self)
            if self._own_host:
                host.close()
        if self._changed is not None:
            self._changed.set()

    # --- namespaces ----------------------------------------------------------------------

    def sync(self, namespaces) -> None:
        """Subscribe every namespace that has a close socket and is not subscribed yet."""
        missing = []
        for ns in namespaces:
            if ns.close_fd < 0:
                missing.append(ns.name)
            if ns.close_fd < 0 or ns.net_id in self._subs or self._closed:
                continue
            self._subscribe(ns)
        self.stats.subscriptions = len(self._subs)
        self.stats.unsubscribed = len(missing)
        new = set(missing) - self._warned_missing
        if new:
            self._warned_missing |= new
            log.warning("close events: %d namespaces (%s) have no subscription (the opener could not open "
                        "one; counted in namespace stats close_events_unavailable): their closes are not recorded",
                        len(new), ", ".join(sorted(new)[:5]))

    def _subscribe(self, ns) -> None:
        ring = self._ring
        if ring is not None:
            try:
                idx = ring.close_add(ns.net_id, ns.close_fd)
            except OSError as exc:
                log.warning("close events of namespace %s: %s", ns.name, exc.strerror)
                return
            sub = _Sub(ns, index=idx)
            self._by_index[idx] = sub
        else:
            # The manager's fd itself (no dup: one fd per namespace is what the limits count);
            # detached, never closed, by forget().
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG, fileno=ns.close_fd)
            sock.setblocking(False)
            sub = _Sub(ns, sock=sock)
            sub.drops_seen = socket_drops(sock.fileno()) or 0
            self._loop.add_reader(sock.fileno(), self._on_plain, sub)
        self._subs[ns.net_id] = sub

    def forget(self, ns) -> None:
        """Stop a namespace's subscription; what it received and was not taken yet is kept
        for the next batch. Call before its close socket is closed."""
        sub = self._subs.get(ns.net_id)
        if sub is None or sub.ns is not ns and sub.ns.close_fd != ns.close_fd:
            return
        del self._subs[ns.net_id]
        if sub.sock is not None:
            self._on_plain(sub)  # what is still queued on the socket
            self._orphans.extend(self._take(sub))
            self._loop.remove_reader(sub.sock.fileno())
            sub.sock.detach()  # the manager closes the fd
        elif self._ring is not None:
            self._reap_only()
            if self._ring.close_remove(sub.index):  # keeps its last events for one take
                self._dirty.add(sub.index)
                self._orphans.extend(self._take(sub))
            else:
                log.warning("close events of namespace %s: the last ones were dropped (the cancel of its "
                            "receive did not complete)", ns.name)
            self._by_index.pop(sub.index, None)
            self._dirty.discard(sub.index)
        self.stats.subscriptions = len(self._subs)

    # --- the shared ring (called by the host backend) ------------------------------------

    def ring_ready(self) -> None:
        """The host reaped (a poll's wake-up, or one between polls, at most every
        ``backends.uring.CLOSE_REAP_COALESCE_S``): note who has something to take; a batch goes
        out once ``flush_records`` are waiting."""
        ring = self._ring
        if ring is None:
            return
        self._dirty.update(ring.close_ready())
        if not self._flushing and ring.close_pending() >= self.flush_records:
            self.flush()

    def ring_detach(self, replaced: bool) -> None:
        """The host is about to free its ring: every subscription on it is removed (what it
        held is kept for the next batch), to be subscribed again on the host's next ring
        (``replaced``, then ``ring_attach``) or, the host closing, on plain sockets."""
        subs = [sub for sub in self._subs.values() if sub.sock is None]
        for sub in subs:
            self.forget(sub.ns)
        self._detached += [sub.ns for sub in subs]
        if replaced:
            return
        if self._host is not None:
            self._host.unshare_ring(self)
        self._host = None
        self._own_host = False
        self.stats.backend = "sockets"
        detached, self._detached = self._detached, []
        if not self._closed:
            for ns in detached:
                if ns.close_fd >= 0 and ns.net_id not in self._subs:
                    self._subscribe(ns)
            self.stats.subscriptions = len(self._subs)

    def ring_attach(self) -> None:
        """The host's new ring is up: subscribe there what ``ring_detach`` removed."""
        detached, self._detached = self._detached, []
        for ns in detached:
            if ns.close_fd >= 0 and ns.net_id not in self._subs and not self._closed:
                self._subscribe(ns)
        self.stats.subscriptions = len(self._subs)

    # --- reading -------------------------------------------------------------------------

    def _reap_only(self) -> None:
        """Have the host reap now (``ring_ready`` then notes what completed)."""
        if self._host is not None:
            self._host.reap_now()

    def _on_plain(self, sub: _Sub) -> None:
        sock = sub.sock
        for _ in range(_PLAIN_READS_PER_WAKE):
            try:
                data, addr = sock.recvfrom(_RECV_LEN)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self._count_lost_plain(sub)
                    continue
                self.stats.recv_errors += 1
                break
            if addr[0] != KERNEL_PORT_ID:  # only the kernel sends destroy events
                self.stats.rejected_sender += 1
                continue
            sub.pending.append((data, time.time_ns()))
        if sum(len(s.pending) for s in self._subs.values() if s.sock is not None) >= self.flush_records:
            self.flush()

    def _count_lost_plain(self, sub: _Sub) -> None:
        drops = socket_drops(sub.sock.fileno())
        lost = 1
        if drops is not None:
            lost = max(1, drops - sub.drops_seen)
            sub.drops_seen = drops
        self._count_lost(sub.ns, lost)

    def _count_lost(self, ns, lost: int) -> None:
        if lost:
            self.stats.lost += lost
            self.stats.lost_by_netns[ns.name] = self.stats.lost_by_netns.get(ns.name, 0) + lost

    def _take(self, sub: _Sub) -> list[tuple[object, records.Dump]]:
        """What a subscription holds, as (namespace, Dump) pieces (empty dumps left out)."""
        if sub.sock is not None:
            if not sub.pending:
                return []
            pending, sub.pending = sub.pending, []
            recs, owner, n, stats = decode_closes(pending, self._layout)
            dump = records.Dump(records=recs, count=n, stats=stats, owner=owner,
                                bytes_received=sum(len(d) for d, _ in pending), recvs=len(pending))
            return [(sub.ns, dump)] if n else []
        if self._ring is None or sub.index not in self._dirty:
            return []
        self._dirty.discard(sub.index)
        out = self._ring.close_take(sub.index)
        if out is None:
            return []
        self._count_lost(sub.ns, out.lost)
        self.stats.overflow += out.overflow
        if out.error:
            self.stats.recv_errors += 1
        if not out.count:
            return []
        dump = records.Dump(records=out.records, count=out.count, stats=out.stats, owner=out.owner,
                            bytes_received=out.bytes, recvs=out.datagrams, decode_ns=out.decode_ns)
        return [(sub.ns, dump)]

    # --- batches -------------------------------------------------------------------------

    def flush(self) -> records.Batch | None:
        """Take everything received so far as one batch and queue it (None if nothing came)."""
        self._flushing = True
        try:
            self._reap_only()
        finally:
            self._flushing = False
        pieces, self._orphans = self._orphans, []
        for sub in list(self._subs.values()):
            pieces.extend(self._take(sub))
        if not pieces:
            return None
        now = time.time_ns()
        dumps = []
        for ns, dump in pieces:
            if self._sample is not None:
                self._sample(dump)
                if not dump.count:
                    continue
            dump.labels = self._labels(ns, now)
            dump.netns = ns.name
            dumps.append(dump)
            self.stats.records_by_netns[ns.name] = self.stats.records_by_netns.get(ns.name, 0) + dump.count
        if not dumps:
            return None
        batch = records.Batch(dumps, timestamp_ns=now, backend=self.stats.backend, event="close")
        self.stats.records += len(batch)
        self.stats.batches += 1
        if len(self._ready) >= self.queue_size:
            old = self._ready.popleft()
            self.stats.dropped_batches += 1
            self.stats.dropped_records += len(old)
        self._ready.append(batch)
        if self._changed is not None:
            self._changed.set()
        return batch

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()

    def __aiter__(self) -> CloseEvents:
        return self

    async def __anext__(self) -> records.Batch:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()

    async def next_batch(self) -> records.Batch:
        return await self.__anext__()

    def take_ready(self) -> list[records.Batch]:
        """Every batch queued now, without waiting."""
        out = list(self._ready)
        self._ready.clear()
        return out
