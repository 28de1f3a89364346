"""Namespaces, seen from C: a SOCK_DIAG socket opened inside one (a dump socket, or a
close-event subscription), and its cookie.

Entering a namespace (setns there and back) is C's job (csrc/netns.c), so the Python thread
that asks never runs inside a foreign namespace.
"""

from __future__ import annotations

from .. import native  # calls go through native.lib: the one seam where a test injects a
#                         fault C cannot produce on demand (setns back failing)
from . import errno_error, ffi


def open_diag_socket(nsfd: int = -1) -> tuple[int, int]:
    """A non-blocking SOCK_DIAG socket connected to the kernel (csrc/nl.h: only the kernel may
    feed it), in the namespace of ``nsfd`` (-1: the calling thread's own).

    Returns:
        (fd, drained): the socket, and how many datagrams someone slipped in before it was
        connected (discarded; count them as rejected senders).
    Raises:
        OSError: socket, setns or connect failed (ENOTRECOVERABLE: this thread could not go
        back to its namespace and must be retired).
    """
    drained = ffi.new("uint32_t *")
    fd = native.lib.xtcp_open_diag_socket_in(nsfd, drained)
    if fd < 0:
        raise errno_error(fd)
    return fd, drained[0]


def open_close_socket(nsfd: int, rcvbuf: int) -> tuple[int, int]:
    """A non-blocking SOCK_DIAG socket subscribed to the TCP destroy groups (close events) in
    the namespace of ``nsfd`` (-1: the calling thread's own), connected to the kernel before
    it joins (only the kernel may feed it), with a receive buffer of ``rcvbuf`` bytes
    (SO_RCVBUFFORCE when privileged, else capped by net.core.rmem_max).

    Returns:
        (fd, drained), as ``open_diag_socket``.
    Raises:
        OSError: as ``open_diag_socket`` (ENOTRECOVERABLE: retire this thread).
    """
    drained = ffi.new("uint32_t *")
    fd = native.lib.xtcp_open_close_socket_in(nsfd, int(rcvbuf), drained)
    if fd < 0:
        raise errno_error(fd)
    return fd, drained[0]


def netns_cookie(fd: int) -> int:
    """SO_NETNS_COOKIE of the namespace of socket ``fd`` (unique per boot); 0 where the kernel
    has none (before Linux 5.14) or the call fails."""
    out = ffi.new("uint64_t *")
    return out[0] if native.lib.xtcp_netns_cookie(fd, out) == 0 else 0
