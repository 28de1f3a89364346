"""xtcp_uring: TCP socket telemetry (netlink inet_diag) for every network namespace of a host.

The hot path is C (decode, encode) under asyncio (io_uring completions); Python sees
namespaces and batches, never single sockets. Public API:

    async with xtcp_uring.Poller(interval=10.0, namespaces="all") as poller:
        async for batch in poller:
            rtt_us = batch.column("tcp_info_rtt")      # numpy, one value per socket
            payload = batch.envelope()                  # one protobuf Envelope of every record

    batch = await xtcp_uring.poll_once(namespaces="host")

``request`` (request bytes and filters) and ``records.decode_buffers`` (netlink bytes to
records) do no I/O, so they work on captures without privilege.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ConfigError,
    DecodeError,
    NetlinkError,
    PrivilegeError,
    RingUnavailableError,
    SinkError,
    XtcpError,
)
from .records import Batch, Dump, decode_buffers  # noqa: E402


def __getattr__(name):
    # The poller pulls in asyncio machinery and the namespace manager: import it on first use.
    if name in ("Poller", "poll_once"):
        from . import poller

        return getattr(poller, name)
    raise AttributeError(name)


__all__ = [
    "Batch",
    "ConfigError",
    "DecodeError",
    "Dump",
    "NetlinkError",
    "Poller",
    "PrivilegeError",
    "RingUnavailableError",
    "SinkError",
    "XtcpError",
    "decode_buffers",
    "poll_once",
]
