"""Step 1 of a reconcile: find every network namespace of the host, opening nothing.

Bind mounts (``/var/run/netns/*``, ``/run/docker/netns/*``) are ``stat``-ed; every
``/proc/<pid>/ns/net`` is ``readlink``-ed (``net:[<inode>]``, half the cost of ``stat``: all
namespace files live on the one nsfs superblock, so the inode alone is the ``(st_dev, st_ino)``
key). Threads can sit in other namespaces than their process, but listing
``/proc/<pid>/task`` doubles the scan, so the full task scan runs every ``task_scan_interval``
seconds; in between, a namespace seen only through a thread is kept while that thread's
``ns/net`` still points at it. Runs on the event-loop thread: no fd is opened here.
"""

from __future__ import annotations

import logging
import os
import time

from ..enrich.host import HostNamespace, StableNames, find_host_namespace
from ..privileges import CAP_SYS_PTRACE, holds
from .limits import FD_EXHAUSTED
from .model import HOST_NAME, SHOW_NAMES as _SHOW_NAMES, Candidate, Key, NamespaceStats

__all__ = ["Scanner"]

log = logging.getLogger("xtcp_uring.namespaces")

_warned_proc_denied = False


class Scanner:
    """What one scan finds: ``scan()`` returns a Candidate per namespace key.

    Args:
        proc_root: where ``<pid>/ns/net`` and ``<pid>/task/<tid>/ns/net`` are read.
        bind_roots: directories of bind-mounted namespace files.
        task_scan_interval: seconds between full scans of every thread's namespace;
            0 scans threads on every scan, None never.
        stats: the manager's counters (churn, proc_denied, task_scans, fd_exhausted_scan…).
    """

    def __init__(self, proc_root: str, bind_roots: tuple[str, ...], task_scan_interval: float | None,
                 stats: NamespaceStats):
        self._proc = proc_root.rstrip("/") or "/"
        self._bind_roots = bind_roots
        self._task_scan_interval = task_scan_interval
        self.stats = stats
        self.warn_denied = True  # /proc/<pid>/ns/net unreadable: a warning, or debug when the caller sums it up
        self._nsfs_dev = 0
        self.host_key: Key | None = None
        self.host: HostNamespace | None = None  # which namespace is "host", and why (enrich.host)
        self._own_key: Key | None = None  # the namespace this process runs in
        self._names = StableNames()
        self._task_only: dict[Key, Candidate] = {}  # seen only through a thread, last task scan
        self._next_task_scan = 0.0
        self._warned_roots: set[str] = set()
        self._warned_scan: set[tuple[str, int]] = set()
        self.incomplete = False  # a listing failed: what was not seen may still exist

    def start(self) -> None:
        """Learn the host's namespace and the nsfs device; once, before the first scan."""
        st = os.stat(f"{self._proc}/self/ns/net")
        self._nsfs_dev = st.st_dev
        # /var/run is usually a symlink to /run: list each real directory once.
        self._bind_roots = tuple(dict.fromkeys(os.path.realpath(r) for r in self._bind_roots))
        self.host = find_host_namespace(self._proc)  # the initial namespace (the rule: enrich.host)
        self.host_key = self.host.key
        self._own_key = (st.st_dev, st.st_ino)

    def rescan_all(self) -> None:
        """Make the next scan list every thread too, not only every process."""
        self._next_task_scan = 0.0

    def host_candidate(self) -> Candidate:
        if self.host_key == self._own_key:  # we run in it: our own pid, no setns needed
            return Candidate(self.host_key, f"{self._proc}/self/ns/net", HOST_NAME, os.getpid())
        return Candidate(self.host_key, self.host.path, HOST_NAME, self.host.pid)

    def scan(self, host_only: bool = False) -> dict[Key, Candidate]:
        self.incomplete = False
        found: dict[Key, Candidate] = {self.host_key: self.host_candidate()}
        if host_only:
            return found
        self._scan_bind_roots(found)
        pids = self._scan_pids(found)
        now = time.monotonic()
        interval = self._task_scan_interval
        if self.incomplete and interval is not None:
            self._next_task_scan = 0.0  # no pid list to scan the threads of: next time
            self._recheck_task_only(found)
        elif interval is not None and now >= self._next_task_scan:
            self._next_task_scan = now + interval
            self._scan_tasks(pids, found)
        else:
            self._recheck_task_only(found)
        for key, cand in found.items():
            if cand.bind_name is None:
                cand.stable_name = self._names.name(key, key[1], cand.pids or (cand.pid,))
        if not self.incomplete:
            self._names.prune(found)
        return found

    def _scan_bind_roots(self, found: dict[Key, Candidate]) -> None:
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
                    found[key] = Candidate(key, entry.path, entry.name)
                elif cand.bind_name is None or (key != self.host_key and entry.name < cand.bind_name):
                    cand.bind_name = entry.name  # several names: the smallest, so it is stable

    def _scan_pids(self, found: dict[Key, Candidate]) -> list[str]:
        global _warned_proc_denied
        proc = self._proc
        dev = self._nsfs_dev
        host_link = f"net:[{self.host_key[1]}]"
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
                if ino is None or ino == self.host_key[1]:
                    continue
            key = (dev, ino)
            pid = int(p)
            cand = found.get(key)
            if cand is None:
                found[key] = cand = Candidate(key, path, None, pid)
            elif cand.pid == 0 or pid < cand.pid:
                cand.pid = pid
                if cand.bind_name is None:
                    cand.path = path
            cand.pids.append(pid)  # all of them: the container enricher reads each one's cgroup
        self.stats.churn += gone
        self.stats.proc_denied = len(denied)
        self.stats.last_scan_pids = len(pids)
        if denied and not _warned_proc_denied:
            _warned_proc_denied = True  # once per process: the same pids deny every scan
            pids_shown = ",".join(denied[:_SHOW_NAMES]) + (",..." if len(denied) > _SHOW_NAMES else "")
            if holds(CAP_SYS_PTRACE):
                # Root already: a Yama/LSM policy or an undumpable process; nothing to grant.
                # Nothing anyone can grant (a Yama/LSM policy, pid 1 of a container): not worth a line per command.
                log.debug("cannot read /proc/<pid>/ns/net of %d processes (pids %s) even with "
                         "CAP_SYS_PTRACE; namespaces only they are in are not polled", len(denied), pids_shown)
            else:
                (log.warning if self.warn_denied else log.debug)(  # else the CLI's coverage line says it
                    "cannot read /proc/<pid>/ns/net of %d processes (pids %s): reading another "
                    "user's needs CAP_SYS_PTRACE; namespaces only those processes are in are not polled",
                    len(denied), pids_shown)
        return pids

    def _listing_failed(self, path: str, exc: OSError) -> None:
        """A directory of namespaces could not be listed: keep what it held last time."""
        self.incomplete = True
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

    def _scan_tasks(self, pids: list[str], found: dict[Key, Candidate]) -> None:
        proc = self._proc
        dev = self._nsfs_dev
        host_ino = self.host_key[1]
        own = str(os.getpid())  # our opener thread visits namespaces only for a moment
        task_only: dict[Key, Candidate] = {}
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
                    found[key] = task_only[key] = Candidate(key, path, None, int(p), pids=[int(p)])
        if not complete:  # keep the threads seen before, and scan them all again next time
            task_only = {**self._task_only, **task_only}
            self._next_task_scan = 0.0
        self._task_only = task_only
        self.stats.task_scans += 1

    def _recheck_task_only(self, found: dict[Key, Candidate]) -> None:
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


def _inode_of_link(link: str) -> int | None:
    # "net:[4026531840]" -> 4026531840; anything else (a test's symlink) -> None
    if link.startswith("net:[") and link.endswith("]"):
        return int(link[5:-1])
    return None
