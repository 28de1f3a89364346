"""Which network namespace is ``host``, and names for namespaces without a bind mount that do
not change while the namespace lives.

The rule for ``host``
---------------------
``host`` is the host's initial network namespace, wherever the daemon itself runs: the one
``<proc>/1/ns/net`` points to (with ``hostPID`` in a pod, pid 1 is the host's init). Where pid
1's namespace cannot be read even by root (pid 1 belongs to a sandbox or an LSM denies it), the
namespace of the lowest pid whose ``ns/net`` can be read stands in: on Linux that is pid 2,
``kthreadd``, whose kernel threads always live in the initial namespace. That fallback needs
``CAP_SYS_PTRACE`` (reading other users' ``ns/net``): without it the readable pids are only our
own user's, which may sit in any namespace, so an unprivileged daemon takes its own namespace as
``host`` (it could not enter another one anyway: ``setns`` needs ``CAP_SYS_ADMIN``). Namespaces are
compared by the inode of their nsfs file (one superblock for all of them, and an inode is not
reused while the namespace lives). The daemon's own namespace, when it is another one (a pod
without ``hostNetwork``, ``ip netns exec``), is named like any other namespace. When nothing
under ``<proc>`` can be read, the daemon's own namespace is ``host`` (the behaviour before this
rule, and right for a daemon without ``hostPID``: the only namespace it can see for sure).

Names that stay
---------------
A namespace without a bind mount is named ``pid:N`` after the lowest pid inside it when it is
first seen, and keeps that name while it exists, even after pid N exits (the inode identifies
it, not the pid). A name is never given to two live namespaces at once: when pid N was reused
by a process of a new namespace while the old ``pid:N`` still lives, the new one takes its next
lowest pid, or ``inode:<inode>``. A bind mount's name always wins; when the mount goes, the
namespace gets its remembered (or a new) ``pid:N`` name back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping

from ..privileges import CAP_SYS_PTRACE, holds

__all__ = ["HostNamespace", "StableNames", "find_host_namespace"]


@dataclass(frozen=True)
class HostNamespace:
    key: tuple[int, int]  # (st_dev, st_ino) of the namespace file
    path: str  # a file to open it by
    pid: int  # the process it was found through (0: our own namespace)
    rule: str  # "init" (pid 1), "lowest-pid" (pid 1 unreadable) or "self" (nothing readable)

    @property
    def inode(self) -> int:
        return self.key[1]


def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def find_host_namespace(proc: str = "/proc", may_read_others: bool | None = None) -> HostNamespace:
    """The initial network namespace as seen under ``proc`` (the rule: module docstring).

    ``may_read_others``: whether other users' ``ns/net`` can be read (default: CAP_SYS_PTRACE);
    without, pid 1 or our own namespace."""
    proc = proc.rstrip("/") or "/"
    key = _stat_key(f"{proc}/1/ns/net")
    if key is not None:
        return HostNamespace(key, f"{proc}/1/ns/net", 1, "init")
    if may_read_others is None:
        may_read_others = holds(CAP_SYS_PTRACE)
    pids: list[int] = []
    if may_read_others:
        try:
            pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
        except OSError:
            pass
    for pid in pids:
        path = f"{proc}/{pid}/ns/net"
        key = _stat_key(path)
        if key is not None:
            return HostNamespace(key, path, pid, "lowest-pid")
    own = f"{proc}/self/ns/net"
    st = os.stat(own)  # our own namespace is always readable
    return HostNamespace((st.st_dev, st.st_ino), own, 0, "self")


class StableNames:
    """``pid:N`` names that outlive pid N (see the module docstring). One per namespace manager."""

    def __init__(self) -> None:
        self._names: dict[Hashable, str] = {}  # namespace key -> its pid/inode name
        self._owner: dict[str, Hashable] = {}  # name -> the namespace holding it

    def name(self, key: Hashable, inode: int, pids: Iterable[int]) -> str:
        """The name of the namespace ``key`` without a bind mount; ``pids`` are those inside."""
        name = self._names.get(key)
        if name is not None:
            return name
        for pid in sorted(pids):
            candidate = f"pid:{pid}"
            if candidate not in self._owner:
                name = candidate
                break
        else:
            name = f"inode:{inode}"
        self._names[key] = name
        self._owner[name] = key
        return name

    def prune(self, alive: Mapping[Hashable, object] | Iterable[Hashable]) -> None:
        """Forget the names of namespaces not in ``alive`` (call after a complete scan only)."""
        alive = alive if isinstance(alive, Mapping) else set(alive)
        for key in [k for k in self._names if k not in alive]:
            del self._owner[self._names.pop(key)]

    def __len__(self) -> int:
        return len(self._names)
