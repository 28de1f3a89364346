"""SOCK_DIAG dump requests and inet_diag socket filters, built as bytes (sans-I/O).

Nothing here opens a file descriptor: ``build_request()`` returns the bytes one send puts on a
``NETLINK_SOCK_DIAG`` socket, so the same code runs in the poller, in tests and on captures
without privilege. Names and numbers come from include/uapi/linux/{netlink,sock_diag,
inet_diag}.h; values are Linux wire values, not the host's ``socket`` constants.

A ``Filter`` compiles to ``INET_DIAG_REQ_BYTECODE``, the program the kernel runs per socket
(``inet_diag_bc_run``) after checking it once per dump (``inet_diag_bc_audit``); see
``_assemble()`` for the rules the layout must follow.
"""

from __future__ import annotations

import ipaddress
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NoReturn, Union

__all__ = [
    "NETLINK_SOCK_DIAG", "SOCK_DIAG_BY_FAMILY", "NLM_F_REQUEST", "NLM_F_DUMP",
    "AF_UNSPEC", "AF_INET", "AF_INET6", "IPPROTO_TCP",
    "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT", "TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN",
    "TCP_CLOSING", "TCP_NEW_SYN_RECV", "TCP_BOUND_INACTIVE", "TCP_STATES", "DEFAULT_STATES",
    "INET_DIAG_NOCOOKIE", "INET_DIAG_REQ_BYTECODE",
    "INET_DIAG_BC_NOP", "INET_DIAG_BC_JMP", "INET_DIAG_BC_S_GE", "INET_DIAG_BC_S_LE",
    "INET_DIAG_BC_D_GE", "INET_DIAG_BC_D_LE", "INET_DIAG_BC_AUTO", "INET_DIAG_BC_S_COND",
    "INET_DIAG_BC_D_COND", "INET_DIAG_BC_DEV_COND", "INET_DIAG_BC_MARK_COND",
    "INET_DIAG_BC_S_EQ", "INET_DIAG_BC_D_EQ", "INET_DIAG_BC_CGROUP_COND",
    "EXT_GROUPS", "ALL_GROUPS", "DEFAULT_GROUPS", "DEFAULT_EXT", "ext_for",
    "NLMSGHDR_LEN", "INET_DIAG_REQ_V2_LEN", "REQUEST_LEN", "build_request", "random_seqs", "with_seq",
    "Filter", "Condition", "PortCond", "HostCond", "CgroupCond",
    "RequestError", "FilterError", "FilterSyntaxError",
]

# --- netlink / sock_diag --------------------------------------------------------------------

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

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

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host order)
_SEQ = struct.Struct("=I")  # nlmsg_seq, at offset 8
_REQ_V2_HEAD = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
_SOCKID = struct.Struct("=2s2s16s16sI8s")  # ports and addresses are big-endian on the wire
_RTATTR = struct.Struct("=HH")  # rta_len, rta_type

NLMSGHDR_LEN = _NLMSGHDR.size  # 16
INET_DIAG_REQ_V2_LEN = _REQ_V2_HEAD.size + _SOCKID.size  # 56
REQUEST_LEN = NLMSGHDR_LEN + INET_DIAG_REQ_V2_LEN  # 72, without a filter

# An empty sockid: no port/address pre-filter, no interface, no cookie.
_EMPTY_SOCKID = _SOCKID.pack(
    b"\0\0", b"\0\0", bytes(16), bytes(16), 0, struct.pack("=II", INET_DIAG_NOCOOKIE,
                                                           INET_DIAG_NOCOOKIE))

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF


class RequestError(ValueError):
    """A request parameter the kernel would reject or misread; the message says what to change."""


class FilterError(RequestError):
    """A filter condition that cannot be expressed as inet_diag bytecode."""


