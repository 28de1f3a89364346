"""xtcp_uring: TCP socket telemetry (netlink inet_diag) for every network namespace of a host.

The hot path is C (decode, encode) under asyncio (io_uring completions); Python sees
namespaces and batches, never single sockets. Public API:

    async with xtcp_uring.Poller(interval=10.0, namespaces="all") as poller:
        async for batch in poller:
            rtt_us = batch.column("tcp_info_rtt")      # numpy, one value per socket
            payload = batch.envelope()                  # one protobuf Envelope of every record

    batch = await xtcp_uring.poll_once(namespaces="host")

``wire`` (request bytes, filters, pcap) and ``records.decode_buffers`` (netlink bytes to
records) do no I/O, so they work on captures without privilege. ``docs/architecture.md`` maps
the rooms of the package.
"""

__version__ = "0.1.0"

# Lazy, so that importing a sans-I/O room (``xtcp_uring.wire.request``) loads no C extension:
# each public name is imported from its module on first use.
_PUBLIC = {
    "Batch": "records", "Dump": "records", "decode_buffers": "records",
    "Poller": "poller", "poll_once": "poller",
    "ConfigError": "errors", "DecodeError": "errors", "InternalError": "errors", "InputError": "errors",
    "NetlinkError": "errors", "PrivilegeError": "errors", "RingUnavailableError": "errors",
    "SinkError": "errors", "UserError": "errors", "XtcpError": "errors",
}


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'xtcp_uring' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Batch",
    "ConfigError",
    "DecodeError",
    "Dump",
    "InputError",
    "InternalError",
    "NetlinkError",
    "Poller",
    "PrivilegeError",
    "RingUnavailableError",
    "SinkError",
    "UserError",
    "XtcpError",
    "decode_buffers",
    "poll_once",
]
