"""The only door to the cffi extension (``_native``): cdata in, Python values out.

``native`` loads the extension, checks that it is the build this package expects (ABI) and
turns C return conventions into Python: counts and bytes, ``DecodeStats``, and one place
(``errno_error``) where a C ``-errno`` becomes the matching ``OSError`` subclass; a failure
that only a bug can cause raises ``InternalError``. Its rooms:

    codec   decode netlink bytes into record arrays, encode records, split frames
    ring    class Ring: the io_uring driver of csrc/ring.c (dumps, and the close-event
            subscriptions of csrc/close_events.c), one method per C call
    netns   open a SOCK_DIAG socket inside a namespace (dump or close events), its cookie
    closes  what a close subscription hands over; the plain reader's decode of destroy
            datagrams

``ffi``/``lib`` stay importable for the tests of the C API; library code outside this package
never uses them (tests/test_layering.py).
"""

from __future__ import annotations

import os

try:
    from .. import _native
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "xtcp_uring._native is not built: run `make install` (or `pip install -e .`) in the checkout"
    ) from exc

ffi = _native.ffi
lib = _native.lib

EXPECTED_ABI = 7
if lib.xtcp_native_abi() != EXPECTED_ABI:  # pragma: no cover - a stale in-place build
    raise ImportError(
        f"xtcp_uring._native ABI {lib.xtcp_native_abi()} != {EXPECTED_ABI}: rebuild with `make install`"
    )

RECORD_SIZE = lib.xtcp_record_size()
RECORD_MAX_ENCODED = lib.xtcp_record_max_encoded()
FRAME_SINGLE = lib.XTCP_FRAME_SINGLE
FRAME_DELIMITED = lib.XTCP_FRAME_DELIMITED
FRAME_ENVELOPE_ROWS = lib.XTCP_FRAME_ENVELOPE_ROWS
TCP_INFO_LAYOUT_6_18 = lib.XTCP_TCP_INFO_LAYOUT_6_18
TCP_INFO_LAYOUT_7_0 = lib.XTCP_TCP_INFO_LAYOUT_7_0
SCAN_MORE = lib.XTCP_NL_SCAN_MORE  # what one received datagram means for its dump (scan_chunk)
SCAN_DONE = lib.XTCP_NL_SCAN_DONE
SCAN_REFUSED = lib.XTCP_NL_SCAN_REFUSED
SCAN_MALFORMED = lib.XTCP_NL_SCAN_MALFORMED


def errno_error(code: int, what: str = "") -> OSError:
    """The ``OSError`` subclass for a C ``-errno`` (or a positive errno): ``OSError(e, ...)``
    picks it (TimeoutError, FileNotFoundError, PermissionError…)."""
    code = abs(code)
    return OSError(code, f"{what}: {os.strerror(code)}" if what else os.strerror(code))


from .codec import (  # noqa: E402 - the submodules use the names above
    HOST_TCP_INFO_LAYOUT,
    DecodeStats,
    Decoder,
    count_socket_messages,
    encode,
    encode_parts,
    frames_prefix,
    new_records,
    owned_view,
    pool_stats,
    record_fields,
    records_buffer,
    scan_chunk,
    tcp_info_layout,
)
from .netns import netns_cookie, open_close_socket, open_diag_socket  # noqa: E402

__all__ = [
    "RECORD_SIZE", "RECORD_MAX_ENCODED", "FRAME_SINGLE", "FRAME_DELIMITED", "FRAME_ENVELOPE_ROWS",
    "TCP_INFO_LAYOUT_6_18", "TCP_INFO_LAYOUT_7_0", "HOST_TCP_INFO_LAYOUT",
    "SCAN_MORE", "SCAN_DONE", "SCAN_REFUSED", "SCAN_MALFORMED",
    "errno_error", "DecodeStats", "Decoder", "count_socket_messages", "encode", "encode_parts",
    "frames_prefix", "new_records", "owned_view", "pool_stats", "record_fields", "records_buffer",
    "scan_chunk", "tcp_info_layout", "netns_cookie", "open_close_socket", "open_diag_socket",
]
