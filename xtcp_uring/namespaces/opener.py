"""Step 3 of a reconcile: what the opener thread does, never on the event loop.

For each namespace chosen: open its file, check it is still the scanned inode, read its owning
user namespace, ``setns`` in, open the socket, ``setns`` back (``native.netns``; C does the
entering, so a Python thread never runs inside a foreign namespace), read ``SO_NETNS_COOKIE``.
Only fds cross back to the loop, through ``inflight`` under ``lock``: whatever the loop has not
adopted when the manager closes is closed here, never leaked.

With ``close_events_rcvbuf`` set, the same visit opens a second socket: the namespace's
close-event subscription (``native.netns.open_close_socket``, read by ``closes``). A namespace
whose subscription cannot be opened is still polled; it is counted in
``close_events_unavailable``.
"""

from __future__ import annotations

import errno
import os
import threading

from .admission import Admission, owning_userns
from .limits import FD_EXHAUSTED
from .model import Candidate, Key, NamespaceStats, Opened, close_quietly

__all__ = ["Opener"]


class Opener:
    """The opener thread's work, and the fds it hands over (``inflight``) until adopted."""

    def __init__(self, admission: Admission, stats: NamespaceStats, close_events_rcvbuf: int | None = None):
        self._admission = admission
        self._stats = stats
        self._close_rcvbuf = close_events_rcvbuf  # None: no close-event sockets
        self.lock = threading.Lock()  # guards inflight and closed against the opener thread
        self.inflight: set[int] = set()  # fds opened by the thread, not yet adopted by the loop
        self.closed = False

    def open_batch(self, todo: list[Candidate]) -> tuple[list[Opened], bool]:
        """Runs in the opener thread: each candidate opened, its owner read, or its error.
        Returns (results, poisoned): poisoned when this thread could not leave a namespace."""
        from ..native import netns  # kept out of module import so tests can scan without the extension

        def _open_diag(nsfd: int) -> tuple[int, int]:
            try:
                return netns.open_diag_socket(nsfd)
            except OSError as exc:
                return -exc.errno, 0

        def _open_close(nsfd: int, diag_fd: int) -> int:
            """The close-event socket beside a dump socket, -1 (counted), or -ENOTRECOVERABLE."""
            if diag_fd < 0 or self._close_rcvbuf is None:
                return -1
            try:
                fd, drained = netns.open_close_socket(nsfd, self._close_rcvbuf)
            except OSError as exc:
                if exc.errno == errno.ENOTRECOVERABLE:
                    return -errno.ENOTRECOVERABLE
                with self.lock:
                    self._stats.close_events_unavailable += 1
                return -1
            with self.lock:
                self._stats.netlink_drained += drained
            return fd
        here = _thread_ns_key()
        results: list[Opened] = []
        for i, cand in enumerate(todo):
            if self.closed:
                break
            if cand.key == here:
                owner = self._admission.own_userns
                if cand.lookup_only:
                    results.append(Opened(cand, owner=owner))
                    continue
                fd, drained = _open_diag(-1)  # this thread's own namespace: no setns
                close_fd = _open_close(-1, fd)
            else:
                try:
                    nsfd = os.open(cand.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    results.append(Opened(cand, error=exc))
                    if exc.errno in FD_EXHAUSTED:
                        results += [Opened(c, attempted=False) for c in todo[i + 1:]]
                        break
                    continue
                try:
                    st = os.fstat(nsfd)
                    if (st.st_dev, st.st_ino) != cand.key:
                        # The pid died and was reused (or the mount changed) since the scan.
                        results.append(Opened(cand, error=FileNotFoundError(
                            errno.ENOENT, "namespace changed since the scan", cand.path)))
                        continue
                    owner = owning_userns(nsfd)
                    if cand.lookup_only or self._admission.leaves_out(owner):
                        results.append(Opened(cand, owner=owner))
                        continue
                    fd, drained = _open_diag(nsfd)
                    close_fd = _open_close(nsfd, fd)
                finally:
                    os.close(nsfd)
            if fd == -errno.ENOTRECOVERABLE:
                return results, True  # this thread is stuck in a foreign namespace: retire it
            if close_fd == -errno.ENOTRECOVERABLE:  # the same, after the close-event socket
                os.close(fd)
                return results, True
            if fd < 0:
                results.append(Opened(cand, owner=owner, error=OSError(-fd, os.strerror(-fd), cand.path)))
                if -fd in FD_EXHAUSTED:
                    results += [Opened(c, attempted=False) for c in todo[i + 1:]]
                    break
                continue
            cookie = netns.netns_cookie(fd)
            with self.lock:
                self._stats.netlink_drained += drained
                if self.closed:
                    os.close(fd)
                    if close_fd >= 0:
                        os.close(close_fd)
                    break
                self.inflight.add(fd)
                if close_fd >= 0:
                    self.inflight.add(close_fd)
            results.append(Opened(cand, fd, cookie, owner, close_fd=close_fd))
        return results, False

    def discard(self, fut) -> None:
        """A reconcile was cancelled while the thread opened: close what it opened."""
        if fut.cancelled() or fut.exception() is not None:
            return
        results, _ = fut.result()
        with self.lock:
            for r in results:
                for fd in (r.fd, r.close_fd):
                    if fd >= 0 and fd in self.inflight:
                        self.inflight.discard(fd)
                        close_quietly(fd)

    def adopt(self, fd: int, close_fd: int = -1) -> bool:
        """The loop takes ``fd`` (and its close-event socket) over; False if they were closed
        meanwhile (close, discard)."""
        with self.lock:
            if fd not in self.inflight:
                return False
            self.inflight.discard(fd)
            self.inflight.discard(close_fd)
            return True

    def close(self) -> set[int]:
        """Stop opening (the thread checks between namespaces); returns the fds not adopted."""
        with self.lock:
            self.closed = True
            inflight, self.inflight = self.inflight, set()
        return inflight


def _thread_ns_key() -> Key | None:
    try:
        st = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
