"""The sink protocol and the plumbing every sink shares: bounded queue, worker, retry, counters.

Theory of operation
-------------------
``send(batch)`` does no I/O. The sink turns the batch into its payloads (``prepare``) through an
``Encoded`` memo, so several sinks wanting the same framing of one batch encode it once (the
daemon hands every sink the same ``Encoded``, see ``SinkGroup``), and appends them to its queue.

The queue is bounded in bytes (``queue_bytes``). Past the bound the OLDEST waiting payloads are
dropped and counted (``dropped_batches``, ``dropped_records``); the newest is always kept. With
``wait_s > 0``, ``send`` first waits that long for room: backpressure on the caller, as in
aiokafka's ``wait_drain(timeout)``.

One worker task per sink writes the oldest payload. A retriable failure (``SinkError`` with
``retriable``, ``OSError``, timeout) is retried with capped exponential backoff, for as long as
it takes: the bound on the queue, not a retry count, limits what an outage costs. A payload the
destination rejects (non-retriable ``SinkError``) is counted in ``rejected_*`` and skipped. Any
other exception is a bug: the worker dies, and its done-callback makes the next ``send()`` or
``flush()`` raise instead of hanging.

Two rules:
1. Nothing leaves the queue without a counter: sent, dropped or rejected.
2. A payload in flight is delivered (at least once) or counted; it is never dropped for room.

Each sink module holds only what differs: its config (parsed from a URL), ``prepare`` (which
encoding), ``_connect`` / ``_write`` / ``_disconnect`` and, if needed, ``_retriable``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, SinkError
from ..records import Batch
from .config import SinkConfig
from .encoded import Encoded

log = logging.getLogger("xtcp_uring.sinks")

# -- the sink ------------------------------------------------------------------------------


@dataclass
class Payload:
    """One unit of the queue: what ``_write`` takes, with its size and record count."""

    data: Any
    nbytes: int
    records: int


@dataclass
class SinkStats:
    """Per-sink counters. Every payload is queued, in flight, or ended in exactly one of
    sent, dropped or rejected."""

    sent_batches: int = 0
    sent_records: int = 0
    sent_bytes: int = 0
    errors: int = 0  # failed connect/write attempts (each retry counts)
    dropped_batches: int = 0  # oldest payloads dropped for room, or left at close
    dropped_records: int = 0
    rejected_batches: int = 0  # refused by the destination (non-retriable), not retried
    rejected_records: int = 0
    queue_batches: int = 0  # waiting now (the payload in flight excluded)
    queue_bytes: int = 0
    inflight_batches: int = 0  # 0 or 1: being written or retried

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Sink:
    """Base of every sink: lifecycle, bounded queue, worker with retry, counters.

    Use as ``async with open_sink(url) as sink: await sink.send(batch)``, or call ``start()``
    and ``close()``. ``__init__`` does no I/O.
    """

    scheme: ClassVar[str] = ""
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig):
        self.config = config
        self.stats = SinkStats()
        self._queue: collections.deque[Payload] = collections.deque()
        self._inflight: Payload | None = None
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None  # queue shrank or emptied: wakes flush/wait
        self._connected = False
        self._closed = False
        self._dead: BaseException | None = None
        self._failing = False  # in an outage: log the first failure and the recovery only

    @classmethod
    def from_url(cls, url: str, **opts) -> "Sink":
        return cls(cls.Config.from_url(url, **opts))

    @property
    def name(self) -> str:
        return self.config.url or self.scheme

    @property
    def encoding(self) -> str | None:
        """The framing of the records this sink sends ("envelope", "delimited"), or None: the
        daemon asks the poller to encode that framing as the dumps arrive."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- what each sink provides --------------------------------------------------------

    def prepare(self, encoded: Encoded) -> list[Payload]:
        """Turn a batch into payloads (encoding through ``encoded``). Runs in ``send``."""
        raise NotImplementedError

    async def _connect(self) -> None:
        """Open the destination. Retried by the worker while it fails retriably."""

    async def _write(self, data) -> None:
        """Deliver one payload's data; raise to retry (retriable) or reject it."""
        raise NotImplementedError

    async def _disconnect(self) -> None:
        """Close the destination (after the last write, or after a failed connect)."""

    def _retriable(self, exc: BaseException) -> bool | None:
        """True: retry; False: reject this payload; None: a bug, let the worker die."""
        if isinstance(exc, SinkError):
            return exc.retriable
        if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError)):
            return True
        return None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect once, then start the worker. A retriable connect failure is logged and
        left to the worker to retry (the queue covers the gap).

        Raises:
            ConfigError: the sink cannot work as configured (missing package, store locked).
            SinkError: the destination refused us for good (no permission, bad request).
        """
        if self._closed:
            raise SinkError(f"{self.name}: sink is closed")
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        try:
            await self._attempt(self._connect())
            self._connected = True
        except Exception as exc:
            retriable = self._retriable(exc)
            await self._safe_disconnect()  # whatever the failed connect left half open
            if not retriable:
                if isinstance(exc, ConfigError):
                    raise  # the user must act, and the message says how
                err = SinkError(f"{self.name}: cannot start: {exc}")
                err.retriable = False
                raise err from exc
            self._note_failure("connect", exc)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"xtcp-sink {self.name}")
        self._task.add_done_callback(self._on_worker_done)

    async def send(self, batch: Batch | Encoded) -> None:
        """Queue a batch for delivery; returns once it is queued, not delivered.

        Raises:
            SinkError: the sink is not started, closed, or its worker died (the cause chained).
        """
        self._check()
        encoded = batch if isinstance(batch, Encoded) else Encoded(batch)
        payloads = [p for p in self.prepare(encoded) if p.records]
        if not payloads:
            return
        incoming = sum(p.nbytes for p in payloads)
        if self.config.wait_s > 0 and self.stats.queue_bytes + incoming > self.config.queue_bytes:
            await self._wait_for_room(incoming)
            self._check()
        for p in payloads:
            self._queue.append(p)
            self.stats.queue_batches += 1
            self.stats.queue_bytes += p.nbytes
        while self.stats.queue_bytes > self.config.queue_bytes and len(self._queue) > 1:
            old = self._queue.popleft()
            self._unqueue(old)
            self.stats.dropped_batches += 1
            self.stats.dropped_records += old.records
        self._wakeup.set()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far has been sent, dropped or rejected.

        Raises:
            SinkError: timed out (retriable), or the worker died (not retriable).
        """
        self._check()
        await self._drain(timeout)

    async def _drain(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._queue or self._inflight is not None:
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait({waiter, self._task}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            self._check_alive()
            if deadline is not None and loop.time() >= deadline and (self._queue or self._inflight):
                raise SinkError(
                    f"{self.name}: flush timed out with {len(self._queue) + (self._inflight is not None)} "
                    f"payloads ({self.stats.queue_bytes} bytes) waiting"
                )

    async def close(self) -> None:
        """Flush for up to ``close_timeout_s``, count what is left as dropped, stop, disconnect.

        Idempotent; never raises for the destination's state (a dead worker is logged).
        """
        if self._closed:
            return
        self._closed = True
        if self._task is None:
            return
        if not self._task.done():
            try:
                await self._drain(self.config.close_timeout_s)
            except SinkError as exc:
                log.warning("%s", exc)
        left = list(self._queue)
        if self._inflight is not None:
            left.append(self._inflight)
        self._queue.clear()
        self._inflight = None
        for p in left:
            self.stats.dropped_batches += 1
            self.stats.dropped_records += p.records
        self.stats.queue_batches = self.stats.queue_bytes = self.stats.inflight_batches = 0
        if left:
            log.warning("%s: closed with %d payloads (%d records) undelivered: dropped",
                        self.name, len(left), sum(p.records for p in left))
        self._task.cancel()
        try:
            await self._task
        except BaseException:  # noqa: B036 - its cause was logged by the done-callback
            pass
        if self._connected:
            self._connected = False
            await self._safe_disconnect()

    async def __aenter__(self) -> "Sink":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __del__(self):
        if self._task is not None and not self._closed:
            warnings.warn(f"unclosed sink {self!r}", ResourceWarning, source=self)

    # -- internals ----------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead is not None:
            err = SinkError(f"{self.name}: sink worker died: {self._dead!r}")
            err.retriable = False
            raise err from self._dead

    def _check(self) -> None:
        self._check_alive()
        if self._closed:
            err = SinkError(f"{self.name}: sink is closed")
            err.retriable = False
            raise err
        if self._task is None:
            err = SinkError(f"{self.name}: sink not started (await start() or use async with)")
            err.retriable = False
            raise err

    async def _wait_for_room(self, incoming: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wait_s
        while self.stats.queue_bytes + incoming > self.config.queue_bytes and self._queue:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._task.done():
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _unqueue(self, p: Payload) -> None:
        self.stats.queue_batches -= 1
        self.stats.queue_bytes -= p.nbytes
        self._changed.set()

    async def _attempt(self, coro) -> None:
        await asyncio.wait_for(coro, self.config.write_timeout_s)

    async def _safe_disconnect(self) -> None:
        try:
            await self._attempt(self._disconnect())
        except Exception as exc:
            log.warning("%s: error while disconnecting: %s", self.name, exc)

    def _note_failure(self, what: str, exc: BaseException) -> None:
        self.stats.errors += 1
        if not self._failing:
            self._failing = True
            log.warning("%s: %s failed, retrying with backoff (queue bound %d bytes): %s",
                        self.name, what, self.config.queue_bytes, exc or type(exc).__name__)
        else:
            log.debug("%s: %s failed again: %s", self.name, what, exc or type(exc).__name__)

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = self._queue.popleft()
            self._inflight = item
            self.stats.inflight_batches = 1
            self._unqueue(item)
            try:
                await self._deliver(item)
            finally:
                self._inflight = None
                self.stats.inflight_batches = 0
                self._changed.set()

    async def _deliver(self, item: Payload) -> None:
        backoff = self.config.retry_initial_s
        while True:
            what = "write" if self._connected else "connect"
            try:
                if not self._connected:
                    await self._attempt(self._connect())
                    self._connected = True
                await self._attempt(self._write(item.data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retriable = self._retriable(exc)
                if retriable is None:
                    raise
                if not retriable:
                    self.stats.errors += 1
                    self.stats.rejected_batches += 1
                    self.stats.rejected_records += item.records
                    log.warning("%s: %s rejected %d records: %s", self.name, what, item.records, exc)
                    return
                if what == "connect":
                    await self._safe_disconnect()
                self._note_failure(what, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.retry_max_s)
                continue
            self.stats.sent_batches += 1
            self.stats.sent_records += item.records
            self.stats.sent_bytes += item.nbytes
            if self._failing:
                self._failing = False
                log.info("%s: delivering again (%d attempts failed so far)", self.name, self.stats.errors)
            return

    def _on_worker_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._dead = exc
            log.error("%s: sink worker died: %r", self.name, exc)
        if self._changed is not None:
            self._changed.set()


class SinkGroup:
    """Several sinks behind one ``send``: each batch is wrapped in one ``Encoded``, so every
    framing is encoded once however many sinks want it. Start, flush and close reach all."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = list(sinks)

    @property
    def encoding(self) -> str | None:
        """The framing most of the sinks send (encoded once, shared through ``Encoded``)."""
        wanted = [s.encoding for s in self.sinks if s.encoding]
        return max(set(wanted), key=wanted.count) if wanted else None

    async def start(self) -> None:
        started = []
        try:
            for s in self.sinks:
                await s.start()
                started.append(s)
        except BaseException:
            for s in reversed(started):
                await s.close()
            raise

    async def send(self, batch: Batch | Encoded) -> None:
        """Queue the batch on every sink; a failing sink does not keep it from the others.

        Raises:
            SinkError: the first sink that failed (after all were tried).
        """
        encoded = batch if isinstance(batch, Encoded) else Encoded(batch)
        first = None
        for s in self.sinks:
            try:
                await s.send(encoded)
            except SinkError as exc:
                first = first or exc
        if first is not None:
            raise first

    async def flush(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(s.flush(timeout) for s in self.sinks))

    async def close(self) -> None:
        for s in reversed(self.sinks):
            await s.close()

    def stats(self) -> dict[str, SinkStats]:
        return {s.name: s.stats for s in self.sinks}

    async def __aenter__(self) -> "SinkGroup":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
