"""The socket filter language: ``Filter`` conditions and text, compiled to inet_diag bytecode.

A ``Filter`` compiles to ``INET_DIAG_REQ_BYTECODE``, the program the kernel runs per socket
(``inet_diag_bc_run``) after checking it once per dump (``inet_diag_bc_audit``); see
``_assemble()`` for the rules the layout must follow. ``Filter.parse`` reads the text form
(``"dport 443 and dst 10.0.0.0/8"``). Sans-I/O, like the rest of ``wire``.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import NoReturn, Union

from .request import AF_INET, AF_INET6, FilterError

__all__ = [
    "INET_DIAG_BC_NOP", "INET_DIAG_BC_JMP", "INET_DIAG_BC_S_GE", "INET_DIAG_BC_S_LE",
    "INET_DIAG_BC_D_GE", "INET_DIAG_BC_D_LE", "INET_DIAG_BC_AUTO", "INET_DIAG_BC_S_COND",
    "INET_DIAG_BC_D_COND", "INET_DIAG_BC_DEV_COND", "INET_DIAG_BC_MARK_COND",
    "INET_DIAG_BC_S_EQ", "INET_DIAG_BC_D_EQ", "INET_DIAG_BC_CGROUP_COND",
    "Filter", "Condition", "PortCond", "HostCond", "CgroupCond", "FilterError", "FilterSyntaxError",
]

_U16_MAX = 0xFFFF


class FilterSyntaxError(FilterError):
    """A filter expression string that does not parse."""


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
