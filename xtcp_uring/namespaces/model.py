"""The namespace manager's nouns: a namespace with its socket, a failure, the counters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["HOST_NAME", "Key", "Namespace", "NamespaceFailure", "NamespaceStats", "ReconcileReport",
           "Candidate", "Opened", "close_quietly"]

HOST_NAME = "host"
SHOW_NAMES = 8  # names listed in one warning
Key = tuple[int, int]  # (st_dev, st_ino) of the namespace file


@dataclass
class Namespace:
    """One network namespace with its open SOCK_DIAG socket, and its labels."""

    net_id: int  # this manager's 32-bit id (io_uring user_data carries it)
    name: str  # bind-mount name, else "pid:<pid>" (kept while it lives); the initial one is "host"
    inode: int
    cookie: int  # SO_NETNS_COOKIE, 0 where the kernel lacks it (< 5.14)
    pid: int  # one process inside (the lowest pid seen), 0 if none (bind mount only)
    fd: int  # non-blocking NETLINK_SOCK_DIAG socket opened inside the namespace
    dev: int = 0
    path: str = ""  # where it was found
    is_host: bool = False
    userns: int = 0  # inode of the owning user namespace (0: unknown)
    pids: tuple[int, ...] = ()  # every process inside at the last scan (the host's: none listed)
    close_fd: int = -1  # close-event subscription socket (``closes``), -1: none

    @property
    def key(self) -> Key:
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


@dataclass
class Candidate:
    key: Key
    path: str  # a file to open for setns
    bind_name: str | None = None
    pid: int = 0
    lookup_only: bool = False  # the opener only reads its owner (no budget left to open it)
    pids: list[int] = field(default_factory=list)  # every process seen inside
    stable_name: str | None = None  # "pid:N" kept while the namespace lives (enrich.host)

    @property
    def name(self) -> str:
        if self.bind_name is not None:
            return self.bind_name
        if self.stable_name is not None:
            return self.stable_name
        return f"pid:{self.pid}" if self.pid else f"inode:{self.key[1]}"


class Opened(NamedTuple):
    """What the opener thread did with one candidate: opened it (fd >= 0), read its owner only,
    or failed (error); ``attempted`` False when fd exhaustion stopped the batch before it."""

    cand: Candidate
    fd: int = -1
    cookie: int = 0
    owner: int = 0
    error: OSError | None = None
    attempted: bool = True
    close_fd: int = -1  # its close-event socket, when asked for and opened


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
