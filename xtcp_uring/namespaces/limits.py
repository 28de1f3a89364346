"""The open-file budget: raise the soft RLIMIT_NOFILE to the hard one, size --max-namespaces.

The poller holds one netlink socket per namespace, and any local user can create namespaces
(``unshare -Urn``), so the namespace count is not ours to choose: without a cap it would take
every fd and starve chDB, the sinks and the metrics listener. The cap leaves a reserve of a
quarter of the limit, at least 256 and at most 4,096 fds: chDB writes a part of the 178-column
table as two files per column (~360 fds per insert) and merges read several parts at once;
the ring, the sinks, the metrics and query listeners need a few dozen more. With the hard
limit of 20,000 that leaves 15,904 namespaces.
"""

from __future__ import annotations

import errno
import resource
from dataclasses import dataclass

__all__ = ["FD_EXHAUSTED", "OpenFileLimit", "default_max_namespaces", "raise_open_file_limit", "reserve_fds"]

# "Too many open files" for this process (EMFILE) or for the whole system (ENFILE).
FD_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE})

_RESERVE_MIN, _RESERVE_MAX = 256, 4096


@dataclass(frozen=True)
class OpenFileLimit:
    before: int  # soft limit at start
    soft: int  # soft limit now
    hard: int

    def describe(self) -> str:
        if self.soft > self.before:
            return f"open-file limit raised from {self.before} to {self.soft} (the hard limit)"
        if self.soft < self.hard:
            return f"open-file limit {self.soft}; raising it to the hard limit {self.hard} failed"
        return f"open-file limit {self.soft} (the hard limit)"


def raise_open_file_limit() -> OpenFileLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (needs no privilege) and say what it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    if hard == resource.RLIM_INFINITY:
        hard = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return OpenFileLimit(before, soft, hard)


def reserve_fds(soft: int) -> int:
    """Fds kept for everything but namespace sockets (see the module docstring)."""
    return min(max(soft // 4, _RESERVE_MIN), _RESERVE_MAX)


def default_max_namespaces(soft: int | None = None, fds_per_namespace: int = 1) -> int:
    """Namespaces that fit the soft open-file limit with the reserve left over (at least 1);
    each holds ``fds_per_namespace`` sockets (2 with close events: dump and subscription)."""
    if soft is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        soft = _nr_open()
    return max(1, (soft - reserve_fds(soft)) // max(1, fds_per_namespace))


def _nr_open() -> int:
    """The kernel's per-process ceiling (fs.nr_open), what an unlimited RLIMIT_NOFILE means."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20