class FilterSyntaxError(FilterError):
    """A filter expression string that does not parse."""


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

    if isinstance(filter, Filter):
        bytecode = filter.bytecode(family)
    elif filter is None:
        bytecode = b""
    elif isinstance(filter, (bytes, bytearray, memoryview)):
        bytecode = bytes(filter)
        if not bytecode or len(bytecode) % 4:
            raise FilterError(f"bytecode must be a non-empty multiple of 4 bytes (whole "
                              f"inet_diag_bc_op units), got {len(bytecode)} bytes")
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
    header = _NLMSGHDR.pack(NLMSGHDR_LEN + len(body), SOCK_DIAG_BY_FAMILY,
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
    return request[:8] + _SEQ.pack(seq) + request[12:]


# --- inet_diag bytecode ---------------------------------------------------------------------

INET_DIAG_BC_NOP = 0
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
INET_DIAG_BC_D_GE = 4
INET_DIAG_BC_D_LE = 5
INET_DIAG_BC_AUTO = 6
INET_DIAG_BC_S_COND = 7
INET_DIAG_BC_D_COND = 8
INET_DIAG_BC_DEV_COND = 9
INET_DIAG_BC_MARK_COND = 10  # needs CAP_NET_ADMIN (EPERM otherwise)
INET_DIAG_BC_S_EQ = 11
INET_DIAG_BC_D_EQ = 12
INET_DIAG_BC_CGROUP_COND = 13

_BC_OP = struct.Struct("=BBH")  # struct inet_diag_bc_op {u8 code; u8 yes; u16 no}
_HOSTCOND = struct.Struct("=BBxxi")  # inet_diag_hostcond {u8 family; u8 prefix_len; int port}
_CGROUP_ID = struct.Struct("=Q")
_ANY_PORT = -1

# One primitive op before layout: its code and the bytes that follow the 4-byte op header.
_Op = tuple[int, bytes]

_PORT_OPS = {  # field -> (EQ, GE, LE) codes
    "sport": (INET_DIAG_BC_S_EQ, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE),
    "dport": (INET_DIAG_BC_D_EQ, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE),
}
_HOST_OPS = {"src": INET_DIAG_BC_S_COND, "dst": INET_DIAG_BC_D_COND}


def _port_op(code: int, port: int) -> _Op:
    # The port rides in the `no` field of a second op that is jumped over, never run.
    return code, _BC_OP.pack(INET_DIAG_BC_NOP, 0, port)


@dataclass(frozen=True)
class PortCond:
    """``lo <= port <= hi`` on the local (``sport``) or remote (``dport``) port."""

    field: str
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.field not in _PORT_OPS:
            raise FilterError(f"port field {self.field!r} is not 'sport' or 'dport'")
        for port in (self.lo, self.hi):
            if not isinstance(port, int) or not 0 <= port <= _U16_MAX:
                raise FilterError(f"{self.field} port {port!r} is not an integer in 0-65535")
        if self.lo > self.hi:
            raise FilterError(f"{self.field} range {self.lo}-{self.hi} is empty; "
                              "write the lower port first")

    def ops(self) -> list[_Op]:
        eq, ge, le = _PORT_OPS[self.field]
        if self.lo == self.hi:
            return [_port_op(eq, self.lo)]
        ops = []
        if self.lo > 0:
            ops.append(_port_op(ge, self.lo))
        if self.hi < _U16_MAX:
            ops.append(_port_op(le, self.hi))
        return ops  # empty for 0-65535: always true

    def __str__(self) -> str:
        if self.lo == self.hi:
            return f"{self.field} == {self.lo}"
        if self.lo == 0:
            return f"{self.field} <= {self.hi}"
        if self.hi == _U16_MAX:
            return f"{self.field} >= {self.lo}"
        return f"{self.field} {self.lo}-{self.hi}"


@dataclass(frozen=True)
class HostCond:
    """Local (``src``) or remote (``dst``) address inside ``network``.

    Family rules, from ``inet_diag_bc_run``: a v4 prefix matches AF_INET sockets and, in an
    AF_INET6 dump, v4-mapped addresses (``::ffff:a.b.c.d``); a v6 prefix never matches an
    AF_INET socket. So a v4-mapped v6 prefix (``::ffff:10.0.0.0/104``) is stored as its v4
    equivalent, which matches the same sockets in both dumps, and ``Filter.bytecode(AF_INET)``
    drops AND-groups holding a v6 prefix instead of sending conditions that cannot match.
    """

    field: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def __post_init__(self) -> None:
        if self.field not in _HOST_OPS:
            raise FilterError(f"address field {self.field!r} is not 'src' or 'dst'")

    @classmethod
    def of(cls, field: str, prefix: object) -> HostCond:
        try:
            # strict=False: the kernel compares only the first prefix_len bits anyway.
            net = ipaddress.ip_network(prefix, strict=False)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise FilterError(f"{field} {prefix!r} is not an IPv4/IPv6 address or prefix such "
                              "as 10.0.0.0/8 or fd00::/8") from exc
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:
                net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
        return cls(field, net)

    def possible_in(self, family: int) -> bool:
        return not (family == AF_INET and self.network.version == 6)

    def ops(self) -> list[_Op]:
        fam = AF_INET if self.network.version == 4 else AF_INET6
        cond = _HOSTCOND.pack(fam, self.network.prefixlen, _ANY_PORT)
        return [(_HOST_OPS[self.field], cond + self.network.network_address.packed)]

    def __str__(self) -> str:
        return f"{self.field} {self.network}"


@dataclass(frozen=True)
class CgroupCond:
    """The socket's cgroup v2 id (the inode of its cgroup directory) equals ``cgroup_id``.

    The kernel reads the id only for full sockets; TIME_WAIT and NEW_SYN_RECV entries carry
    id 0, so they never match a real cgroup (and ``cgroup 0`` matches exactly them).
    """

    cgroup_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.cgroup_id, int) or not 0 <= self.cgroup_id < 1 << 64:
            raise FilterError(f"cgroup id {self.cgroup_id!r} is not a u64 (the inode number of "
                              "a directory under the cgroup2 mount)")

    def ops(self) -> list[_Op]:
        return [(INET_DIAG_BC_CGROUP_COND, _CGROUP_ID.pack(self.cgroup_id))]

    def __str__(self) -> str:
        return f"cgroup {self.cgroup_id}"


