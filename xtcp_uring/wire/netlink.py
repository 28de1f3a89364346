"""Netlink framing: the constants, the nlmsghdr and a bounds-checked walk over messages.

The one Python home of these numbers (include/uapi/linux/netlink.h, sock_diag.h); the C side
has its own in csrc/nl.h. Values are Linux wire values, not the build host's ``socket``
constants. Sans-I/O: bytes in, values out.
"""

from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

from ..errors import DecodeError

__all__ = [
    "NETLINK_SOCK_DIAG", "SOCK_DIAG_BY_FAMILY", "NLMSG_NOOP", "NLMSG_ERROR", "NLMSG_DONE",
    "NLM_F_REQUEST", "NLM_F_MULTI", "NLM_F_DUMP", "KERNEL_PORT_ID", "NLMSGHDR", "NLMSGHDR_LEN",
    "NlMsgHdr", "header", "walk", "message_seq", "set_seq",
]

NETLINK_SOCK_DIAG = 4  # the netlink family (protocol) of inet_diag
SOCK_DIAG_BY_FAMILY = 20  # nlmsg_type of a dump request and of every socket in its reply

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

KERNEL_PORT_ID = 0  # nl_pid of every message the kernel sends

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host order)
NLMSGHDR_LEN = NLMSGHDR.size  # 16
_SEQ = struct.Struct("=I")  # nlmsg_seq, at offset 8
_SEQ_OFFSET = 8
_ALIGN = 4  # NLMSG_ALIGNTO


class NlMsgHdr(NamedTuple):
    len: int
    type: int
    flags: int
    seq: int
    pid: int


def header(buf, offset: int = 0, byteorder: str = "=") -> NlMsgHdr | None:
    """The nlmsghdr at ``offset``, or None if fewer than 16 bytes are left.

    ``byteorder`` is a struct prefix: ``"="`` for this host, ``"<"``/``">"`` for a capture
    taken on another."""
    if len(buf) - offset < NLMSGHDR_LEN:
        return None
    fmt = NLMSGHDR if byteorder == "=" else struct.Struct(byteorder + "IHHII")
    return NlMsgHdr(*fmt.unpack_from(buf, offset))


def walk(buf) -> Iterator[tuple[int, NlMsgHdr]]:
    """Yield (offset, header) for each message of ``buf``, checking every length first.

    Raises:
        DecodeError: an nlmsg_len below the header or past the end of ``buf`` (``offset``
            says where the walk stopped).
    """
    offset, end = 0, len(buf)
    while end - offset >= NLMSGHDR_LEN:
        hdr = header(buf, offset)
        if hdr.len < NLMSGHDR_LEN or hdr.len > end - offset:
            raise DecodeError(f"malformed netlink message: nlmsg_len {hdr.len} out of bounds", offset=offset)
        yield offset, hdr
        offset += (hdr.len + _ALIGN - 1) & ~(_ALIGN - 1)


def message_seq(buf) -> int:
    """The nlmsg_seq of the message at the start of ``buf`` (a request we built)."""
    return _SEQ.unpack_from(buf, _SEQ_OFFSET)[0]


def set_seq(buf: bytes, seq: int) -> bytes:
    """``buf`` with the first message's nlmsg_seq replaced by ``seq`` (a u32)."""
    return buf[:_SEQ_OFFSET] + _SEQ.pack(seq) + buf[_SEQ_OFFSET + _SEQ.size:]
