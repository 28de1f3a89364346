"""The io_uring backend: every namespace's dump in flight at once, one eventfd, no Python threads.

The per-recv work is C (``csrc/ring.c``): it re-arms RECVs, decodes (and, if asked, encodes)
each chunk as it arrives, spots NLMSG_DONE and chains a namespace's families on its fd. Python
adds jobs, submits once, and then wakes only when the ring's eventfd is readable, so a poll
crosses cffi O(namespaces) times, not O(recvs).

The kernel builds each chunk inline in our io_uring_enter. By default a C thread of the ring
decodes the chunk just received while the kernel builds the next one, so a 100k-socket poll,
decode and encode included, takes little more than the bare kernel dump, for a few percent
more CPU (a wake-up per chunk); with ``decode_thread=False`` C decodes between the kernel's
chunks, on one core. (IORING_SETUP_SQPOLL was the other way tried to use a second core: as
fast with a core to spare, but ~45% more CPU than the decode thread, and 10x slower beside one
busy process; see benchmarks/README.md.)

The C calls themselves are ``native.ring.Ring``'s; this module decides when to make them.

Close events share the ring (``share_ring``, used by ``closes.CloseEvents``): their multishot
RECVs stay armed across polls (a reset cancels only the dumps), and this backend is the one
reader of the ring's eventfd. During a poll every wake-up reaps at once, the poll's dumps and
whatever close datagrams completed alike (each ~2 us of C decoding), so a poll never waits
for closes and closes never wait for a poll; between polls it reaps close completions at most
every ``CLOSE_REAP_COALESCE_S`` (the kernel keeps filling provided buffers meanwhile). After
each reap the close reader is told (``ring_ready``); before a ring is freed it is told too
(``ring_detach``), so its subscriptions move to the next ring or to plain sockets.

Memory: each DumpResult's ``dump`` owns its record array and encoded bytes (pooled, see
``csrc/bufpool.h``), handed over by the ring when the dump finishes and freed when the last
view of them goes away, so results stay valid after the next ``dump_all`` and after
``close()``. Receive buffers stay with the ring. The ring never frees memory an in-flight SQE
names: a job is reported only after its last CQE, and teardown cancels and reaps before freeing.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import logging
import time
import warnings
from typing import Sequence

from .. import native, records
from ..errors import InternalError
from ..native.ring import ASYNC, ASYNC_RECV, COUNTERS, DECODE_THREAD, NET_ID_MAX, Ring, check_int

from . import DumpJob, DumpResult

__all__ = ["UringBackend", "CLOSE_REAP_COALESCE_S"]

log = logging.getLogger("xtcp_uring.backends.uring")

CLOSE_REAP_COALESCE_S = 0.02  # between polls: at most ~50 close reaps a second, however many events


class UringBackend:
    """The ``DumpBackend`` on one io_uring.

    Creating it sets up the ring (a few syscalls, no blocking I/O), so an unusable io_uring is
    known at once. One ``dump_all`` at a time.

    Args:
        decode_thread: decode (and encode) each chunk in a thread of the ring's own while the
            kernel builds the next chunk inline in our io_uring_enter (module doc). On by
            default; False decodes inline, between the kernel's chunks, on one core.
        tcp_info_layout: ``native.tcp_info_layout(release)`` of the kernel being dumped.
        encode: also encode each chunk's records as they arrive, in this framing
            (``native.FRAME_ENVELOPE_ROWS`` or ``FRAME_DELIMITED``); ``Batch.encode`` in that
            framing then costs nothing more. None: decode only.
        async_dumps: set IOSQE_ASYNC on the dump SQEs, so the kernel builds dumps in io-wq workers,
            several namespaces in parallel, instead of inline in our io_uring_enter (measured
            1.3-1.6x faster for 50 namespaces on 2 cores).
        async_recv: with ``async_dumps``, punt every RECV too, not only the SEND (which builds the
            first chunk, and the whole dump of a small namespace). Off by default: measured ~30%
            slower for one big namespace alone (+76 ms at 100k sockets), and 138 vs 117 ms for a
            20k-socket namespace among 50 small ones; no faster for many small ones.
        entries: SQ ring size (the CQ is sized for thousands of jobs in flight).
        timeout: seconds one dump (one namespace, one family) may run before it is cancelled
            and reported as ``TimeoutError`` (ETIMEDOUT).
        reap_budget: seconds one eventfd wake-up may spend reaping and re-arming before it
            yields to the event loop (dumps are built inline: a 100k-socket one takes ~140 ms).

    Raises:
        RingUnavailableError: io_uring is disabled (sysctl) or blocked (seccomp).
    """

    def __init__(self, *, decode_thread: bool = True, tcp_info_layout: int = native.HOST_TCP_INFO_LAYOUT,
                 encode: int | None = None, async_dumps: bool = False, async_recv: bool = False,
                 entries: int = 256, timeout: float = 5.0, reap_budget: float = 0.01):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        if encode not in (None, native.FRAME_ENVELOPE_ROWS, native.FRAME_DELIMITED):
            raise ValueError(f"encode is None, FRAME_ENVELOPE_ROWS or FRAME_DELIMITED, not {encode!r}")
        self._flags = DECODE_THREAD if decode_thread else 0
        if async_dumps:
            self._flags |= ASYNC | (ASYNC_RECV if async_recv else 0)
        self._layout = tcp_info_layout
        self._encode = encode
        self._entries = entries
        self._timeout_ns = int(timeout * 1e9)
        self._budget_ns = int(reap_budget * 1e9)
        self._ring = None
        self._busy = False
        self._abort = None  # ends a running dump_all when close() is called under it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader_fd = -1  # the eventfd our reader is installed on, -1: none
        self._poll_ready = None  # the running dump_all's reaper: every wake-up goes to it at once
        self._closes = None  # the close-event reader sharing the ring (closes.CloseEvents)
        self._pause: asyncio.TimerHandle | None = None  # between polls: the reader rests
        self._retired: dict = {name: 0 for name in COUNTERS}  # counters of replaced rings
        self._retired["cqe_errors"] = [0] * 256
        self._ring = self._new_ring()
        mode = ("+async-recv" if async_recv else "+async") if async_dumps else ""
        self.decode_thread = decode_thread
        self.name = "io_uring" + mode + ("" if decode_thread else "+inline-decode")

    def _new_ring(self) -> Ring:
        return Ring(self._entries, self._flags, self._layout, self._encode)

    def _reset(self, ring: Ring) -> None:
        """Cancel, reap and free a poll's leftovers; a ring that could not reap is replaced."""
        if self._ring is ring and not ring.reset():
            self._replace_ring()

    def _replace_ring(self) -> None:
        """A ring whose teardown could not reap everything refuses jobs: start a fresh one
        (the close subscriptions move with it)."""
        if self._closes is not None:
            self._closes.ring_detach(replaced=True)
        self._listen(False)
        old, self._ring = self._ring, None
        self._absorb_stats(old)
        if not old.free():
            self._retired["leaked_buffers"] += 1  # the close subscriptions' buffers: a RECV never ended
        try:
            self._ring = self._new_ring()
        except BaseException:
            closes, self._closes = self._closes, None
            if closes is not None:
                closes.ring_detach(replaced=False)  # no ring to move to: plain sockets
            raise
        if self._closes is not None:
            self._closes.ring_attach()
        self._listen()

    # --- the eventfd: one reader for the poll's dumps and the close subscriptions ---------

    @property
    def ring(self) -> Ring | None:
        """The ring (None once closed); replaced when a reset could not reap (``ring_detach``)."""
        return self._ring

    def share_ring(self, closes) -> None:
        """Let ``closes`` (a ``closes.CloseEvents``) keep its subscriptions on this ring, read
        on the running loop between polls too. It gets ``ring_ready()`` after every reap,
        ``ring_detach(replaced)`` before the ring is freed and ``ring_attach()`` once a
        replacement is up.

        Raises:
            InternalError: the backend is closed.
        """
        if self._ring is None:
            raise InternalError("UringBackend is closed")
        self._closes = closes
        self._loop = asyncio.get_running_loop()
        self._listen()

    def unshare_ring(self, closes) -> None:
        """``closes`` has removed its subscriptions: stop reading for it between polls."""
        if self._closes is closes:
            self._closes = None
            if self._pause is not None:
                self._pause.cancel()
                self._pause = None
            self._listen()

    def reap_now(self) -> None:
        """Reap every completion now: dumps go to the running poll, close datagrams are decoded
        and ``ring_ready`` told."""
        self._dispatch(rest=False)

    def _listen(self, want: bool | None = None) -> None:
        """Install or remove our eventfd reader: wanted while a poll runs, and between polls
        while close events share the ring (except while resting)."""
        ring, loop = self._ring, self._loop
        if want is None:
            want = ring is not None and loop is not None and (
                self._poll_ready is not None or (self._closes is not None and self._pause is None))
        fd = ring.fd if want else -1
        if self._reader_fd == fd:
            return
        if self._reader_fd >= 0:
            loop.remove_reader(self._reader_fd)
            self._reader_fd = -1
        if fd >= 0:
            loop.add_reader(fd, self._dispatch)
            self._reader_fd = fd

    def _dispatch(self, rest: bool = True) -> None:
        ring = self._ring
        if ring is None:
            return
        if self._poll_ready is not None:
            self._poll_ready()  # never coalesced: the poll's dumps, and the closes met on the way
        else:
            try:
                while len(ring.reap(64, self._budget_ns)) == 64:  # no job outside a poll: nothing to report
                    pass
            except OSError as exc:  # the eventfd read failed: never expected
                log.warning("reaping close events failed: %s", exc)
            if rest and self._closes is not None:
                self._pause = self._loop.call_later(CLOSE_REAP_COALESCE_S, self._wake)
                self._listen()
        if self._closes is not None:
            self._closes.ring_ready()

    def _wake(self) -> None:
        self._pause = None
        self._listen()  # a readable eventfd fires at once

    def _absorb_stats(self, ring: Ring) -> None:
        st = ring.stats()
        for name in COUNTERS:
            self._retired[name] += st[name]
        self._retired["cqe_errors"] = [a + b for a, b in zip(self._retired["cqe_errors"], st["cqe_errors"])]

    async def dump_all(self, jobs: Sequence[DumpJob]) -> list[DumpResult]:
        """Run every job's requests: all namespaces in parallel, families one after another.

        Returns one DumpResult per (job, family), in the order given. A failed dump has
        ``error`` set (``TimeoutError`` when cancelled after ``timeout``) and keeps whatever
        bytes arrived before the failure; other dumps are not affected.

        Raises:
            InternalError: the backend is closed, or closed while this call runs.
            ValueError: a net_id does not fit 32 bits.
            OSError: the ring refused the jobs (out of memory, submit failure).
        """
        if self._ring is None:
            raise InternalError("UringBackend is closed")
        if self._busy:
            raise InternalError("UringBackend.dump_all is already running")
        self._busy = True
        try:
            return await self._dump_all(jobs)
        finally:
            self._busy = False

    async def _dump_all(self, jobs: Sequence[DumpJob]) -> list[DumpResult]:
        self._reset(self._ring)
        ring = self._ring
        for job in jobs:
            check_int("net_id", job.net_id, NET_ID_MAX)
        # One ring job per (namespace, family); its index is the request id in user_data.
        flat = [(job, family, req, job.labels[i] if i < len(job.labels) else b"")
                for job in jobs for i, (family, req) in enumerate(job.requests)]
        meta = [(job.net_id, family) for job, family, _, _ in flat]
        labels = [label for *_, label in flat]
        try:
            for job, family, req, label in flat:
                ring.add_job(job.net_id, job.fd, req, family, label)
            n = ring.pending()
            if n == 0:
                return []
            ring.submit()
        except OSError:
            self._reset(ring)
            raise

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._listen(False)  # a reader left on another loop (close events share the ring on ours)
            self._loop = loop
        done = loop.create_future()
        results: list[DumpResult | None] = [None] * n
        state = {"left": n, "progress": time.monotonic(), "timer": None}

        def stop() -> None:
            """Detach from the loop before the ring (and its eventfd number) can go away."""
            if self._poll_ready is on_ready:
                self._poll_ready = None
                self._listen()
            if state["timer"] is not None:
                state["timer"].cancel()
                state["timer"] = None

        def collect(events) -> None:
            for ev in events:
                results[ev.job] = self._result(ring, ev, labels[ev.job])
            state["left"] -= len(events)
            state["progress"] = time.monotonic()

        def on_ready() -> None:
            try:
                while True:
                    events = ring.reap(n, self._budget_ns)  # close completions too: never left behind
                    if not done.done():
                        collect(events)
                    if len(events) < n:
                        break
            except Exception as exc:  # a loop callback must not swallow it: fail the poll
                if not done.done():
                    done.set_exception(exc)
                return
            if state["left"] == 0 and not done.done():
                done.set_result(None)

        def on_timer() -> None:
            state["timer"] = None
            if done.done():
                return
            next_ns = ring.expire(self._timeout_ns)
            self._dispatch(rest=False)
            if done.done():
                return
            if time.monotonic() - state["progress"] > 2 * self._timeout_ns / 1e9:
                # Cancelled jobs whose CQE never came: give up on the ring, not on the poll.
                stop()
                self._reset(ring)
                for i, r in enumerate(results):
                    if r is None:
                        results[i] = DumpResult(net_id=meta[i][0], family=meta[i][1], error=TimeoutError(
                            _errno.ETIMEDOUT, "dump abandoned: no completion after cancel"))
                done.set_result(None)
                return
            delay = min(next_ns / 1e9 if next_ns else self._timeout_ns / 1e9, self._timeout_ns / 1e9)
            state["timer"] = loop.call_later(delay + 0.001, on_timer)

        def abort(exc: BaseException) -> None:
            stop()
            if not done.done():
                done.set_exception(exc)

        self._abort = abort
        self._poll_ready = on_ready
        if self._pause is not None:  # closes were resting: a poll reads at once
            self._pause.cancel()
            self._pause = None
        self._listen()
        state["timer"] = loop.call_later(self._timeout_ns / 1e9 + 0.001, on_timer)
        try:
            self._dispatch(rest=False)  # dumps built inline by the submit are already in the CQ
            await done
        finally:
            stop()
            self._abort = None
            if self._ring is ring and ring.pending():
                # Cancelled by the caller: nothing of this poll may stay in flight.
                self._reset(ring)
            # on_timer names itself through its closure cell: a cycle that would keep this
            # poll's results (50 MB of arenas at 100k sockets) alive until the cyclic GC runs.
            on_timer = on_ready = collect = abort = None  # noqa: F841
        return results  # type: ignore[return-value]

    def _result(self, ring: Ring, ev, labels: bytes) -> DumpResult:
        dump = records.dump_from_ring(ring.take(ev.job), labels=labels, framing=self._encode)
        dump.family = ev.family
        dump.dump_ns = ev.end_ns - ev.start_ns
        dump.bytes_received = ev.bytes
        dump.recvs = ev.recvs
        return DumpResult(net_id=ev.net_id, family=ev.family, dump=dump, nbytes=ev.bytes,
                          recvs=ev.recvs, elapsed_ns=ev.end_ns - ev.start_ns, error=ev.exception())

    def counters(self) -> dict:
        """Ring counters since creation: syscalls, completions, and what went wrong.

        ``cqe_errors`` maps errno names to counts (ECANCELED includes our own cancels and the
        RECV linked to a failed SEND); ``unknown_completions`` are CQEs naming no live job.
        """
        st = self._ring.stats() if self._ring is not None else {name: 0 for name in COUNTERS}
        cqe_errors = st.get("cqe_errors") or [0] * len(self._retired["cqe_errors"])
        out: dict = {name: st[name] + self._retired[name] for name in COUNTERS}
        out["cqe_errors"] = {
            _errno.errorcode.get(i, str(i)): a + b
            for i, (a, b) in enumerate(zip(cqe_errors, self._retired["cqe_errors"]))
            if a + b
        }
        return out

    def close(self) -> None:
        """Cancel whatever is in flight, reap it, free the ring. Idempotent.

        Results already returned stay valid: their records belong to them, not to the ring.
        """
        if self._ring is None:
            return
        if self._abort is not None:
            self._abort(InternalError("UringBackend closed during dump_all"))
        closes, self._closes = self._closes, None
        if closes is not None:
            closes.ring_detach(replaced=False)  # its subscriptions move to plain sockets
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        self._listen(False)
        ring, self._ring = self._ring, None
        self._absorb_stats(ring)
        if not ring.free():
            self._retired["leaked_buffers"] += 1  # the close subscriptions' buffers: a RECV never ended

    def __enter__(self) -> "UringBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ring", None) is not None:
            warnings.warn(f"Unclosed UringBackend {self.name}", ResourceWarning, stacklevel=2)
            self.close()
