"""The library face: poll every selected network namespace, one ``records.Batch`` per poll.

(Longer than 450 lines: one state machine, the Poller, whose lifecycle, ticker, poll and
backend fallback share its state; the rooms it drives are elsewhere.)

    async with Poller(interval=10.0, namespaces="all") as poller:
        async for batch in poller:          # one Batch per poll
            ...
    batch = await poll_once(namespaces="host")

Theory of operation
-------------------
``Poller`` is the only asyncio orchestration in the package. Its states: created (no I/O) →
``start()`` (the backend is set up; the namespace manager opens nothing yet) → iterating (a
ticker task) → closed. Two rules:

1. **One poll at a time.** The ticker wakes on a fixed grid (``interval`` apart, plus up to
   ``jitter * interval`` of random delay, the first tick at once unless ``immediate=False``).
   A tick that finds a poll still running — dumping, or waiting for the consumer to take the
   previous batch — is counted in ``stats.skipped_ticks`` and dropped, never queued. So a slow
   consumer slows polling down instead of growing memory (``queue_size`` batches at most).
2. **Nothing hangs.** A done-callback on the ticker and on each poll task stores the first
   exception and wakes the consumer, so ``async for`` raises it instead of waiting forever.
   ``close()`` stops ticking, cancels the running poll, closes the backend (which cancels and
   reaps what is in flight), then the namespace fds; it is idempotent.

A poll: ``NamespaceManager.reconcile()`` → one ``DumpJob`` per open namespace with one request
per family (each with a random ``nlmsg_seq`` of its own, so neither a stale dump's messages nor
forged ones are mistaken for this one's; they are counted in ``stats.netlink_rejected``, and
the namespace's labels) → ``backend.dump_all()``, whose io_uring path decodes
(and with ``encode``, encodes) each chunk as it arrives, while the sockets path decodes each
dump once it has ended → optional sampling (a numpy mask over the cookie column) →
``Batch``.
Namespaces that exist but could not be opened appear as empty dumps with ``error`` set.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import random
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from . import framing, native, records, schema
from .wire import request
from .wire.filter import Filter
from .backends import DumpBackend, DumpJob, DumpResult
from .enrich import ContainerEnricher, ContainerRoots
from .enrich.labels import HostLabels
from .enrich.namespace_labels import NamespaceLabeler, describe as describe_namespace
from .emit import MODES, ChangeFilter, EmitStats
from .errors import ConfigError, RingUnavailableError
from .namespaces import NamespaceManager, NamespaceStats, Selection
from .backends.sockets import SocketBackend

__all__ = ["Poller", "PollerStats", "poll_once", "list_namespaces"]

log = logging.getLogger("xtcp_uring.poller")

DEFAULT_FAMILIES = (request.AF_INET, request.AF_INET6)
_FAMILY_NAMES = {"inet": request.AF_INET, "inet4": request.AF_INET, "ipv4": request.AF_INET, "4": request.AF_INET,
                 "inet6": request.AF_INET6, "ipv6": request.AF_INET6, "6": request.AF_INET6}
_COOKIE_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads sequential cookies
_fallback_logged = False
# A dump that ended this way may still be pending in the kernel on that socket: reopen it.
_SOCKET_LEFT_BUSY = (errno.ETIMEDOUT, errno.EBUSY, errno.ECANCELED)
# Why netlink input was dropped unread: not from the kernel, not the dump in flight (another
# nlmsg_seq: per message), a lying length (the rest of that datagram).
REJECT_REASONS = ("sender", "seq", "malformed")


@dataclass
class PollerStats:
    polls: int = 0  # polls finished
    skipped_ticks: int = 0  # ticks that found the previous poll still running
    dumps: int = 0  # (namespace, family) dumps run, total
    dump_errors: int = 0  # of those, the ones with an error (namespace gone, EBUSY, timeout…)
    sockets: int = 0  # sockets in the last batch (after sampling)
    sampled_out: int = 0  # sockets dropped by sampling, total
    emit: EmitStats | None = None  # --emit changed: records kept and skipped, by reason
    backend: str = ""
    fallback: bool = False  # io_uring was asked for ("auto") but plain sockets are in use
    fallback_reason: str = ""
    last_poll_ns: int = 0  # duration of the last poll, reconcile to batch
    last_reconcile_ns: int = 0
    namespaces: NamespaceStats = field(default_factory=NamespaceStats)
    netlink_rejected: dict = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))  # by reason

    def as_dict(self) -> dict:
        return asdict(self)


class Poller:
    """Polls TCP sockets of every selected network namespace, one ``Batch`` per interval.

    Args:
        interval: seconds between polls (a fixed grid, not "interval after the last poll").
        jitter: random delay added to each tick, as a fraction of ``interval`` (0 <= j < 1).
        immediate: poll at once on the first ``async for`` step instead of after one interval.
        max_polls: stop iterating after this many polls (None: forever).
        namespaces: ``"all"``, ``"host"``, or names/globs of namespace names (a comma list
            or a sequence); see ``namespaces.Selection``.
        families: address families to dump, one request each (AF_INET and AF_INET6).
        states: TCP state mask (``request.DEFAULT_STATES``) or an iterable of state names.
        filter: a ``wire.filter.Filter``, filter text (``"dport 443"``) or raw bytecode.
        groups: attribute groups (``request.ALL_GROUPS``); default ``request.DEFAULT_GROUPS``.
        emit: ``"all"``, or ``"changed"``: only records whose socket moved, was new, changed
            state, retransmitted, is above ``keep_rtt_above_us`` RTT, or is due a keyframe (one
            poll in ``keyframe_every``); see ``emit``. Ignores ``encode`` as ``sample`` does.
        sample: keep every Nth socket, chosen by a hash of its cookie, so a socket is kept in
            every poll or in none.
        use_uring: True (io_uring or fail), False (plain sockets), "auto" (io_uring, falling
            back to plain sockets where it is unavailable; logged once, shown in ``stats``).
        async_dumps: IOSQE_ASYNC: dump namespaces in parallel on io-wq workers.
        decode_thread: the io_uring path decodes each chunk in a C thread while the kernel
            builds the next one (default); False: between the kernel's chunks, on one core.
        encode: ``"envelope"`` or ``"delimited"``: the io_uring path also encodes each chunk's
            records as they arrive, so ``batch.envelope()`` / ``batch.delimited()`` are ready
            when the poll ends (at ~0.2 µs per socket of CPU, spent while the kernel dumps).
            None (default): encode only when asked. Ignored with ``sample`` > 1.
        dump_timeout: seconds one namespace's dump may take before it is reported as failed.
        queue_size: finished batches kept for a slow consumer before polling pauses.
        bind_roots, proc_root, task_scan_interval: passed to ``NamespaceManager``.
        max_namespaces: namespaces polled at once (one socket each); None: sized from the
            soft open-file limit. Those past it are skipped and counted
            (``stats.namespaces.skipped``); see ``NamespaceManager`` for who comes first.
        skip_user_namespaces: leave out namespaces owned by other user namespaces.
        warn_namespace_failures: False when the caller sums up what could not be reached itself
            (the CLI does: ``app/coverage.py``); the manager then logs those at debug.
        hostname: the ``hostname`` label (default: this host's name).
        location, labels, tag: this host's ``location`` (PoP, site), ``label`` (``KEY=VALUE``
            pairs: a mapping, a list or a comma-separated string) and ``tag``, on every record
            (``enrich.labels``: the encoding); the rollups xtcp_1m/xtcp_1h are kept per location.
        containers: fill the container and pod columns from the runtimes' state
            (``enrich.containers``); ``container_root`` is where the host's ``/`` is seen (``/host``
            in a DaemonSet that mounts the runtimes' directories there), default ``/``.
        backend: a ready ``DumpBackend`` to use instead of choosing one (tests, embedding);
            the Poller closes it.
        close_events: also subscribe to every namespace's TCP destroy events (closes.py): the
            final state of each socket that closes, short-lived ones included. They do not
            come in the poll batches: ``async for batch in poller.close_events`` yields them
            (``batch.event == "close"``), flushed every ``close_flush_interval`` seconds or
            ``close_flush_records`` records. Read on the dump ring itself with io_uring (a
            multishot RECV per namespace, kept armed across polls), or plain sockets with the
            sockets backend. ``close_events_rcvbuf``: each subscription's receive buffer.

    Raises:
        ConfigError: an option that cannot work (checked here, before any I/O).
    """

    def __init__(
        self,
        *,
        interval: float = 10.0,
        jitter: float = 0.0,
        immediate: bool = True,
        max_polls: int | None = None,
        namespaces: str | Sequence[str] = "all",
        families: Iterable[int | str] = DEFAULT_FAMILIES,
        states: int | Iterable[str] | None = None,
        filter: Filter | str | bytes | None = None,  # noqa: A002 - the kernel's word
        groups: Iterable[str] | str | None = None,
        sample: int = 1,
        emit: str = "all",
        keyframe_every: int = 60,
        keep_rtt_above_us: int = 0,
        use_uring: bool | str = "auto",
        async_dumps: bool = False,
        decode_thread: bool = True,
        encode: str | None = None,
        dump_timeout: float = 10.0,
        queue_size: int = 2,
        bind_roots: Iterable[str] | None = None,
        proc_root: str = "/proc",
        task_scan_interval: float | None = 60.0,
        max_namespaces: int | None = None,
        skip_user_namespaces: bool = False,
        warn_namespace_failures: bool = True,
        hostname: str | None = None,
        location: str | None = None,
        labels=None,
        tag: str | None = None,
        containers: bool = True,
        container_root: str | None = None,
        backend: DumpBackend | None = None,
        close_events: bool = False,
        close_events_rcvbuf: int | None = None,
        close_flush_interval: float = 1.0,
        close_flush_records: int = 10000,
    ):
        if not interval > 0:
            raise ConfigError(f"interval must be > 0 seconds, not {interval!r}")
        if not 0 <= jitter < 1:
            raise ConfigError(f"jitter is a fraction of the interval, 0 <= jitter < 1, not {jitter!r}")
        if max_polls is not None and max_polls < 1:
            raise ConfigError(f"max_polls must be >= 1 or None, not {max_polls!r}")
        if int(sample) != sample or sample < 1:
            raise ConfigError(f"sample keeps every Nth socket: an integer >= 1, not {sample!r}")
        if use_uring not in (True, False, "auto"):
            raise ConfigError(f"use_uring is True, False or 'auto', not {use_uring!r}")
        if encode is not None and encode not in framing.FRAMINGS:
            raise ConfigError(f"encode is {', '.join(map(repr, framing.FRAMINGS))} or None, not {encode!r}")
        if not dump_timeout > 0 or queue_size < 1:
            raise ConfigError("dump_timeout must be > 0 and queue_size >= 1")
        if max_namespaces is not None and (int(max_namespaces) != max_namespaces or max_namespaces < 1):
            raise ConfigError(f"max_namespaces must be an integer >= 1, not {max_namespaces!r}")
        if close_events and (not close_flush_interval > 0 or close_flush_records < 1 or
                             close_events_rcvbuf is not None and not 4096 <= close_events_rcvbuf <= 1 << 31):
            raise ConfigError("close events want close_flush_interval > 0, close_flush_records >= 1 and "
                              f"close_events_rcvbuf of 4K..2G bytes, not {close_flush_interval!r}, "
                              f"{close_flush_records!r}, {close_events_rcvbuf!r}")
        self.interval = float(interval)
        self.jitter = float(jitter)
        self.immediate = immediate
        self.max_polls = max_polls
        self.selection = Selection(namespaces)
        self.families = _families(families)
        self.states = _states(states)
        self.ext = request.ext_for(_split(groups)) if groups is not None else request.DEFAULT_EXT
        if isinstance(filter, str):
            try:
                filter = Filter.parse(filter)  # noqa: A001
            except request.RequestError as exc:
                raise ConfigError(f"filter {filter!r}: {exc}") from exc
        # Checked now (and compiled once per family): a bad filter is a ConfigError at once.
        self._requests_args = {}
        for fam in self.families:
            try:
                request.build_request(fam, states=self.states, ext=self.ext, filter=filter)
            except request.RequestError as exc:
                raise ConfigError(str(exc)) from exc
            bytecode = filter.bytecode(fam) if isinstance(filter, Filter) else filter
            self._requests_args[fam] = bytecode
        self.sample = int(sample)
        if emit not in MODES:
            raise ConfigError(f"emit is one of {', '.join(MODES)}, not {emit!r}")
        self.emit = emit
        # --emit changed: only records that moved go out (emit.py); it compacts, as sampling does.
        self._change_filter = ChangeFilter(keyframe_every, keep_rtt_above_us) if emit == "changed" else None
        self.use_uring = use_uring
        self.async_dumps = bool(async_dumps)
        self.decode_thread = bool(decode_thread)
        # Sampling compacts the records after the dump, which would leave the encoding stale.
        self.encode = encode if self.sample == 1 and emit == "all" else None
        self.dump_timeout = float(dump_timeout)
        self.queue_size = int(queue_size)
        self._manager_options = {
            "proc_root": proc_root,
            "task_scan_interval": task_scan_interval,
            "skip_user_namespaces": bool(skip_user_namespaces),
            "warn_failures": bool(warn_namespace_failures),
        }
        if bind_roots is not None:
            self._manager_options["bind_roots"] = tuple(bind_roots)
        self.hostname = hostname
        self.host_labels = HostLabels.build(location, labels, tag)  # ConfigError now, before any I/O
        self._container_roots = (container_roots(container_root, proc_root) if containers else None)
        self.labeler: NamespaceLabeler | None = None  # made by start()
        self._close_options = ({"rcvbuf": close_events_rcvbuf, "flush_interval": close_flush_interval,
                                "flush_records": close_flush_records} if close_events else None)
        self._closes = None  # closes.CloseEvents once started
        self.max_namespaces = max_namespaces  # None: sized from the open-file limit at start
        self.stats = PollerStats()
        self._backend: DumpBackend | None = backend
        self._manager: NamespaceManager | None = None
        self._kernel_release = ""
        self._layout = native.HOST_TCP_INFO_LAYOUT
        self._poll_id = 0
        self._drained_seen = 0
        self._version_labels = self._host_labels = b""
        self._poll_lock: asyncio.Lock | None = None
        self._ticker: asyncio.Task | None = None
        self._poll_task: asyncio.Task | None = None
        self._ready: collections.deque[records.Batch] = collections.deque()
        self._changed: asyncio.Event | None = None  # a batch, the end or a failure arrived
        self._space: asyncio.Event | None = None  # the consumer took a batch
        self._failure: BaseException | None = None
        self._finished = False
        self._started = False
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Set up the dump backend (io_uring or sockets). Namespaces are opened by each poll."""
        if self._closed:
            raise RuntimeError("Poller is closed")
        if self._started:
            return
        asyncio.get_running_loop()  # must run on a loop; every task below is bound to it
        self._poll_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._space = asyncio.Event()
        self._kernel_release = os.uname().release
        self._layout = native.tcp_info_layout(self._kernel_release)
        if self.hostname is None:
            self.hostname = socket.gethostname()
        self._version_labels = records.encode_labels(schema_version=schema.SCHEMA_VERSION,
                                                     daemon_version=_daemon_version())
        self._host_labels = records.encode_labels(hostname=self.hostname, location=self.host_labels.location,
                                                  kernel_release=self._kernel_release)
        enricher = ContainerEnricher(self._container_roots) if self._container_roots is not None else None
        self.labeler = NamespaceLabeler(self.host_labels, enricher)
        close_rcvbuf = None
        if self._close_options is not None:
            from .closes import DEFAULT_RCVBUF
            close_rcvbuf = self._close_options["rcvbuf"] or DEFAULT_RCVBUF
        self._manager = NamespaceManager(self.selection, **{**self._manager_options,
                                                            "max_namespaces": self.max_namespaces,
                                                            "close_events_rcvbuf": close_rcvbuf})
        self.stats.namespaces = self._manager.stats
        self._started = True
        try:
            if self._backend is None:
                self._backend = self._choose_backend()
        except BaseException:
            await self.close()
            raise
        self.stats.backend = self._backend.name
        if self._close_options is not None:
            self._start_close_events()

    def _start_close_events(self) -> None:
        from .closes import CloseEvents

        def labels(ns, timestamp_ns: int) -> bytes:
            return self._labels(records.encode_labels(timestamp_ns=timestamp_ns), ns, 0)

        sockets = isinstance(self._backend, SocketBackend)
        # On io_uring, the subscriptions live on the dump ring itself (its backend reads both).
        shares = hasattr(self._backend, "share_ring")
        self._closes = CloseEvents(labels=labels, layout=self._layout,
                                   use_uring=False if sockets else self.use_uring,
                                   ring_host=self._backend if shares else None,
                                   flush_interval=self._close_options["flush_interval"],
                                   flush_records=self._close_options["flush_records"],
                                   sample=self._sample if self.sample > 1 else None)
        self._closes.start()
        self._manager.before_close.append(self._closes.forget)

    @property
    def close_events_enabled(self) -> bool:
        """Asked for close events (each namespace then holds a second socket)."""
        return self._close_options is not None

    @property
    def close_events(self):
        """The ``closes.CloseEvents`` of this poller (None unless ``close_events=True``):
        ``async for batch in poller.close_events`` yields batches of close records."""
        return self._closes

    async def close(self) -> None:
        """Stop polling, end the running poll, free the backend, close namespace fds. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._ticker, self._poll_task) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._closes is not None:  # before the backend: its subscriptions may be on the ring
            await self._closes.close()
        if self._backend is not None:
            self._backend.close()
        if self._manager is not None:
            self._manager.close()
        self._ready.clear()
        if self._changed is not None:
            self._changed.set()

    async def stop(self) -> None:
        """Stop ticking; the poll in flight still finishes and ``async for`` yields its batch,
        then ends. What the daemon does on SIGTERM: nothing polled is lost."""
        if self._ticker is not None and not self._ticker.done():
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._poll_task is not None and not self._poll_task.done():
            await asyncio.wait([self._poll_task])
        self.max_polls = 0  # a later __anext__ must not start a new ticker
        self._finished = True
        if self._changed is not None:
            self._changed.set()

    async def __aenter__(self) -> Poller:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __del__(self):
        if getattr(self, "_started", False) and not getattr(self, "_closed", True):
            warnings.warn("Unclosed Poller: use `async with Poller(...)` or `await poller.close()`",
                          ResourceWarning, source=self)
            self._closed = True
            for closer in (getattr(self._backend, "close", None), getattr(self._manager, "close", None)):
                if closer is not None:
                    try:
                        closer()
                    except Exception:  # noqa: BLE001 - best effort at interpreter teardown
                        pass

    @property
    def polling(self) -> bool:
        """True while a poll is running (between namespace reconcile and its batch)."""
        return self._poll_task is not None and not self._poll_task.done()

    @property
    def manager(self) -> NamespaceManager | None:
        return self._manager

    @property
    def backend(self) -> DumpBackend | None:
        return self._backend

    # --- iteration -----------------------------------------------------------------------

    def __aiter__(self) -> Poller:
        return self

    async def __anext__(self) -> records.Batch:
        if not self._started:
            raise RuntimeError("Poller not started: use `async with Poller(...)` or `await poller.start()`")
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.create_task(self._tick(), name="xtcp-poller-ticker")
            self._ticker.add_done_callback(self._task_done)
        while True:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise StopAsyncIteration
            if self._ready:
                batch = self._ready.popleft()
                self._space.set()
                return batch
            if self._finished:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()

    async def poll(self) -> records.Batch:
        """Run one poll now and return its batch (not while ``async for`` is iterating)."""
        if not self._started:
            raise RuntimeError("Poller not started: use `async with Poller(...)` or `await poller.start()`")
        if self._closed:
            raise RuntimeError("Poller is closed")
        if self._ticker is not None:
            raise RuntimeError("poll() cannot be mixed with `async for` on the same Poller")
        return await self._poll()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        origin = loop.time()
        k = 0 if self.immediate else 1
        started = 0
        while self.max_polls is None or started < self.max_polls:
            when = origin + k * self.interval
            if k and self.jitter:
                when += random.uniform(0, self.jitter * self.interval)
            k += 1
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._poll_task is not None and not self._poll_task.done():
                self.stats.skipped_ticks += 1
                continue
            self._poll_task = asyncio.create_task(self._poll_and_publish(), name=f"xtcp-poll-{self._poll_id + 1}")
            self._poll_task.add_done_callback(self._task_done)
            started += 1
        if self._poll_task is not None:
            await asyncio.wait([self._poll_task])
        self._finished = True
        self._changed.set()

    async def _poll_and_publish(self) -> None:
        batch = await self._poll()
        while len(self._ready) >= self.queue_size:
            self._space.clear()
            await self._space.wait()
        self._ready.append(batch)
        self._changed.set()

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._failure is None:
            self._failure = exc
            log.error("poll failed: %s: %s", type(exc).__name__, exc)
        if self._ticker is not None and not self._ticker.done():
            self._ticker.cancel()
        self._changed.set()

    # --- one poll ------------------------------------------------------------------------

    async def _poll(self) -> records.Batch:
        async with self._poll_lock:
            t0 = time.monotonic_ns()
            self._poll_id += 1
            poll_id = self._poll_id
            await self._manager.reconcile()
            if self._closes is not None:
                self._closes.sync(self._manager.namespaces)
            self.stats.last_reconcile_ns = time.monotonic_ns() - t0
            namespaces = {ns.net_id: ns for ns in self._manager.namespaces}
            # Container/pod context: reads files on churn only (cost: labeler.enricher.stats)
            await asyncio.to_thread(self.labeler.refresh, namespaces.values())
            templates = {fam: request.build_request(fam, states=self.states, ext=self.ext,
                                                    filter=self._requests_args[fam])
                         for fam in self.families}
            seqs = iter(request.random_seqs(len(namespaces) * len(self.families)))
            seq_of = {(net_id, fam): next(seqs) for net_id in namespaces for fam in self.families}
            timestamp_ns = time.time_ns()
            poll_labels = records.encode_labels(timestamp_ns=timestamp_ns, poll_id=poll_id)
            jobs = [DumpJob(net_id, ns.fd,
                            tuple((fam, request.with_seq(templates[fam], seq_of[net_id, fam])) for fam in self.families),
                            tuple(self._labels(poll_labels, ns, fam) for fam in self.families))
                    for net_id, ns in namespaces.items()]
            labels = {job.net_id: dict(zip(self.families, job.labels)) for job in jobs}
            results = await self._dump_all(jobs) if jobs else []
            for r in results:
                if isinstance(r.error, OSError) and r.error.errno in _SOCKET_LEFT_BUSY:
                    self._manager.reopen(r.net_id)
            dumps = [self._decode(r, namespaces[r.net_id], labels[r.net_id][r.family], seq_of[r.net_id, r.family])
                     for r in results if r.net_id in namespaces]  # a backend answers only for the jobs it got
            self._count_rejected(results, dumps)
            for failure in self._manager.failures:
                dump = records.decode_buffers([], netns=failure.name, strict=False)
                dump.error = str(failure.error)
                dumps.append(dump)
            if self._change_filter is not None:
                self._change_filter.apply(dumps, poll_id)
                self.stats.emit = self._change_filter.stats
            batch = records.Batch(dumps, poll_id=poll_id, timestamp_ns=timestamp_ns,
                                  duration_ns=time.monotonic_ns() - t0, backend=self._backend.name)
            s = self.stats
            s.polls += 1
            s.dumps += len(results)
            s.dump_errors += sum(1 for d in dumps if d.error)
            s.sockets = len(batch)
            s.last_poll_ns = batch.duration_ns
            return batch

    def _count_rejected(self, results: list[DumpResult], dumps: list[records.Dump]) -> None:
        rejected = self.stats.netlink_rejected
        drained = self._manager.stats.netlink_drained  # slipped in before a socket was connected
        rejected["sender"] += sum(r.rejected_sender for r in results) + drained - self._drained_seen
        self._drained_seen = drained
        rejected["seq"] += sum(d.stats.rejected_seq for d in dumps)
        rejected["malformed"] += sum(d.stats.rejected_malformed for d in dumps)

    async def _dump_all(self, jobs: list[DumpJob]) -> list[DumpResult]:
        try:
            return await self._backend.dump_all(jobs)
        except RingUnavailableError as exc:
            # io_uring can also be refused at first use (seccomp on io_uring_enter).
            if self.use_uring != "auto" or isinstance(self._backend, SocketBackend):
                raise
            self._fall_back(exc)
            return await self._backend.dump_all(jobs)

    def _labels(self, poll_labels: bytes, ns, family: int) -> bytes:
        """The [ns] label bytes of one dump, byte for byte one ``encode_labels`` call: field
        groups in increasing number order (``enrich.namespace_labels``), the namespace's part
        cached there."""
        return self._version_labels + poll_labels + self._host_labels + self.labeler.namespace_part(ns, family)

    def _decode(self, r: DumpResult, ns, labels: bytes, seq: int) -> records.Dump:
        dump = r.dump
        if dump is None:  # a backend of the caller's that returns raw bytes only: decoded here
            dump = records.decode_buffers(r.buffers, layout=self._layout, labels=labels, netns=ns.name,
                                          strict=False, seq=seq)
        dump.netns = ns.name
        dump.family = r.family
        dump.dump_ns = r.elapsed_ns
        dump.bytes_received = r.nbytes or dump.bytes_received
        dump.recvs = r.recvs or dump.recvs
        if r.error is not None:
            dump.error = f"{type(r.error).__name__}: {r.error}"
        elif dump.stats.error:
            dump.error = f"NetlinkError: kernel answered {errno.errorcode.get(dump.stats.error, dump.stats.error)}"
        elif dump.stats.malformed_offset is not None:
            dump.error = f"DecodeError: malformed netlink message at offset {dump.stats.malformed_offset}"
        if self.sample > 1 and dump.count:
            self._sample(dump)
        return dump

    def _sample(self, dump: records.Dump) -> None:
        """Keep the sockets whose mixed cookie is 0 mod N, compacting the C array in place."""
        arr = dump.array()
        mixed = arr["inet_diag_msg_socket_cookie"] * _COOKIE_MIX
        keep = (mixed >> np.uint64(32)) % np.uint64(self.sample) == 0
        kept = int(np.count_nonzero(keep))
        if kept < dump.count:
            arr[:kept] = arr[keep]
            self.stats.sampled_out += dump.count - kept
            dump.count = kept
            dump.encoded = None

    # --- backends ------------------------------------------------------------------------

    def _choose_backend(self) -> DumpBackend:
        if self.use_uring is False:
            return SocketBackend(timeout=self.dump_timeout, tcp_info_layout=self._layout)
        try:
            return _uring_backend(async_dumps=self.async_dumps, decode_thread=self.decode_thread,
                                  timeout=self.dump_timeout,
                                  tcp_info_layout=self._layout, encode=framing.native_framing(self.encode))
        except (RingUnavailableError, ImportError) as exc:
            if self.use_uring is True:
                raise
            return self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> DumpBackend:
        global _fallback_logged
        if self._backend is not None:
            self._backend.close()
        self._backend = SocketBackend(timeout=self.dump_timeout, tcp_info_layout=self._layout)
        self.stats.backend = self._backend.name
        self.stats.fallback = True
        self.stats.fallback_reason = f"{type(exc).__name__}: {exc}"
        if not _fallback_logged:
            _fallback_logged = True
            log.warning("io_uring unavailable (%s); using plain netlink sockets", self.stats.fallback_reason)
        return self._backend


def container_roots(container_root: str | None, proc_root: str = "/proc") -> ContainerRoots:
    """Where the runtimes' state is read: the host's ``/`` at ``container_root`` (default ``/``)."""
    if container_root and not container_root.startswith("/"):
        raise ConfigError(f"--container-root {container_root!r}: give an absolute path (where the host's / is "
                          "mounted, such as /host)")
    return ContainerRoots.under(container_root or "/", proc=proc_root)


def _uring_backend(**options) -> DumpBackend:
    from .backends.uring import UringBackend  # ImportError where the extension lacks the ring

    return UringBackend(**options)


_VERSION: str | None = None


def _daemon_version() -> str:
    global _VERSION
    if _VERSION is None:
        from . import __version__

        _VERSION = __version__
    return _VERSION


def _split(value) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def _families(families) -> tuple[int, ...]:
    out = []
    for f in _split(families):
        fam = _FAMILY_NAMES.get(f.lower()) if isinstance(f, str) else f
        if fam not in (request.AF_INET, request.AF_INET6):
            raise ConfigError(f"family {f!r} is not inet (AF_INET, 2) or inet6 (AF_INET6, 10)")
        if fam not in out:
            out.append(fam)
    if not out:
        raise ConfigError("no address family to dump: use inet, inet6 or both")
    return tuple(out)


def _states(states) -> int:
    if states is None:
        return request.DEFAULT_STATES
    if isinstance(states, str):
        try:
            return int(states, 0)
        except ValueError:
            states = _split(states)
    if isinstance(states, int):
        return states
    mask = 0
    for name in states:
        try:
            mask |= 1 << request.TCP_STATES[name.lower()]
        except KeyError:
            raise ConfigError(f"unknown TCP state {name!r}; known: {', '.join(request.TCP_STATES)}") from None
    return mask


async def poll_once(**options) -> records.Batch:
    """One poll with the ``Poller`` options given; opens and closes everything it needs."""
    async with Poller(**options) as poller:
        return await poller.poll()


async def list_namespaces(namespaces: str | Sequence[str] = "all", **options) -> list[dict]:
    """One poll, summarised per namespace: labels, socket count, error (for the CLI)."""
    async with Poller(namespaces=namespaces, **options) as poller:
        batch = await poller.poll()
        counts: dict[str, int] = {}
        errors: dict[str, str] = {}
        for d in batch.dumps:
            counts[d.netns] = counts.get(d.netns, 0) + d.count
            if d.error:
                errors.setdefault(d.netns, d.error)
        location = poller.host_labels.location
        rows = [
            {"net_id": ns.net_id, "name": ns.name,
             **describe_namespace(ns, poller.labeler.context(ns), location),
             "inode": ns.inode, "cookie": ns.cookie, "pid": ns.pid,
             "sockets": counts.get(ns.name, 0), "error": errors.get(ns.name, "")}
            for ns in poller.manager.namespaces
        ]
        rows += [{"net_id": "", "name": f.name, "inode": f.inode, "cookie": "", "pid": "", "sockets": "",
                  "error": str(f.error)} for f in poller.manager.failures]
        return rows
