"""SOCK_DIAG dump requests, built as bytes (sans-I/O): inet_diag_req_v2, ext groups, TCP states.

Nothing here opens a file descriptor: ``build_request()`` returns the bytes one send puts on a
``NETLINK_SOCK_DIAG`` socket, so the same code runs in the poller, in tests and on captures
without privilege. Names and numbers come from include/uapi/linux/{netlink,sock_diag,
inet_diag}.h; values are Linux wire values, not the host's ``socket`` constants.

A request may carry a socket filter (``wire.filter.Filter``, compiled per family) as its
``INET_DIAG_REQ_BYTECODE`` attribute.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Union

from ..errors import InputError
from .netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSGHDR, NLMSGHDR_LEN, SOCK_DIAG_BY_FAMILY, set_seq

if TYPE_CHECKING:
    from .filter import Filter

__all__ = [
    "AF_UNSPEC", "AF_INET", "AF_INET6", "IPPROTO_TCP",
    "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT", "TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN",
    "TCP_CLOSING", "TCP_NEW_SYN_RECV", "TCP_BOUND_INACTIVE", "TCP_STATES", "DEFAULT_STATES",
    "INET_DIAG_NOCOOKIE", "INET_DIAG_REQ_BYTECODE",
    "EXT_GROUPS", "ALL_GROUPS", "DEFAULT_GROUPS", "DEFAULT_EXT", "ext_for",
    "INET_DIAG_REQ_V2_LEN", "REQUEST_LEN", "build_request", "random_seqs", "with_seq",
    "RequestError", "FilterError",
]

# Linux values, fixed here so the bytes do not depend on the build host's socket module.
AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6

# --- TCP states (include/net/tcp_states.h); idiag_states is a mask of 1 << state -------------

TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
TCP_NEW_SYN_RECV = 12  # the kernel adds it by itself whenever SYN_RECV is asked for
TCP_BOUND_INACTIVE = 13  # 6.5+: bound-only sockets, dumped only if this bit is set

TCP_STATES: Mapping[str, int] = MappingProxyType({
    "established": TCP_ESTABLISHED, "syn_sent": TCP_SYN_SENT, "syn_recv": TCP_SYN_RECV,
    "fin_wait1": TCP_FIN_WAIT1, "fin_wait2": TCP_FIN_WAIT2, "time_wait": TCP_TIME_WAIT,
    "close": TCP_CLOSE, "close_wait": TCP_CLOSE_WAIT, "last_ack": TCP_LAST_ACK,
    "listen": TCP_LISTEN, "closing": TCP_CLOSING, "new_syn_recv": TCP_NEW_SYN_RECV,
    "bound_inactive": TCP_BOUND_INACTIVE,
})

# Bits 1-12. Never bit 13: BOUND_INACTIVE walks the global bind hash, 18-26 ms per dump even
# in a near-empty namespace (docs/kernel.md). Callers who want it must set it themselves.
DEFAULT_STATES = 0x1FFE

# --- inet_diag_req_v2 -----------------------------------------------------------------------

INET_DIAG_NOCOOKIE = 0xFFFFFFFF  # ~0U; dumps ignore the cookie, exact lookups check it
INET_DIAG_REQ_BYTECODE = 1

_REQ_V2_HEAD = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
_SOCKID = struct.Struct("=2s2s16s16sI8s")  # ports and addresses are big-endian on the wire
_RTATTR = struct.Struct("=HH")  # rta_len, rta_type

INET_DIAG_REQ_V2_LEN = _REQ_V2_HEAD.size + _SOCKID.size  # 56
REQUEST_LEN = NLMSGHDR_LEN + INET_DIAG_REQ_V2_LEN  # 72, without a filter

# An empty sockid: no port/address pre-filter, no interface, no cookie.
_EMPTY_SOCKID = _SOCKID.pack(
    b"\0\0", b"\0\0", bytes(16), bytes(16), 0, struct.pack("=II", INET_DIAG_NOCOOKIE,
                                                           INET_DIAG_NOCOOKIE))

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF


class RequestError(InputError):
    """A request parameter the kernel would reject or misread; the message says what to change."""


class FilterError(RequestError):
    """A filter condition that cannot be expressed as inet_diag bytecode (``wire.filter``)."""


# --- idiag_ext: which attribute groups the kernel adds to each socket ------------------------

# group name -> INET_DIAG_* attribute type whose bit (type - 1) asks for it. idiag_ext is a u8,
# so only types 1-8 can be asked for; everything else is sent unconditionally or piggybacks.
EXT_GROUPS: Mapping[str, int] = MappingProxyType({
    "meminfo": 1,  # INET_DIAG_MEMINFO
    "info": 2,  # INET_DIAG_INFO: struct tcp_info
    # INET_DIAG_VEGASINFO's bit asks the socket's congestion control module for its own info:
    # VEGASINFO, DCTCPINFO or BBRINFO depending on the module (cubic sends none).
    "cc_info": 3,
    "cong": 4,  # INET_DIAG_CONG: the congestion control name
    "tos": 5,  # INET_DIAG_TOS
    "tclass": 6,  # INET_DIAG_TCLASS (v6 sockets); also gates INET_DIAG_CLASS_ID (type 17)
    "skmeminfo": 7,  # INET_DIAG_SKMEMINFO
    # INET_DIAG_SHUTDOWN (8) is sent whatever bit 7 says, so it needs no group.
})
_GROUP_ALIASES = MappingProxyType({"vegas": "cc_info"})  # the kernel's name for the bit

ALL_GROUPS: tuple[str, ...] = tuple(EXT_GROUPS)
# Everything but meminfo: its rmem/wmem/fmem/tmem are SKMEMINFO's RMEM_ALLOC, WMEM_QUEUED,
# FWD_ALLOC and WMEM_ALLOC, so asking for both only costs 20 bytes per socket.
DEFAULT_GROUPS: tuple[str, ...] = tuple(g for g in ALL_GROUPS if g != "meminfo")


def ext_for(groups: Iterable[str]) -> int:
    """Turn attribute group names into an ``idiag_ext`` mask.

    Args:
        groups: names from ``ALL_GROUPS`` (``"vegas"`` is accepted for ``"cc_info"``).
    Returns:
        The u8 mask: bit ``type - 1`` for each group's INET_DIAG_* attribute type.
    Raises:
        RequestError: a name is not a known group (the message lists the valid ones).
        TypeError: ``groups`` is a single string instead of an iterable of names.
    """
    if isinstance(groups, str):
        raise TypeError(f"ext_for() takes an iterable of group names, not the string {groups!r}; "
                        f"write ext_for([{groups!r}])")
    ext = 0
    for name in groups:
        key = _GROUP_ALIASES.get(name, name)
        if key not in EXT_GROUPS:
            raise RequestError(f"unknown attribute group {name!r}; valid groups are: "
                               f"{', '.join(ALL_GROUPS)}")
        ext |= 1 << (EXT_GROUPS[key] - 1)
    return ext


DEFAULT_EXT = ext_for(DEFAULT_GROUPS)  # 0x7e


def build_request(
    family: int,
    *,
    protocol: int = IPPROTO_TCP,
    states: int = DEFAULT_STATES,
    ext: int = DEFAULT_EXT,
    filter: Union["Filter", bytes, None] = None,  # noqa: A002 - the kernel's word for it
    seq: int = 0,
    pid: int = 0,
) -> bytes:
    """Build one SOCK_DIAG_BY_FAMILY dump request: nlmsghdr + inet_diag_req_v2 [+ bytecode].

    Args:
        family: AF_INET or AF_INET6 (one request per family).
        protocol: IP protocol number, 0-255 (IPPROTO_TCP by default).
        states: mask of ``1 << TCP_*`` states; DEFAULT_STATES leaves out BOUND_INACTIVE.
        ext: ``idiag_ext`` mask, usually from ``ext_for()``.
        filter: a ``Filter`` (compiled for ``family``), raw bytecode, or None for every socket.
        seq: nlmsg_seq, echoed in every reply message.
        pid: nlmsg_pid; 0 lets the kernel address the reply to the sending socket.
    Returns:
        The request bytes, 72 long without a filter.
    Raises:
        RequestError: a parameter the kernel would reject or misread.
        FilterError: the filter does not fit in inet_diag bytecode.
        TypeError: ``filter`` is neither a Filter, bytes nor None (parse text with Filter.parse).
    """
    if family == AF_UNSPEC:
        raise RequestError("family AF_UNSPEC (0) is rejected by the kernel for "
                           "SOCK_DIAG_BY_FAMILY; send one request with AF_INET (2) and one "
                           "with AF_INET6 (10)")
    if family not in (AF_INET, AF_INET6):
        raise RequestError(f"family {family!r} is not AF_INET (2) or AF_INET6 (10)")
    if not 0 <= protocol <= 0xFF:
        raise RequestError(f"protocol {protocol!r} does not fit the u8 sdiag_protocol; "
                           "protocols above 255 need INET_DIAG_REQ_PROTOCOL, which this "
                           "builder does not send")
    if not 0 <= states <= _U32_MAX:
        raise RequestError(f"states {states:#x} does not fit the u32 idiag_states; "
                           "use a mask of 1 << TCP_* bits such as DEFAULT_STATES")
    if states == 0:
        raise RequestError("states is 0, so the kernel would dump no socket; use DEFAULT_STATES "
                           f"({DEFAULT_STATES:#x}) or a mask of 1 << TCP_* bits")
    if not 0 <= ext <= 0xFF:
        raise RequestError(f"ext {ext:#x} does not fit the u8 idiag_ext (attributes 1-8 only); "
                           "build it with ext_for()")
    for name, value in (("seq", seq), ("pid", pid)):
        if not 0 <= value <= _U32_MAX:
            raise RequestError(f"{name} {value!r} does not fit the u32 nlmsg_{name}")

    if filter is None:
        bytecode = b""
    elif isinstance(filter, (bytes, bytearray, memoryview)):
        bytecode = bytes(filter)
        if not bytecode or len(bytecode) % 4:
            raise FilterError(f"bytecode must be a non-empty multiple of 4 bytes (whole "
                              f"inet_diag_bc_op units), got {len(bytecode)} bytes")
    elif callable(getattr(filter, "bytecode", None)):  # a wire.filter.Filter
        bytecode = filter.bytecode(family)
    else:
        raise TypeError(f"filter must be a Filter, bytecode bytes or None, not "
                        f"{type(filter).__name__}")

    attr = b""
    if bytecode:
        rta_len = _RTATTR.size + len(bytecode)
        if rta_len > _U16_MAX:
            raise FilterError(f"bytecode of {len(bytecode)} bytes does not fit a u16 rta_len; "
                              "use a simpler filter")
        attr = _RTATTR.pack(rta_len, INET_DIAG_REQ_BYTECODE) + bytecode  # already 4-aligned

    body = _REQ_V2_HEAD.pack(family, protocol, ext, 0, states) + _EMPTY_SOCKID + attr
    header = NLMSGHDR.pack(NLMSGHDR_LEN + len(body), SOCK_DIAG_BY_FAMILY,
                            NLM_F_REQUEST | NLM_F_DUMP, seq, pid)
    return header + body


def random_seqs(n: int) -> list[int]:
    """``n`` nlmsg_seq values, one per dump: unpredictable (os.urandom) and never 0.

    The seq is what ties a reply to the dump in flight: a counter would let anyone who can
    reach the socket guess it, and a reply of another seq is dropped (csrc/nl.h)."""
    return [seq or 1 for seq in struct.unpack(f"={n}I", os.urandom(4 * n))]


def with_seq(request: bytes, seq: int) -> bytes:
    """``request`` (from ``build_request``) with nlmsg_seq ``seq``: build once, stamp per dump."""
    if not 0 <= seq <= _U32_MAX:
        raise RequestError(f"seq {seq!r} does not fit the u32 nlmsg_seq")
    return set_seq(request, seq)