Condition = Union[PortCond, HostCond, CgroupCond]


@dataclass(frozen=True)
class Filter:
    """Which sockets a dump returns: an OR of AND-groups of conditions.

    Build with the class methods and combine with ``&`` and ``|``::

        Filter.sport(443) & Filter.dst("10.0.0.0/8") | Filter.dport_range(4000, 4999)

    or parse the same text with ``Filter.parse()``; ``str()`` gives text that parses back.
    ``groups`` is the normal form: ``()`` matches nothing, ``((),)`` matches everything.
    """

    groups: tuple[tuple[Condition, ...], ...]

    @classmethod
    def sport(cls, port: int) -> Filter:
        """Local port equals ``port``."""
        return cls._one(PortCond("sport", port, port))

    @classmethod
    def dport(cls, port: int) -> Filter:
        """Remote port equals ``port`` (0 for listeners)."""
        return cls._one(PortCond("dport", port, port))

    @classmethod
    def sport_range(cls, lo: int, hi: int) -> Filter:
        """Local port in ``lo..hi``, both ends included."""
        return cls._one(PortCond("sport", lo, hi))

    @classmethod
    def dport_range(cls, lo: int, hi: int) -> Filter:
        """Remote port in ``lo..hi``, both ends included."""
        return cls._one(PortCond("dport", lo, hi))

    @classmethod
    def src(cls, prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> Filter:
        """Local address in ``prefix`` (an address alone means a /32 or /128)."""
        return cls._one(HostCond.of("src", prefix))

    @classmethod
    def dst(cls, prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> Filter:
        """Remote address in ``prefix`` (an address alone means a /32 or /128)."""
        return cls._one(HostCond.of("dst", prefix))

    @classmethod
    def cgroup(cls, cgroup_id: int) -> Filter:
        """Socket created in the cgroup v2 with this id (its directory's inode number)."""
        return cls._one(CgroupCond(cgroup_id))

    @classmethod
    def parse(cls, text: str) -> Filter:
        """Parse a filter expression.

        Grammar (keywords are case-insensitive; ``and`` binds tighter than ``or``)::

            expr := term {("or" | "||" | "|") term}
            term := atom {("and" | "&&" | "&") atom}
            atom := "(" expr ")"
                  | ("sport" | "dport") ["==" | "="] PORT ["-" PORT]
                  | ("sport" | "dport") (">=" | "<=") PORT
                  | ("src" | "dst") ADDRESS["/"PREFIXLEN]
                  | "cgroup" ID

        Args:
            text: e.g. ``"sport == 443 and dst 10.0.0.0/8"``, ``"dport 4000-4999"``.
        Returns:
            The Filter.
        Raises:
            FilterSyntaxError: the text does not parse; the message shows where and why.
            FilterError: a value is out of range (a port above 65535, a bad prefix).
        """
        return _Parser(text).parse()

    @classmethod
    def _one(cls, cond: Condition) -> Filter:
        return cls(((cond,),))

    def __and__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter(tuple(_dedupe(a + b) for a in self.groups for b in other.groups))

    def __or__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter(self.groups + other.groups)

    def __str__(self) -> str:
        if not self.groups:
            return "<matches nothing>"
        return " or ".join(" and ".join(map(str, g)) if g else "<any>" for g in self.groups)

    def bytecode(self, family: int | None = None) -> bytes:
        """Compile to the payload of an INET_DIAG_REQ_BYTECODE attribute.

        Args:
            family: the request's family; with AF_INET, groups that need a v6 address are
                left out (they cannot match). None keeps every group.
        Returns:
            inet_diag_bc_op bytecode that passes the kernel's inet_diag_bc_audit.
        Raises:
            FilterError: the program is too long for the u16 jump offsets.
        """
        groups = [g for g in self.groups
                  if family is None or all(_possible(c, family) for c in g)]
        return _assemble([[op for c in g for op in c.ops()] for g in groups])


def _possible(cond: Condition, family: int) -> bool:
    return cond.possible_in(family) if isinstance(cond, HostCond) else True


def _dedupe(conds: tuple[Condition, ...]) -> tuple[Condition, ...]:
    return tuple(dict.fromkeys(conds))


def _assemble(groups: list[list[_Op]]) -> bytes:
    """Lay out OR-of-AND groups of ops as inet_diag bytecode.

    The kernel runs ops from the start: a true op moves ``yes`` bytes on, a false one ``no``
    bytes; landing exactly on the end accepts the socket, landing 4 bytes past it rejects.
    inet_diag_bc_audit walks only the ``yes`` chain, and requires every ``no`` target to be an
    op boundary on that chain and the chain to end exactly at the end. So every ``yes`` is the
    op's own length, a failed condition jumps to the next group's first op (or rejects), and
    a group that passed skips the remaining groups through a JMP (which always takes ``no``)
    to the end. The last group needs no JMP: falling off its end accepts.
    """
    if any(not g for g in groups):
        return _BC_OP.pack(INET_DIAG_BC_NOP, 4, 0)  # a group with no condition: accept all
    if not groups:
        return _BC_OP.pack(INET_DIAG_BC_JMP, 4, 8)  # no group can match: reject all

    sizes = [sum(_BC_OP.size + len(payload) for _, payload in g) for g in groups]
    sizes = [s + _BC_OP.size if i < len(groups) - 1 else s for i, s in enumerate(sizes)]
    total = sum(sizes)
    if total + _BC_OP.size > _U16_MAX:
        raise FilterError(f"filter compiles to {total} bytes, too long for the u16 jump offsets; "
                          "use fewer conditions (each '&' across '|' multiplies the groups)")

    out = bytearray()
    for i, ops in enumerate(groups):
        fail_target = len(out) + sizes[i] if i < len(groups) - 1 else total + 4
        for code, payload in ops:
            size = _BC_OP.size + len(payload)
            out += _BC_OP.pack(code, size, fail_target - len(out)) + payload
        if i < len(groups) - 1:
            out += _BC_OP.pack(INET_DIAG_BC_JMP, _BC_OP.size, total - len(out))
    return bytes(out)


# --- the filter expression parser -----------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\(|\)|==|>=|<=|=|&&|\|\||&|\||[^\s()=<>&|!]+)|(\S))")
_AND = frozenset({"and", "&&", "&"})
_OR = frozenset({"or", "||", "|"})
_PORT_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
_KEYWORDS = ("sport", "dport", "src", "dst", "cgroup")


class _Parser:
    """Recursive descent over the grammar in ``Filter.parse``; one token of lookahead."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, int]] = []
        for m in _TOKEN.finditer(text):
            if m.group(2) is not None:
                self._fail(f"unexpected character {m.group(2)!r}", m.start(2))
            if m.group(1) is not None:
                self.tokens.append((m.group(1), m.start(1)))
        self.i = 0

    def parse(self) -> Filter:
        if not self.tokens:
            self._fail("empty filter; expected a condition such as 'sport == 443'", 0)
        result = self._expr()
        if self.i < len(self.tokens):
            tok, pos = self.tokens[self.i]
            self._fail(f"expected 'and', 'or' or the end after a condition, got {tok!r}", pos)
        return result

    def _fail(self, message: str, pos: int) -> NoReturn:
        raise FilterSyntaxError(f"{message} at position {pos} in {self.text!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.i][0].lower() if self.i < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.tokens):
            self._fail(f"expected {what} but the filter ended", len(self.text))
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _expr(self) -> Filter:
        result = self._term()
        while self._peek() in _OR:
            self.i += 1
            result = result | self._term()
        return result

    def _term(self) -> Filter:
        result = self._atom()
        while self._peek() in _AND:
            self.i += 1
            result = result & self._atom()
        return result

    def _atom(self) -> Filter:
        tok, pos = self._next("a condition (" + ", ".join(_KEYWORDS) + ") or '('")
        word = tok.lower()
        if word == "(":
            inner = self._expr()
            close, cpos = self._next("')'")
            if close != ")":
                self._fail(f"expected ')' to close the '(' at position {pos}, got {close!r}", cpos)
            return inner
        if word in _PORT_OPS:
            return self._port(word)
        if word in _HOST_OPS:
            value, _ = self._next(f"an address or prefix after {word!r}")
            return Filter._one(HostCond.of(word, value))
        if word == "cgroup":
            value, vpos = self._next("a cgroup id after 'cgroup'")
            if not value.isdigit():
                self._fail(f"cgroup id must be a decimal number (the inode of the cgroup "
                           f"directory), got {value!r}", vpos)
            return Filter.cgroup(int(value))
        self._fail(f"unknown condition {tok!r}; expected one of: {', '.join(_KEYWORDS)}", pos)

    def _port(self, field: str) -> Filter:
        op = "=="
        if self._peek() in ("==", "=", ">=", "<="):
            op = self._next("an operator")[0]
        value, vpos = self._next(f"a port after {field!r}")
        m = _PORT_RANGE.fullmatch(value)
        if m is None or (m.group(2) is not None and op in (">=", "<=")):
            want = "a port such as 443" if op in (">=", "<=") else \
                "a port or an inclusive range such as 443 or 1000-2000"
            self._fail(f"expected {want} after {field!r}, got {value!r}", vpos)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if op == ">=":
            hi = _U16_MAX
        elif op == "<=":
            lo, hi = 0, lo
        return Filter._one(PortCond(field, lo, hi))
