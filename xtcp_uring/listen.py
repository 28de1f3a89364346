"""Bind the TCP listeners we serve (``/metrics``, the dashboard) with one-line errors.

A busy port, an address not on this host or a privileged port is the operator's to fix: each
becomes a ``ConfigError`` naming the flag and the address, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from .errors import ConfigError

__all__ = ["start_listener"]


async def start_listener(handle, host: str, port: int, *, flag: str, limit: int,
                         in_use: str = "the port is in use; choose another") -> asyncio.Server:
    """``asyncio.start_server`` for ``flag HOST:PORT``; ``in_use`` says what to do about EADDRINUSE.

    Raises:
        ConfigError: the address cannot be bound (in use, not on this host, not resolvable).
    """
    where = f"{flag} {host}:{port}"
    try:
        return await asyncio.start_server(handle, host, port, limit=limit)
    except socket.gaierror as exc:
        raise ConfigError(f"{where}: cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        why = {errno.EADDRINUSE: in_use,
               errno.EADDRNOTAVAIL: "no such address on this host",
               errno.EACCES: "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)"}
        raise ConfigError(f"{where}: {why.get(exc.errno, exc.strerror or str(exc))}") from None
