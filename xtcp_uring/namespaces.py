"""Network namespaces: find them, keep one SOCK_DIAG socket in each, follow churn.

Theory of operation
-------------------
A netlink socket opened after ``setns`` stays in that namespace for life, so one process can
dump every namespace of the host through one fd per namespace. ``NamespaceManager`` keeps
exactly those fds and nothing else.

``reconcile()`` runs before each poll, in three steps:

1. **Scan** (event-loop thread, no fd opened). Bind mounts (``/var/run/netns/*``,
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
3. **Open** (one dedicated opener thread, never the event loop): open the namespace file,
   check it is still the scanned inode, ``setns`` in, open the socket, ``setns`` back
   (``csrc/netns.c``; connected to the kernel, so only the kernel can write to it), read
   ``SO_NETNS_COOKIE``. Only fds cross back to the loop.

Identity: the dedupe key is ``(st_dev, st_ino)``, checked before anything is opened. While
this manager holds a namespace's socket the namespace cannot be freed, so its inode cannot be
reused by a new one. ``SO_NETNS_COOKIE`` (unique per boot, Linux >= 5.14; 0 when missing) is
the identity exported in the records. ``net_id`` is a 32-bit number given when a namespace is
first opened and kept until it goes away; it is not reused before 2**32 namespaces later.

Limits: at most ``max_namespaces`` sockets are open at once; who gets one, who is skipped
(counted) and who is evicted for whom is ``namespace_admission``'s policy. Running out of fds (EMFILE/ENFILE) is counted where it happens (``fd_exhausted_scan``,
``fd_exhausted_open``) and survived: a scan cut short closes nothing, an open that hits the
limit stops this reconcile's opening (the rest are skipped, retried next time).

Failures: permission failures (setns needs CAP_SYS_ADMIN; another user's ``/proc/<pid>/ns/net``
needs CAP_SYS_PTRACE) are remembered per namespace, logged once (one warning per reconcile
for all new ones) and not retried while the namespace exists. A namespace or process that
vanishes mid-scan (``FileNotFoundError``) is normal churn: counted, never logged.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import os
import re
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from .errors import ConfigError, PrivilegeError
from .limits import FD_EXHAUSTED
from .namespace_admission import SKIP_LIMIT, SKIP_USERNS, Admission, owning_userns

__all__ = [
    "DEFAULT_BIND_ROOTS",
    "HOST_NAME",
    "Namespace",
    "NamespaceFailure",
    "NamespaceManager",
    "NamespaceStats",
    "ReconcileReport",
    "Selection",
]

log = logging.getLogger("xtcp_uring.namespaces")

DEFAULT_BIND_ROOTS: tuple[str, ...] = ("/var/run/netns", "/run/docker/netns")
HOST_NAME = "host"
DEFAULT_TASK_SCAN_INTERVAL = 60.0

_warned_proc_denied = False
_Key = tuple[int, int]  # (st_dev, st_ino) of the namespace file
_U32 = 1 << 32
_SHOW_NAMES = 8  # names listed in one failure warning
_GLOB_CHARS = frozenset("*?[")
# Errors that say "this namespace or process is gone", not "something is wrong".
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ESRCH})
# Errors worth retrying on the next reconcile (resources, not rights; fd exhaustion apart).
_TRANSIENT_ERRNOS = frozenset({errno.ENOMEM, errno.ENOBUFS, errno.EINTR})


@dataclass
class Namespace:
    """One network namespace with its open SOCK_DIAG socket, and its labels."""

    net_id: int  # this manager's 32-bit id (io_uring user_data carries it)
    name: str  # bind-mount name, else "pid:<pid>"; the process's own namespace is "host"
    inode: int
    cookie: int  # SO_NETNS_COOKIE, 0 where the kernel lacks it (< 5.14)
    pid: int  # one process inside (the lowest pid seen), 0 if none (bind mount only)
    fd: int  # non-blocking NETLINK_SOCK_DIAG socket opened inside the namespace
    dev: int = 0
    path: str = ""  # where it was found
    is_host: bool = False
    userns: int = 0  # inode of the owning user namespace (0: unknown)
    close_fd: int = -1  # close-event subscription socket (closes.py), -1: none

    @property
    def key(self) -> _Key:
        return (self.dev, self.inode)


@dataclass(frozen=True)
class NamespaceFailure:
    """A namespace that was found but could not be opened (and why)."""

    name: str
    inode: int
    path: str
    error: OSError


@dataclass
class NamespaceStats:
    reconciles: int = 0
    opened: int = 0  # sockets opened in a namespace (total)
    failed: int = 0  # namespaces that could not be opened (each counted once)
    vanished: int = 0  # namespaces that went away, their fd closed
    deselected: int = 0  # namespaces whose new name no longer matches the selection
    churn: int = 0  # FileNotFoundError/ESRCH mid-scan or mid-open: a process or mount went away
    proc_denied: int = 0  # /proc/<pid>/ns/net unreadable in the last scan (CAP_SYS_PTRACE)
    task_scans: int = 0
    reopened: int = 0  # sockets closed after an abandoned dump, reopened by the next reconcile
    opener_restarts: int = 0  # opener threads retired after failing to return to their namespace
    skipped_total: int = 0  # namespaces left out (max_namespaces, user namespace), each once per episode
    evicted: int = 0  # namespaces of other user namespaces closed to make room for ours
    fd_exhausted_scan: int = 0  # EMFILE/ENFILE listing /proc or a bind-mount directory
    fd_exhausted_open: int = 0  # EMFILE/ENFILE opening a namespace or its socket
    netlink_drained: int = 0  # datagrams found on a socket before it was connected: discarded
    close_events_unavailable: int = 0  # namespaces whose close-event socket could not be opened
    current: int = 0  # namespaces with an open fd now
    current_failed: int = 0  # namespaces found but not opened now
    skipped: int = 0  # namespaces found and selected but not polled now (limit or user namespace)
    skipped_userns: int = 0  # of those, left out for their user namespace (skip_user_namespaces)
    max_namespaces: int = 0  # the cap in force
    last_scan_ns: int = 0  # duration of the last /proc + bind-mount scan
    last_reconcile_ns: int = 0  # duration of the last reconcile, opening included
    last_scan_pids: int = 0


@dataclass
class ReconcileReport:
    """What one reconcile changed."""

    opened: list[Namespace] = field(default_factory=list)
    closed: list[Namespace] = field(default_factory=list)
    failed: list[NamespaceFailure] = field(default_factory=list)
    scan_ns: int = 0
    elapsed_ns: int = 0


class Selection:
    """Which namespaces to poll: ``"all"``, ``"host"``, or names/globs of namespace names.

    A string may hold several comma-separated patterns (``"web-*,host"``); a sequence of
    patterns works too. Patterns match the ``name`` label with ``fnmatch`` (``pid:1234`` for
    namespaces without a bind mount).
    """

    def __init__(self, spec: str | Sequence[str] | Selection = "all"):
        if isinstance(spec, Selection):
            self.patterns: tuple[str, ...] = spec.patterns
        else:
            parts = spec.split(",") if isinstance(spec, str) else list(spec)
            self.patterns = tuple(p.strip() for p in parts if p and p.strip())
        if not self.patterns:
            raise ConfigError("namespace selection is empty: use 'all', 'host' or names/globs")
        self.all = "all" in self.patterns
        self.host_only = self.patterns == (HOST_NAME,)
        # Exact names are a set lookup; globs become one regex. Names repeat every reconcile,
        # so answers are cached (bounded: a host has at most thousands of namespaces).
        self._exact = frozenset(p for p in self.patterns if not _GLOB_CHARS.intersection(p))
        globs = [fnmatch.translate(p) for p in self.patterns if _GLOB_CHARS.intersection(p)]
        self._glob = re.compile("|".join(globs)) if globs else None
        self._cache: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        if self.all:
            return True
        hit = self._cache.get(name)
        if hit is None:
            hit = name in self._exact or (self._glob is not None and self._glob.match(name) is not None)
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[name] = hit
        return hit

    def __repr__(self) -> str:
        return f"Selection({','.join(self.patterns)!r})"


@dataclass
class _Candidate:
    key: _Key
    path: str  # a file to open for setns
    bind_name: str | None = None
    pid: int = 0
    lookup_only: bool = False  # the opener only reads its owner (no budget left to open it)

    @property
    def name(self) -> str:
        if self.bind_name is not None:
            return self.bind_name
        return f"pid:{self.pid}" if self.pid else f"inode:{self.key[1]}"


def _inode_of_link(link: str) -> int | None:
    # "net:[4026531840]" -> 4026531840; anything else (a test's symlink) -> None
    if link.startswith("net:[") and link.endswith("]"):
        return int(link[5:-1])
    return None


class _Opened(NamedTuple):
    """What the opener thread did with one candidate: opened it (fd >= 0), read its owner only,
    or failed (error); ``attempted`` False when fd exhaustion stopped the batch before it."""

    cand: _Candidate
    fd: int = -1
    cookie: int = 0
    owner: int = 0
    error: OSError | None = None
    attempted: bool = True
    close_fd: int = -1


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
        close_events_rcvbuf: int | None = None,
    ):
        if max_namespaces is not None and (int(max_namespaces) != max_namespaces or max_namespaces < 1):
            raise ConfigError(f"max_namespaces must be an integer >= 1, not {max_namespaces!r}")
        self.selection = Selection(select)
        self._bind_roots = tuple(bind_roots)
        self._proc = proc_root.rstrip("/") or "/"
        self._task_scan_interval = task_scan_interval
        self.stats = NamespaceStats()
        self._admission = Admission(max_namespaces, bool(skip_user_namespaces), self.stats)
        self._by_key: dict[_Key, Namespace] = {}
        self._by_id: dict[int, Namespace] = {}
        self._failed: dict[_Key, NamespaceFailure] = {}
        self._task_only: dict[_Key, _Candidate] = {}  # seen only through a thread, last task scan
        self._next_task_scan = 0.0
        self._next_id = 1
        self._host_key: _Key | None = None
        self._nsfs_dev = 0
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards _inflight and _closed against the opener thread
        self._inflight: set[int] = set()  # fds opened by the thread, not yet adopted by the loop
        self._started = False
        self._closed = False
        self._warned_roots: set[str] = set()
        self._warned_transient: set[_Key] = set()
        self._scan_incomplete = False  # a listing failed: what was not seen may still exist
        self._warned_scan: set[tuple[str, int]] = set()
        # Close events (closes.py): with a receive buffer size, the opener also opens a
        # destroy-group subscription socket next to each dump socket; `before_close` hooks run
        # before a namespace's sockets are closed (a subscription must be cancelled first).
        self.close_events_rcvbuf = close_events_rcvbuf
        self.before_close: list = []

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

    async def reconcile(self) -> ReconcileReport:
        """Scan, close what vanished, open what is new (in the opener thread)."""
        t0 = time.perf_counter_ns()
        report, todo = self._begin()
        if todo:
            fut = self._opener().submit(self._open_batch, todo)
            try:
                results, poisoned = await asyncio.wrap_future(fut)
            except asyncio.CancelledError:
                fut.add_done_callback(self._discard_batch)
                raise
            self._adopt(results, poisoned, report)
        return self._end(report, t0)

    def reconcile_blocking(self) -> ReconcileReport:
        """``reconcile()`` for code without an event loop (the one-shot CLI, tests)."""
        t0 = time.perf_counter_ns()
        report, todo = self._begin()
        if todo:
            results, poisoned = self._opener().submit(self._open_batch, todo).result()
            self._adopt(results, poisoned, report)
        return self._end(report, t0)

    def close(self) -> None:
        """Close every namespace fd and stop the opener thread. Idempotent."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            inflight, self._inflight = self._inflight, set()
        if self._executor is not None:
            # The thread checks _closed between namespaces, so this waits for one open at most.
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for fd in inflight:
            _close_quietly(fd)
        for ns in self._by_key.values():
            for hook in self.before_close:
                hook(ns)
            _close_quietly(ns.fd)
            if ns.close_fd >= 0:
                _close_quietly(ns.close_fd)
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

    # --- step 1: scan --------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("NamespaceManager is closed")
        if self._started:
            return
        st = os.stat(f"{self._proc}/self/ns/net")
        self._nsfs_dev = st.st_dev
        # /var/run is usually a symlink to /run: list each real directory once.
        self._bind_roots = tuple(dict.fromkeys(os.path.realpath(r) for r in self._bind_roots))
        self._host_key = (st.st_dev, st.st_ino)
        self._admission.start()
        self._started = True

    def rescan_all(self) -> None:
        """Make the next reconcile scan every thread too (SIGHUP), not only every process."""
        self._next_task_scan = 0.0

    def _host_candidate(self) -> _Candidate:
        return _Candidate(self._host_key, f"{self._proc}/self/ns/net", HOST_NAME, os.getpid())

    def _scan(self) -> dict[_Key, _Candidate]:
        self._scan_incomplete = False
        found: dict[_Key, _Candidate] = {self._host_key: self._host_candidate()}
        if self.selection.host_only:
            return found
        self._scan_bind_roots(found)
        pids = self._scan_pids(found)
        now = time.monotonic()
        interval = self._task_scan_interval
        if self._scan_incomplete and interval is not None:
            self._next_task_scan = 0.0  # no pid list to scan the threads of: next time
            self._recheck_task_only(found)
        elif interval is not None and now >= self._next_task_scan:
            self._next_task_scan = now + interval
            self._scan_tasks(pids, found)
        else:
            self._recheck_task_only(found)
        return found

    def _scan_bind_roots(self, found: dict[_Key, _Candidate]) -> None:
        for root in self._bind_roots:
            try:
                entries = list(os.scandir(root))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as exc:
                if root not in self._warned_roots:
                    self._warned_roots.add(root)
                    log.warning("cannot list %s: %s; its namespaces are not polled", root, exc.strerror)
                continue
            except OSError as exc:
                self._listing_failed(root, exc)
                continue
            for entry in entries:
                try:
                    st = os.stat(entry.path)
                except FileNotFoundError:
                    self.stats.churn += 1
                    continue
                except OSError:
                    continue
                if st.st_dev != self._nsfs_dev:
                    continue  # a mount point left behind (ip netns del in progress), not a namespace
                key = (st.st_dev, st.st_ino)
                cand = found.get(key)
                if cand is None:
                    found[key] = _Candidate(key, entry.path, entry.name)
                elif cand.bind_name is None or (key != self._host_key and entry.name < cand.bind_name):
                    cand.bind_name = entry.name  # several names: the smallest, so it is stable

    def _scan_pids(self, found: dict[_Key, _Candidate]) -> list[str]:
        global _warned_proc_denied
        proc = self._proc
        dev = self._nsfs_dev
        host_link = f"net:[{self._host_key[1]}]"
        readlink = os.readlink
        denied: list[str] = []
        gone = 0
        try:
            names = os.listdir(proc)
        except OSError as exc:
            self._listing_failed(proc, exc)
            return []
        pids = [p for p in names if p.isdigit()]
        # The hot loop (1000 pids: ~4 ms): one readlink and one string compare per host pid.
        for p in pids:
            path = f"{proc}/{p}/ns/net"
            try:
                link = readlink(path)
            except FileNotFoundError:
                gone += 1  # exited since the listdir, or a zombie
                continue
            except PermissionError:
                denied.append(p)
                continue
            except OSError:
                link = ""
            if link == host_link:
                continue
            ino = _inode_of_link(link)
            if ino is None:
                ino = self._stat_ino(path)  # not a /proc magic link (a test's symlink tree)
                if ino is None or ino == self._host_key[1]:
                    continue
            key = (dev, ino)
            pid = int(p)
            cand = found.get(key)
            if cand is None:
                found[key] = _Candidate(key, path, None, pid)
            elif cand.pid == 0 or pid < cand.pid:
                cand.pid = pid
                if cand.bind_name is None:
                    cand.path = path
        self.stats.churn += gone
        self.stats.proc_denied = len(denied)
        self.stats.last_scan_pids = len(pids)
        if denied and not _warned_proc_denied:
            _warned_proc_denied = True  # once per process: the same pids deny every scan
            pids_shown = ",".join(denied[:_SHOW_NAMES]) + (",..." if len(denied) > _SHOW_NAMES else "")
            if _has_capability(_CAP_SYS_PTRACE):
                # Root already: a Yama/LSM policy or an undumpable process; nothing to grant.
                log.info("cannot read /proc/<pid>/ns/net of %d processes (pids %s) even with "
                         "CAP_SYS_PTRACE; namespaces only they are in are not polled", len(denied), pids_shown)
            else:
                log.warning(
                    "cannot read /proc/<pid>/ns/net of %d processes (pids %s): reading another "
                    "user's needs CAP_SYS_PTRACE; namespaces only those processes are in are not polled",
                    len(denied), pids_shown)
        return pids

    def _listing_failed(self, path: str, exc: OSError) -> None:
        """A directory of namespaces could not be listed: keep what it held last time."""
        self._scan_incomplete = True
        if exc.errno in FD_EXHAUSTED:
            self.stats.fd_exhausted_scan += 1
        key = (path, exc.errno or 0)
        if key not in self._warned_scan:  # once per (directory, errno): every scan would repeat it
            self._warned_scan.add(key)
            log.warning("cannot list %s: %s; namespaces already open stay open, new ones wait for a "
                        "complete scan%s", path, exc.strerror or exc,
                        " (counted in xtcp_fd_exhausted_total)" if exc.errno in FD_EXHAUSTED else "")

    def _stat_ino(self, path: str) -> int | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino if st.st_dev == self._nsfs_dev else None

    def _scan_tasks(self, pids: list[str], found: dict[_Key, _Candidate]) -> None:
        proc = self._proc
        dev = self._nsfs_dev
        host_ino = self._host_key[1]
        own = str(os.getpid())  # our opener thread visits namespaces only for a moment
        task_only: dict[_Key, _Candidate] = {}
        complete = True
        for p in pids:
            if p == own:
                continue
            try:
                tids = os.listdir(f"{proc}/{p}/task")
            except FileNotFoundError:
                continue  # the process ended
            except OSError as exc:
                if exc.errno in FD_EXHAUSTED:
                    self._listing_failed(f"{proc}/<pid>/task", exc)
                    complete = False
                    break  # the next pid would fail the same way
                continue
            if len(tids) < 2:
                continue  # the main thread alone: already scanned
            for t in tids:
                if t == p:
                    continue
                path = f"{proc}/{p}/task/{t}/ns/net"
                try:
                    ino = _inode_of_link(os.readlink(path))
                except OSError:
                    continue
                if ino is None or ino == host_ino:
                    continue
                key = (dev, ino)
                if key not in found:
                    found[key] = task_only[key] = _Candidate(key, path, None, int(p))
        if not complete:  # keep the threads seen before, and scan them all again next time
            task_only = {**self._task_only, **task_only}
            self._next_task_scan = 0.0
        self._task_only = task_only
        self.stats.task_scans += 1

    def _recheck_task_only(self, found: dict[_Key, _Candidate]) -> None:
        for key, cand in list(self._task_only.items()):
            if key in found:
                continue
            try:
                ino = _inode_of_link(os.readlink(cand.path))
            except OSError:
                ino = None
            if ino == key[1]:
                found[key] = cand
            else:
                del self._task_only[key]  # that thread left or ended; the next task scan looks again

    # --- step 2: plan --------------------------------------------------------------------

    def _begin(self) -> tuple[ReconcileReport, list[_Candidate]]:
        self._start()
        t0 = time.perf_counter_ns()
        found = self._scan()
        report = ReconcileReport(scan_ns=time.perf_counter_ns() - t0)
        self.stats.last_scan_ns = report.scan_ns
        complete = not self._scan_incomplete  # else what was not seen may still be there
        if complete:
            for key in [k for k in self._failed if k not in found]:
                del self._failed[key]  # gone: if its inode comes back, it is a new namespace
        for key, ns in list(self._by_key.items()):
            cand = found.get(key)
            if cand is not None:
                name = HOST_NAME if key == self._host_key else cand.name
                if self.selection.matches(name):
                    ns.name, ns.pid = name, cand.pid
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
        for hook in self.before_close:
            hook(ns)
        _close_quietly(ns.fd)
        if ns.close_fd >= 0:
            _close_quietly(ns.close_fd)

    def _end(self, report: ReconcileReport, t0: int) -> ReconcileReport:
        report.elapsed_ns = time.perf_counter_ns() - t0
        s = self.stats
        s.reconciles += 1
        s.current = len(self._by_key)
        s.current_failed = len(self._failed)
        s.last_reconcile_ns = report.elapsed_ns
        self._admission.report(len(self._by_key))
        return report

    # --- step 3: open (opener thread) ----------------------------------------------------

    def _opener(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtcp-netns-opener")
        return self._executor

    def _open_batch(self, todo: list[_Candidate]) -> tuple[list[_Opened], bool]:
        """Runs in the opener thread: each candidate opened, its owner read, or its error.
        Returns (results, poisoned): poisoned when this thread could not leave a namespace."""
        from . import native  # only for lib; kept out of module import so tests can scan without it

        lib, ffi = native.lib, native.ffi
        cookie_out = ffi.new("uint64_t *")

        def _open_diag(nsfd: int) -> tuple[int, int]:
            try:
                return native.open_diag_socket(nsfd)
            except OSError as exc:
                return -exc.errno, 0
        here = _thread_ns_key()
        results: list[_Opened] = []
        for i, cand in enumerate(todo):
            if self._closed:
                break
            if cand.key == here:
                owner = self._admission.own_userns
                if cand.lookup_only:
                    results.append(_Opened(cand, owner=owner))
                    continue
                fd, drained = _open_diag(-1)  # this thread's own namespace: no setns
                close_fd = self._open_close_socket(-1, fd)
            else:
                try:
                    nsfd = os.open(cand.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    results.append(_Opened(cand, error=exc))
                    if exc.errno in FD_EXHAUSTED:
                        results += [_Opened(c, attempted=False) for c in todo[i + 1:]]
                        break
                    continue
                try:
                    st = os.fstat(nsfd)
                    if (st.st_dev, st.st_ino) != cand.key:
                        # The pid died and was reused (or the mount changed) since the scan.
                        results.append(_Opened(cand, error=FileNotFoundError(
                            errno.ENOENT, "namespace changed since the scan", cand.path)))
                        continue
                    owner = owning_userns(nsfd)
                    if cand.lookup_only or self._admission.leaves_out(owner):
                        results.append(_Opened(cand, owner=owner))
                        continue
                    fd, drained = _open_diag(nsfd)
                    close_fd = self._open_close_socket(nsfd, fd)
                finally:
                    os.close(nsfd)
            if fd == -errno.ENOTRECOVERABLE:
                return results, True  # this thread is stuck in a foreign namespace: retire it
            if close_fd == -errno.ENOTRECOVERABLE:  # the same, after the close-event socket
                os.close(fd)
                return results, True
            if fd < 0:
                results.append(_Opened(cand, owner=owner, error=OSError(-fd, os.strerror(-fd), cand.path)))
                if -fd in FD_EXHAUSTED:
                    results += [_Opened(c, attempted=False) for c in todo[i + 1:]]
                    break
                continue
            rc = lib.xtcp_netns_cookie(fd, cookie_out)
            cookie = cookie_out[0] if rc == 0 else 0
            with self._lock:
                self.stats.netlink_drained += drained
                if self._closed:
                    os.close(fd)
                    if close_fd >= 0:
                        os.close(close_fd)
                    break
                self._inflight.add(fd)
                if close_fd >= 0:
                    self._inflight.add(close_fd)
            results.append(_Opened(cand, fd, cookie, owner, close_fd=close_fd))
        return results, False

    def _open_close_socket(self, nsfd: int, diag_fd: int) -> int:
        """Opener thread: the namespace's close-event socket (closes.py), or -1 (counted)."""
        if diag_fd < 0 or self.close_events_rcvbuf is None:
            return -1
        from .closes import open_close_socket
        fd, drained = open_close_socket(nsfd, self.close_events_rcvbuf)
        with self._lock:
            self.stats.netlink_drained += drained
            if fd < 0 and fd != -errno.ENOTRECOVERABLE:
                self.stats.close_events_unavailable += 1
        return fd if fd >= 0 or fd == -errno.ENOTRECOVERABLE else -1

    def _discard_batch(self, fut) -> None:
        """A reconcile was cancelled while the thread opened: close what it opened."""
        if fut.cancelled() or fut.exception() is not None:
            return
        results, _ = fut.result()
        with self._lock:
            for r in results:
                for fd in (r.fd, r.close_fd):
                    if fd >= 0 and fd in self._inflight:
                        self._inflight.discard(fd)
                        _close_quietly(fd)

    def _adopt(self, results: list[_Opened], poisoned: bool, report: ReconcileReport) -> None:
        new_failures = []
        exhausted = False
        for r in results:
            cand = r.cand
            if r.fd >= 0 or (r.error is None and r.attempted):
                self._admission.learn(cand.key, r.owner)  # 0 (unknown) too: not asked again
            if r.fd >= 0:
                with self._lock:
                    if r.fd not in self._inflight:
                        continue  # closed meanwhile
                    self._inflight.discard(r.fd)
                    self._inflight.discard(r.close_fd)
                ns = Namespace(
                    net_id=self._alloc_id(), name=cand.name, inode=cand.key[1], cookie=r.cookie,
                    pid=cand.pid, fd=r.fd, dev=cand.key[0], path=cand.path,
                    is_host=cand.key == self._host_key, userns=r.owner, close_fd=r.close_fd,
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
            _warn_failures(new_failures)
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


_CAP_SYS_PTRACE = 19


def _has_capability(bit: int) -> bool:
    """Is this capability in our effective set (``CapEff`` of /proc/self/status)?"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False


def _thread_ns_key() -> _Key | None:
    try:
        st = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _explain(cand: _Candidate, exc: OSError) -> OSError:
    """Turn a failed open into an error that names the capability the operator must grant."""
    if exc.errno == errno.EPERM:
        return PrivilegeError(errno.EPERM, f"cannot enter network namespace {cand.name}: setns needs CAP_SYS_ADMIN", cand.path)
    if exc.errno == errno.EACCES:
        return PrivilegeError(errno.EACCES, f"cannot open {cand.path} of network namespace {cand.name}: "
                              "another user's /proc/<pid>/ns/net needs CAP_SYS_PTRACE", cand.path)
    return exc


def _warn_failures(failures: list[NamespaceFailure]) -> None:
    by_reason: dict[str, list[str]] = {}
    for f in failures:
        if isinstance(f.error, PrivilegeError):
            reason = ("setns needs CAP_SYS_ADMIN" if f.error.errno == errno.EPERM
                      else "another user's /proc/<pid>/ns/net needs CAP_SYS_PTRACE")
        else:
            reason = f.error.strerror or str(f.error)
        by_reason.setdefault(reason, []).append(f.name)
    for reason, names in by_reason.items():
        shown = ", ".join(names[:_SHOW_NAMES])
        more = f" and {len(names) - _SHOW_NAMES} more" if len(names) > _SHOW_NAMES else ""
        log.warning("cannot open %d network namespace%s (%s%s): %s; polling the others",
                    len(names), "" if len(names) == 1 else "s", shown, more, reason)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
