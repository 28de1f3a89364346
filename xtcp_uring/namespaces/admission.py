"""Which namespaces get one of the ``max_namespaces`` sockets: the namespace manager's policy.

Any local user can create network namespaces (``unshare -Urn``), so the manager holds at most
``max_namespaces`` sockets (default: what the open-file limit leaves after a reserve, see
``limits``). When more are found, they are ranked: the host first, then namespaces owned by our
own user namespace, then those whose owner is not known yet, then those of other user
namespaces; bind-mounted (made by root) before pid-only; then by name, so the choice is
stable. The owner is read once per namespace with ``NS_GET_USERNS`` on its fd, in the opener
thread (``owning_userns``).

The ones left out are *skipped*: counted (``NamespaceStats.skipped``, ``skipped_total`` once
per namespace and episode), named once per episode in a warning, ranked again at every
reconcile. A namespace of another user namespace that holds a slot one of ours is waiting for
is closed (*evicted*), so ours gets it at the next reconcile and a flood of rootless
namespaces cannot push real containers out. ``skip_user_namespaces`` leaves namespaces of
other user namespaces out entirely (skipped, why ``SKIP_USERNS``).
"""

from __future__ import annotations

import fcntl
import logging
import os

from .limits import default_max_namespaces

__all__ = ["NS_GET_USERNS", "SKIP_LIMIT", "SKIP_USERNS", "Admission", "owning_userns"]

log = logging.getLogger("xtcp_uring.namespaces")

NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1), linux/nsfs.h: an fd of the namespace's owning user namespace
SKIP_LIMIT = "max_namespaces"
SKIP_USERNS = "user_namespace"
_SHOW_NAMES = 8  # names listed in one warning


def owning_userns(nsfd: int) -> int:
    """Inode of the user namespace owning a namespace (NS_GET_USERNS, Linux >= 4.9); 0 if unknown."""
    try:
        userns_fd = fcntl.ioctl(nsfd, NS_GET_USERNS)
    except OSError:
        return 0  # an old kernel, or an owner outside our own user namespace
    try:
        return os.fstat(userns_fd).st_ino
    finally:
        os.close(userns_fd)


