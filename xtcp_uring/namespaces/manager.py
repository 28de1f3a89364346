"""NamespaceManager: keep one SOCK_DIAG socket in each selected namespace, follow churn.

Theory of operation
-------------------
A netlink socket opened after ``setns`` stays in that namespace for life, so one process can
dump every namespace of the host through one fd per namespace. ``NamespaceManager`` keeps
exactly those fds and nothing else.

``reconcile()`` runs before each poll, in three steps:

1. **Scan** (``scan``: event-loop thread, no fd opened). Bind mounts (``/var/run/netns/*``,
   ``/run/docker/netns/*``) are ``stat``-ed; every ``/proc/<pid>/ns/net`` is ``readlink``-ed
   (``net:[<inode>]``, half the cost of ``stat``: all namespace files live on the one nsfs
   superblock, so the inode alone is the ``(st_dev, st_ino)`` key). Nothing else is done per
   pid: most pids sit in the host namespace and are dropped after one compare. Threads can
   sit in other namespaces than their process, but listing ``/proc/<pid>/task`` doubles the
   scan, so the full task scan runs every ``task_scan_interval`` seconds (60 by default, and
   on the first reconcile); in between, a namespace seen only through a thread is kept while
   that thread's ``ns/net`` still points at it (one ``readlink`` each).
2. **Plan.** Namespaces no longer found have their fd closed (an open fd pins a deleted
   namespace); labels of the others are refreshed; new ones that match the selection are
   handed to the opener.
3. **Open** (``opener``: one dedicated thread, never the event loop): open the namespace file,
   check it is still the scanned inode, ``setns`` in, open the socket, ``setns`` back
   (``csrc/netns.c``; connected to the kernel, so only the kernel can write to it), read
   ``SO_NETNS_COOKIE``. Only fds cross back to the loop.

Identity: the dedupe key is ``(st_dev, st_ino)``, checked before anything is opened. While
this manager holds a namespace's socket the namespace cannot be freed, so its inode cannot be
reused by a new one. ``SO_NETNS_COOKIE`` (unique per boot, Linux >= 5.14; 0 when missing) is
the identity exported in the records. ``net_id`` is a 32-bit number given when a namespace is
first opened and kept until it goes away; it is not reused before 2**32 namespaces later.

Limits: at most ``max_namespaces`` sockets are open at once; who gets one, who is skipped
(counted) and who is evicted for whom is ``admission``'s policy. Running out of fds
(EMFILE/ENFILE) is counted where it happens (``fd_exhausted_scan``, ``fd_exhausted_open``) and
survived: a scan cut short closes nothing, an open that hits the
limit stops this reconcile's opening (the rest are skipped, retried next time).

Failures: permission failures (setns needs CAP_SYS_ADMIN; another user's ``/proc/<pid>/ns/net``
needs CAP_SYS_PTRACE) are remembered per namespace, logged once (one warning per reconcile
for all new ones) and not retried while the namespace exists. A namespace or process that
vanishes mid-scan (``FileNotFoundError``) is normal churn: counted, never logged.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

from ..errors import ConfigError, PrivilegeError
from .admission import SKIP_LIMIT, SKIP_USERNS, Admission
from .limits import FD_EXHAUSTED
from .model import (HOST_NAME, SHOW_NAMES, Candidate, Key, Namespace, NamespaceFailure, NamespaceStats, Opened,
                    ReconcileReport, close_quietly)
from .opener import Opener
from .scan import Scanner
from .selection import Selection

__all__ = ["DEFAULT_BIND_ROOTS", "DEFAULT_TASK_SCAN_INTERVAL", "NamespaceManager"]

log = logging.getLogger("xtcp_uring.namespaces")

DEFAULT_BIND_ROOTS: tuple[str, ...] = ("/var/run/netns", "/run/docker/netns")
DEFAULT_TASK_SCAN_INTERVAL = 60.0

_U32 = 1 << 32
# Errors that say "this namespace or process is gone", not "something is wrong".
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ESRCH})
# Errors worth retrying on the next reconcile (resources, not rights; fd exhaustion apart).
_TRANSIENT_ERRNOS = frozenset({errno.ENOMEM, errno.ENOBUFS, errno.EINTR})


class NamespaceManager:
    """Discovers network namespaces and keeps one SOCK_DIAG fd open in each selected one.

    Args:
        select: ``"all"``, ``"host"``, or names/globs (see ``Selection``).
        bind_roots: directories of bind-mounted namespace files.
        proc_root: where ``<pid>/ns/net`` and ``<pid>/task/<tid>/ns/net`` are read.
        task_scan_interval: seconds between full scans of every thread's namespace;
            0 scans threads on every reconcile, None never.
        max_namespaces: sockets open at once, the host's included; None: sized from the
            soft open-file limit at the first reconcile (``limits.default_max_namespaces``).
        skip_user_namespaces: leave out namespaces owned by another user namespace than
            ours (what ``unshare -Urn`` and rootless containers make); counted as skipped.
        close_events_rcvbuf: also open a close-event subscription (``closes``) next to each
            dump socket, with this receive buffer in bytes; None: none. ``before_close`` hooks
            run with a namespace before its sockets are closed (a subscription is stopped first).
        warn_failures: warn (once each) about namespaces that cannot be opened or found; False
            when the caller reports them itself (the CLI's one "polling N of M namespaces" line).

    The manager does no I/O until the first ``reconcile()``. ``close()`` closes every fd and
    stops the opener thread; it is idempotent.
    """

    def __init__(
        self,
        select: str | Sequence[str] | Selection = "all",
        *,
        bind_roots: Iterable[str] = DEFAULT_BIND_ROOTS,
        proc_root: str = "/proc",
        task_scan_interval: float | None = DEFAULT_TASK_SCAN_INTERVAL,
        max_namespaces: int | None = None,
        skip_user_namespaces: bool = False,
        warn_failures: bool = True,
        close_events_rcvbuf: int | None = None,
    ):
        if max_namespaces is not None and (int(max_namespaces) != max_namespaces or max_namespaces < 1):
            raise ConfigError(f"max_namespaces must be an integer >= 1, not {max_namespaces!r}")
        self.selection = Selection(select)
        self.stats = NamespaceStats()
        self._scanner = Scanner(proc_root, tuple(bind_roots), task_scan_interval, self.stats)
        self._admission = Admission(max_namespaces, bool(skip_user_namespaces), self.stats)
        # False when the caller says it in its own summary (the CLI's "polling N of M namespaces").
        self._warn_failures = bool(warn_failures)
        self._scanner.warn_denied = self._warn_failures
        self._open = Opener(self._admission, self.stats, close_events_rcvbuf)
        self.close_events_rcvbuf = close_events_rcvbuf
        self.before_close: list = []  # callables(ns), run before a namespace's sockets are closed
        self._by_key: dict[Key, Namespace] = {}
        self._by_id: dict[int, Namespace] = {}
        self._failed: dict[Key, NamespaceFailure] = {}
        self._next_id = 1
        self._host_key: Key | None = None
        self.found_names: tuple[str, ...] = ()  # every namespace of the last scan, when a selection is given
        self._executor: ThreadPoolExecutor | None = None  # the opener thread (Opener's work)
        self._started = False
        self._closed = False
        self._warned_transient: set[Key] = set()

    # --- public --------------------------------------------------------------------------

    @property
    def namespaces(self) -> list[Namespace]:
        """Open namespaces, by net_id."""
        return sorted(self._by_id.values(), key=lambda ns: ns.net_id)

    @property
    def failures(self) -> list[NamespaceFailure]:
        """Selected namespaces that exist but could not be opened."""
        return list(self._failed.values())

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Selected namespaces not polled: (name, why), why being ``SKIP_LIMIT`` or ``SKIP_USERNS``."""
        return list(self._admission.skipped.values())

    @property
    def max_namespaces(self) -> int | None:
        """The cap: None until the first reconcile sizes it from the open-file limit."""
        return self._admission.max_namespaces

    def get(self, net_id: int) -> Namespace | None:
        return self._by_id.get(net_id)

    @property
    def host(self) -> Namespace | None:
        return self._by_key.get(self._host_key) if self._host_key else None

    @property
    def host_namespace(self):
        """Which namespace is ``host`` and by which rule (``enrich.host``); None before the first reconcile."""
        return self._scanner.host

    async def reconcile(self) -> ReconcileReport:
        """Scan, close what vanished, open what is new (in the opener thread)."""
        t0 = time.perf_counter_ns()
        report, todo = self._begin()
        if todo:
            fut = self._opener().submit(self._open.open_batch, todo)
            try:
                results, poisoned = await asyncio.wrap_future(fut)
            except asyncio.CancelledError:
                fut.add_done_callback(self._open.discard)
                raise
            self._adopt(results, poisoned, report)
        return self._end(report, t0)

    def reconcile_blocking(self) -> ReconcileReport:
        """``reconcile()`` for code without an event loop (tests)."""
        t0 = time.perf_counter_ns()
        report, todo = self._begin()
        if todo:
            results, poisoned = self._opener().submit(self._open.open_batch, todo).result()
            self._adopt(results, poisoned, report)
        return self._end(report, t0)

    def close(self) -> None:
        """Close every namespace fd and stop the opener thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        inflight = self._open.close()
        if self._executor is not None:
            # The thread checks _closed between namespaces, so this waits for one open at most.
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for fd in inflight:
            close_quietly(fd)
        for ns in self._by_key.values():
            self._close_sockets(ns)
        self._by_key.clear()
        self._by_id.clear()
        self._failed.clear()
        self._admission.clear()
        self.stats.current = self.stats.current_failed = 0

    def __enter__(self) -> NamespaceManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_started", False) and not getattr(self, "_closed", True):
            warnings.warn(f"Unclosed NamespaceManager with {len(self._by_key)} open namespace fds",
                          ResourceWarning, source=self)
            self.close()

    def _opener(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtcp-netns-opener")
        return self._executor

    # --- step 2: plan (steps 1 and 3 are Scanner and Opener) --------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("NamespaceManager is closed")
        if self._started:
            return
        self._scanner.start()
        self._host_key = self._scanner.host_key
        self._admission.start()
        self._started = True

    def rescan_all(self) -> None:
        """Make the next reconcile scan every thread too (SIGHUP), not only every process."""
        self._scanner.rescan_all()

    def _begin(self) -> tuple[ReconcileReport, list[Candidate]]:
        self._start()
        t0 = time.perf_counter_ns()
        found = self._scanner.scan(host_only=self.selection.host_only)
        if not self.selection.all:  # for "--namespaces x matched nothing; found: ..."
            self.found_names = tuple(HOST_NAME if k == self._host_key else c.name for k, c in found.items())
        report = ReconcileReport(scan_ns=time.perf_counter_ns() - t0)
        self.stats.last_scan_ns = report.scan_ns
        complete = not self._scanner.incomplete  # else what was not seen may still be there
        if complete:
            for key in [k for k in self._failed if k not in found]:
                del self._failed[key]  # gone: if its inode comes back, it is a new namespace
        for key, ns in list(self._by_key.items()):
            cand = found.get(key)
            if cand is not None:
                name = HOST_NAME if key == self._host_key else cand.name
                if self.selection.matches(name):
                    ns.name, ns.pid, ns.pids = name, cand.pid, tuple(cand.pids)
                    continue
                self.stats.deselected += 1
            elif not complete:
                continue
            else:
                self.stats.vanished += 1
            self._forget(ns)
            report.closed.append(ns)
        todo = []
        for key, cand in found.items():
            if key in self._by_key or key in self._failed:
                continue
            if key == self._host_key:
                cand.bind_name = HOST_NAME
            if self.selection.matches(cand.name):
                todo.append(cand)
        self._admission.begin(found, complete)
        return report, self._admission.choose(todo, len(self._by_key), self._host_key)

    def reopen(self, net_id: int) -> None:
        """Close a namespace's socket; the next reconcile opens a fresh one (with a new net_id).

        For a socket whose dump was abandoned (timeout, cancel): the kernel keeps that dump
        pending on it and answers every new request with EBUSY.
        """
        ns = self._by_id.get(net_id)
        if ns is not None:
            self._forget(ns)
            self.stats.reopened += 1

    def _forget(self, ns: Namespace) -> None:
        del self._by_key[ns.key]
        del self._by_id[ns.net_id]
        self._close_sockets(ns)

    def _close_sockets(self, ns: Namespace) -> None:
        for hook in self.before_close:
            hook(ns)
        close_quietly(ns.fd)
        if ns.close_fd >= 0:
            close_quietly(ns.close_fd)

    def _end(self, report: ReconcileReport, t0: int) -> ReconcileReport:
        report.elapsed_ns = time.perf_counter_ns() - t0
        s = self.stats
        s.reconciles += 1
        s.current = len(self._by_key)
        s.current_failed = len(self._failed)
        s.last_reconcile_ns = report.elapsed_ns
        self._admission.report(len(self._by_key))
        return report

    def _adopt(self, results: list[Opened], poisoned: bool, report: ReconcileReport) -> None:
        new_failures = []
        exhausted = False
        for r in results:
            cand = r.cand
            if r.fd >= 0 or (r.error is None and r.attempted):
                self._admission.learn(cand.key, r.owner)  # 0 (unknown) too: not asked again
            if r.fd >= 0:
                if not self._open.adopt(r.fd, r.close_fd):
                    continue  # closed meanwhile
                ns = Namespace(
                    net_id=self._alloc_id(), name=cand.name, inode=cand.key[1], cookie=r.cookie,
                    pid=cand.pid, fd=r.fd, dev=cand.key[0], path=cand.path,
                    is_host=cand.key == self._host_key, userns=r.owner, pids=tuple(cand.pids),
                    close_fd=r.close_fd,
                )
                self._by_key[ns.key] = ns
                self._by_id[ns.net_id] = ns
                self.stats.opened += 1
                report.opened.append(ns)
                continue
            exc = r.error
            if exc is None:  # owner read only, or not tried after the fds ran out
                why = SKIP_USERNS if r.attempted and self._admission.leaves_out(r.owner) else SKIP_LIMIT
                self._admission.skip(cand.key, cand.name, why)
                continue
            if isinstance(exc, FileNotFoundError) or exc.errno in _GONE_ERRNOS:
                self.stats.churn += 1  # gone before we got there; found again if it comes back
                continue
            if exc.errno in FD_EXHAUSTED:
                self.stats.fd_exhausted_open += 1
                self._admission.skip(cand.key, cand.name, SKIP_LIMIT)
                exhausted = True
                continue
            failure = NamespaceFailure(cand.name, cand.key[1], cand.path, _explain(cand, exc))
            report.failed.append(failure)
            if exc.errno in _TRANSIENT_ERRNOS:
                if cand.key not in self._warned_transient:
                    self._warned_transient.add(cand.key)
                    log.warning("network namespace %s: %s (retried every poll)", cand.name, exc.strerror)
                continue
            self._failed[cand.key] = failure
            self.stats.failed += 1
            new_failures.append(failure)
        if new_failures:
            _warn_failures(new_failures, log.warning if self._warn_failures else log.debug)
        if exhausted and not self._admission.was_limited:
            log.warning("ran out of file descriptors opening network namespaces (%d open): the rest are "
                        "skipped and retried each poll; lower --max-namespaces or raise LimitNOFILE "
                        "(counted in xtcp_fd_exhausted_total)", len(self._by_key))
        for ns in self._admission.to_evict(self._by_key.values()):
            self._forget(ns)
        if poisoned:
            # setns back failed: that thread now lives in another namespace and must not open
            # anything again. A fresh thread takes over; the rest is retried next reconcile.
            log.error("the namespace opener thread could not return to its own namespace; replacing it")
            self.stats.opener_restarts += 1
            old, self._executor = self._executor, None
            if old is not None:
                old.shutdown(wait=False)

    def _alloc_id(self) -> int:
        while True:
            net_id = self._next_id
            self._next_id = (self._next_id + 1) % _U32 or 1  # 0 is never an id
            if net_id not in self._by_id:
                return net_id


def _explain(cand: Candidate, exc: OSError) -> OSError:
    """Turn a failed open into an error that names the capability the operator must grant."""
    if exc.errno == errno.EPERM:
        return PrivilegeError(errno.EPERM, f"cannot enter network namespace {cand.name}: setns needs CAP_SYS_ADMIN", cand.path)
    if exc.errno == errno.EACCES:
        return PrivilegeError(errno.EACCES, f"cannot open {cand.path} of network namespace {cand.name}: "
                              "another user's /proc/<pid>/ns/net needs CAP_SYS_PTRACE", cand.path)
    return exc


def _warn_failures(failures: list[NamespaceFailure], say=log.warning) -> None:
    by_reason: dict[str, list[str]] = {}
    for f in failures:
        if isinstance(f.error, PrivilegeError):
            reason = ("setns needs CAP_SYS_ADMIN" if f.error.errno == errno.EPERM
                      else "another user's /proc/<pid>/ns/net needs CAP_SYS_PTRACE")
        else:
            reason = f.error.strerror or str(f.error)
        by_reason.setdefault(reason, []).append(f.name)
    for reason, names in by_reason.items():
        shown = ", ".join(names[:SHOW_NAMES])
        more = f" and {len(names) - SHOW_NAMES} more" if len(names) > SHOW_NAMES else ""
        say("cannot open %d network namespace%s (%s%s): %s; polling the others",
                    len(names), "" if len(names) == 1 else "s", shown, more, reason)