class Admission:
    """The cap, the owners learned, and who is skipped now (and was at the last reconcile).

    Keys are the manager's ``(st_dev, st_ino)``; candidates have ``key``, ``name`` and
    ``bind_name``; open namespaces ``key``, ``name``, ``net_id``, ``is_host`` and ``userns``.
    """

    def __init__(self, max_namespaces: int | None, skip_user_namespaces: bool, stats):
        self.max_namespaces = max_namespaces
        self.skip_user_namespaces = skip_user_namespaces
        self.stats = stats
        self.own_userns = 0
        self.owners: dict = {}  # key -> owning user namespace inode (0: unknown), once looked at
        self.skipped: dict = {}  # key -> (name, why), this reconcile
        self.previously_skipped: dict = {}  # the same, the reconcile before

    def start(self) -> None:
        try:  # the real one, whatever proc_root the manager reads: owners are compared with it
            self.own_userns = os.stat("/proc/self/ns/user").st_ino
        except OSError:
            self.own_userns = 0  # cannot tell: every namespace counts as ours
        if self.max_namespaces is None:
            self.max_namespaces = default_max_namespaces()
        self.stats.max_namespaces = self.max_namespaces

    def is_ours(self, owner: int) -> bool:
        return not self.own_userns or not owner or owner == self.own_userns

    def leaves_out(self, owner: int) -> bool:
        """Is a namespace with this owner left out whatever the room (skip_user_namespaces)?"""
        return self.skip_user_namespaces and not self.is_ours(owner)

    def learn(self, key, owner: int) -> None:
        self.owners[key] = owner

    def begin(self, found: dict, complete: bool) -> None:
        """A new reconcile: forget what a complete scan no longer found, start a new skip list."""
        if complete:
            for key in [k for k in self.owners if k not in found]:
                del self.owners[key]
        self.previously_skipped = self.skipped
        self.skipped = {} if complete else {k: v for k, v in self.skipped.items() if k not in found}

    def _rank(self, cand, host_key) -> tuple:
        if cand.key == host_key:
            return (0,)
        owner = self.owners.get(cand.key)
        ours = 1 if owner is None else 0 if self.is_ours(owner) else 2
        return (1, ours, cand.bind_name is None, cand.name)

    def choose(self, todo: list, open_now: int, host_key) -> list:
        """Rank the new candidates and mark which the opener opens (within the cap) and which it
        only looks at (``lookup_only``: past the cap, owner unknown); skip the rest."""
        budget = self.max_namespaces - open_now
        todo.sort(key=lambda c: self._rank(c, host_key))  # also decides who is left out when fds run out
        chosen = []
        for cand in todo:
            owner = self.owners.get(cand.key)
            if owner is not None and self.leaves_out(owner):
                self.skip(cand.key, cand.name, SKIP_USERNS)
                continue
            cand.lookup_only = budget <= 0
            if not cand.lookup_only:
                budget -= 1
            elif owner is not None:
                self.skip(cand.key, cand.name, SKIP_LIMIT)
                continue
            chosen.append(cand)
        return chosen

    def skip(self, key, name: str, why: str) -> None:
        self.skipped[key] = (name, why)
        if key not in self.previously_skipped:
            self.stats.skipped_total += 1

    @property
    def was_limited(self) -> bool:
        """Were namespaces skipped for room at the reconcile before (the episode goes on)?"""
        return any(why == SKIP_LIMIT for _, why in self.previously_skipped.values())

    def to_evict(self, open_namespaces) -> list:
        """Open namespaces of other user namespaces to close so ours waiting for room get it at
        the next reconcile (marked skipped here)."""
        waiting = sum(1 for key, (_, why) in self.skipped.items()
                      if why == SKIP_LIMIT and key in self.owners and self.is_ours(self.owners[key]))
        if not waiting:
            return []
        theirs = sorted((ns for ns in open_namespaces if not ns.is_host and not self.is_ours(ns.userns)),
                        key=lambda ns: ns.net_id, reverse=True)[:waiting]
        for ns in theirs:
            self.skip(ns.key, ns.name, SKIP_LIMIT)
            self.stats.evicted += 1
        if theirs:
            log.info("closed %d network namespaces of other user namespaces to poll %d of ours instead",
                     len(theirs), waiting)
        return theirs

    def report(self, open_now: int) -> None:
        """Update the skip gauges; say once per episode that namespaces are left out, and when
        they no longer are."""
        was = {why for _, why in self.previously_skipped.values()}
        now: dict[str, int] = {}
        for _, why in self.skipped.values():
            now[why] = now.get(why, 0) + 1
        self.stats.skipped = len(self.skipped)
        self.stats.skipped_userns = now.get(SKIP_USERNS, 0)
        if SKIP_LIMIT in now and SKIP_LIMIT not in was:
            names = [n for n, why in self.skipped.values() if why == SKIP_LIMIT]
            log.warning("%d network namespaces are not polled (%s%s): %d are open, --max-namespaces is %d; "
                        "counted in xtcp_namespaces{state=\"skipped\"}", len(names), ", ".join(names[:_SHOW_NAMES]),
                        " ..." if len(names) > _SHOW_NAMES else "", open_now, self.max_namespaces)
        elif SKIP_LIMIT in was and SKIP_LIMIT not in now:
            log.info("every selected network namespace is polled again (%d open)", open_now)
        if SKIP_USERNS in now and SKIP_USERNS not in was:
            log.info("leaving out %d network namespaces owned by other user namespaces (--skip-user-namespaces)",
                     now[SKIP_USERNS])

    def clear(self) -> None:
        self.skipped.clear()
        self.stats.skipped = self.stats.skipped_userns = 0
