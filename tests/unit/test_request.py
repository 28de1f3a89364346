"""Tests for xtcp_uring.wire.request and wire.filter: request bytes, idiag_ext groups, filter bytecode and parser.

Over 450 lines on purpose: every filter keyword, checked against models of the kernel's
bytecode audit and then against the running kernel; splitting them would part a case from its
kernel check.

The first part needs no kernel: bytes are compared with xtcp2's captures, and bytecode is
checked against small test-only models of the kernel's inet_diag_bc_audit / inet_diag_bc_run.
The last part sends the requests to the running kernel over a NETLINK_SOCK_DIAG socket
opened as the poller opens it (no privilege needed: the dump covers this process's own network namespace) and checks which
of our own loopback sockets each filter returns.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from xtcp_uring import native
from xtcp_uring.wire.filter import (
    INET_DIAG_BC_CGROUP_COND,
    INET_DIAG_BC_D_COND,
    INET_DIAG_BC_D_EQ,
    INET_DIAG_BC_D_GE,
    INET_DIAG_BC_D_LE,
    INET_DIAG_BC_JMP,
    INET_DIAG_BC_NOP,
    INET_DIAG_BC_S_COND,
    INET_DIAG_BC_S_EQ,
    INET_DIAG_BC_S_GE,
    INET_DIAG_BC_S_LE,
    Filter,
    FilterError,
    FilterSyntaxError,
)
from xtcp_uring.wire.netlink import NLM_F_DUMP, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY
from xtcp_uring.wire.request import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    ALL_GROUPS,
    DEFAULT_EXT,
    DEFAULT_GROUPS,
    DEFAULT_STATES,
    INET_DIAG_NOCOOKIE,
    INET_DIAG_REQ_BYTECODE,
    IPPROTO_TCP,
    REQUEST_LEN,
    TCP_BOUND_INACTIVE,
    TCP_LISTEN,
    RequestError,
    build_request,
    ext_for,
    random_seqs,
    with_seq,
)

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2"
CAPTURES = sorted((TESTDATA / "6_6_44").glob("netlink_sock_diag_request_bytes*"))

NLMSGHDR = struct.Struct("=IHHII")
REQ_HEAD = struct.Struct("=BBBBI")
SOCKID = struct.Struct(">HH16s16s")  # then idiag_if u32 and cookie u32[2], host order
OP = struct.Struct("=BBH")
HOSTCOND = struct.Struct("=BBxxi")


def _fields(req: bytes) -> dict:
    """Decode a request into named fields (test helper)."""
    length, typ, flags, seq, pid = NLMSGHDR.unpack_from(req, 0)
    family, protocol, ext, pad, states = REQ_HEAD.unpack_from(req, 16)
    sport, dport, src, dst = SOCKID.unpack_from(req, 24)
    if_, c0, c1 = struct.unpack_from("=III", req, 60)
    return dict(len=length, type=typ, flags=flags, seq=seq, pid=pid, family=family,
                protocol=protocol, ext=ext, pad=pad, states=states, sport=sport, dport=dport,
                src=src, dst=dst, ifindex=if_, cookie=(c0, c1))


# --- request layout -------------------------------------------------------------------------

@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_v4_request_matches_xtcp2_capture(capture: Path) -> None:
    raw = capture.read_bytes()
    assert len(raw) == REQUEST_LEN == 72
    want = _fields(raw)
    assert (want["family"], want["protocol"], want["ext"]) == (AF_INET, IPPROTO_TCP, 0x7F)

    ours = build_request(AF_INET, ext=want["ext"], states=want["states"], seq=want["seq"],
                         pid=want["pid"])
    got = _fields(ours)
    # xtcp2 left the cookie 0; we send INET_DIAG_NOCOOKIE. Dumps ignore it (only exact
    # lookups call sock_diag_check_cookie), so every other byte must be identical.
    assert want.pop("cookie") == (0, 0)
    assert got.pop("cookie") == (INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    assert got == want
    assert ours[:64] == raw[:64]


def test_v6_request_exact_bytes() -> None:
    req = build_request(AF_INET6, seq=0x01020304, pid=0x0A0B0C0D)
    expected = (
        struct.pack("=IHHII", 72, 20, 0x301, 0x01020304, 0x0A0B0C0D)
        + bytes([10, 6, 0x7E, 0]) + struct.pack("=I", 0x1FFE)
        + bytes(2 + 2 + 16 + 16 + 4) + b"\xff" * 8
    )
    assert req == expected
    assert _fields(req)["flags"] == NLM_F_REQUEST | NLM_F_DUMP
    assert _fields(req)["type"] == SOCK_DIAG_BY_FAMILY


def test_request_with_filter_appends_aligned_rtattr() -> None:
    flt = Filter.dst("2001:db8::/32")
    req = build_request(AF_INET6, filter=flt)
    bc = flt.bytecode(AF_INET6)
    rta_len, rta_type = struct.unpack_from("=HH", req, 72)
    assert (rta_len, rta_type) == (4 + len(bc), INET_DIAG_REQ_BYTECODE)
    assert req[76:] == bc
    assert _fields(req)["len"] == len(req) == 72 + 4 + len(bc)
    assert len(req) % 4 == 0


def test_request_passes_raw_bytecode_through() -> None:
    bc = Filter.sport(22).bytecode()
    assert build_request(AF_INET, filter=bc)[76:] == bc
    with pytest.raises(FilterError, match="multiple of 4"):
        build_request(AF_INET, filter=b"\x00\x04\x00")
    with pytest.raises(TypeError, match="Filter, bytecode bytes or None"):
        build_request(AF_INET, filter="sport 22")


def test_with_seq_stamps_only_nlmsg_seq() -> None:
    flt = Filter.sport(22)
    for seq in (1, 0xDEADBEEF, 0xFFFFFFFF):
        assert with_seq(build_request(AF_INET6, filter=flt), seq) == build_request(AF_INET6, filter=flt, seq=seq)
    with pytest.raises(RequestError, match="u32 nlmsg_seq"):
        with_seq(build_request(AF_INET), 1 << 32)


def test_random_seqs_are_one_per_dump_and_never_zero() -> None:
    seqs = random_seqs(4096)
    assert len(seqs) == 4096 and all(0 < s <= 0xFFFFFFFF for s in seqs)
    assert len(set(seqs)) > 4090  # 32 random bits: a collision among 4096 is rare, many is a bug
    assert random_seqs(0) == []


def test_unspec_family_rejected_with_reason() -> None:
    with pytest.raises(RequestError, match="rejected by the kernel.*AF_INET.*AF_INET6"):
        build_request(AF_UNSPEC)
    with pytest.raises(RequestError, match="not AF_INET"):
        build_request(1)
    assert issubclass(RequestError, ValueError)


def test_default_states_never_include_bound_inactive() -> None:
    assert DEFAULT_STATES == sum(1 << s for s in range(1, 13))
    assert not DEFAULT_STATES & (1 << TCP_BOUND_INACTIVE)
    assert not _fields(build_request(AF_INET))["states"] & (1 << TCP_BOUND_INACTIVE)
    explicit = DEFAULT_STATES | 1 << TCP_BOUND_INACTIVE
    assert _fields(build_request(AF_INET, states=explicit))["states"] == explicit


@pytest.mark.parametrize("states, message", [
    (0, "states is 0"), (1 << 32, "u32"), (-1, "u32"),
])
def test_bad_states(states: int, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        build_request(AF_INET, states=states)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ext=0x100), "u8 idiag_ext"), (dict(protocol=262), "INET_DIAG_REQ_PROTOCOL"),
    (dict(seq=1 << 32), "nlmsg_seq"), (dict(pid=-1), "nlmsg_pid"),
])
def test_bad_fields(kwargs: dict, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        build_request(AF_INET, **kwargs)


# --- idiag_ext groups -----------------------------------------------------------------------

def test_ext_bits_are_attribute_type_minus_one() -> None:
    assert [ext_for([g]) for g in ALL_GROUPS] == [1 << i for i in range(7)]
    assert ALL_GROUPS == ("meminfo", "info", "cc_info", "cong", "tos", "tclass", "skmeminfo")
    assert ext_for(ALL_GROUPS) == 0x7F  # bit 7 (SHUTDOWN) is never needed
    assert ext_for(["vegas"]) == ext_for(["cc_info"]) == 0x04
    assert ext_for([]) == 0


def test_default_groups_leave_out_meminfo() -> None:
    assert set(DEFAULT_GROUPS) == set(ALL_GROUPS) - {"meminfo"}
    assert DEFAULT_EXT == ext_for(DEFAULT_GROUPS) == 0x7E
    assert _fields(build_request(AF_INET))["ext"] == 0x7E


def test_unknown_group_lists_valid_names() -> None:
    with pytest.raises(RequestError, match="'bbr'.*meminfo, info, cc_info, cong, tos, tclass, "
                                           "skmeminfo"):
        ext_for(["info", "bbr"])
    with pytest.raises(TypeError, match=r"ext_for\(\['info'\]\)"):
        ext_for("info")


# --- bytecode: test-only models of the kernel --------------------------------------------------

PORT_CODES = {INET_DIAG_BC_S_EQ, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE,
              INET_DIAG_BC_D_EQ, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE}
ADDR_LEN = {AF_UNSPEC: 0, AF_INET: 4, AF_INET6: 16}


def _min_len(bc: bytes, pos: int) -> int | None:
    """Length an op needs including its payload, as the kernel's audit computes it (helper)."""
    code = bc[pos]
    if code in (INET_DIAG_BC_NOP, INET_DIAG_BC_JMP):
        return 4
    if code in PORT_CODES:
        return 8
    if code == INET_DIAG_BC_CGROUP_COND:
        return 12
    if code in (INET_DIAG_BC_S_COND, INET_DIAG_BC_D_COND) and len(bc) - pos >= 12:
        family, prefix_len, _ = HOSTCOND.unpack_from(bc, pos + 4)
        if family in ADDR_LEN and prefix_len <= 8 * ADDR_LEN[family]:
            return 12 + ADDR_LEN[family]
    return None


def kernel_audit(bc: bytes) -> bool:
    """Model of inet_diag_bc_audit (test helper): True if the kernel would accept ``bc``."""
    if len(bc) < 4:
        return False
    chain, pos = set(), 0  # op offsets on the `yes` chain, where `no` jumps may land
    while pos < len(bc) and bc[pos + 1] >= 4 and not bc[pos + 1] & 3:
        chain.add(pos)
        pos += bc[pos + 1]
    pos = 0
    while pos < len(bc):
        rest, min_len = len(bc) - pos, _min_len(bc, pos)
        code, yes, no = OP.unpack_from(bc, pos)
        if min_len is None or rest < min_len:
            return False
        if code != INET_DIAG_BC_NOP:
            if no < min_len or no > rest + 4 or no & 3:
                return False
            if no < rest and pos + no not in chain:
                return False
        if yes < min_len or yes > rest + 4 or yes & 3:
            return False
        pos += yes
    return pos == len(bc)


@dataclass(frozen=True)
class Entry:
    """What inet_diag_bc_run sees of one socket (test helper)."""

    family: int
    src: str
    sport: int
    dst: str
    dport: int
    cgroup: int = 1


def _prefix_match(addr: bytes, net: bytes, bits: int) -> bool:
    n = (bits + 7) // 8
    shift = 8 * n - bits
    return int.from_bytes(addr[:n], "big") >> shift == int.from_bytes(net[:n], "big") >> shift


def kernel_run(bc: bytes, e: Entry) -> bool:
    """Model of inet_diag_bc_run (test helper): True if the socket is dumped."""
    pos = 0
    while pos < len(bc):
        code, yes, no = OP.unpack_from(bc, pos)
        ok = code == INET_DIAG_BC_NOP
        if code in PORT_CODES:
            port = OP.unpack_from(bc, pos + 4)[2]
            mine = e.sport if code in (INET_DIAG_BC_S_EQ, INET_DIAG_BC_S_GE,
                                       INET_DIAG_BC_S_LE) else e.dport
            ok = {INET_DIAG_BC_S_EQ: mine == port, INET_DIAG_BC_D_EQ: mine == port,
                  INET_DIAG_BC_S_GE: mine >= port, INET_DIAG_BC_D_GE: mine >= port,
                  INET_DIAG_BC_S_LE: mine <= port, INET_DIAG_BC_D_LE: mine <= port}[code]
        elif code in (INET_DIAG_BC_S_COND, INET_DIAG_BC_D_COND):
            family, bits, port = HOSTCOND.unpack_from(bc, pos + 4)
            want = bc[pos + 12:pos + 12 + ADDR_LEN[family]]
            addr = ipaddress.ip_address(e.src if code == INET_DIAG_BC_S_COND else e.dst).packed
            mine = e.sport if code == INET_DIAG_BC_S_COND else e.dport
            if port != -1 and port != mine:
                ok = False
            elif family not in (AF_UNSPEC, e.family):
                ok = (e.family == AF_INET6 and family == AF_INET
                      and addr[:12] == bytes(10) + b"\xff\xff"
                      and _prefix_match(addr[12:], want, bits))
            else:
                ok = _prefix_match(addr, want, bits)
        elif code == INET_DIAG_BC_CGROUP_COND:
            ok = struct.unpack_from("=Q", bc, pos + 4)[0] == e.cgroup
        pos += yes if ok else no
    return pos == len(bc)


def ops(bc: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, code, yes, no) of each op on the yes chain (test helper)."""
    out, pos = [], 0
    while pos < len(bc):
        out.append((pos, *OP.unpack_from(bc, pos)))
        pos += bc[pos + 1]
    return out


# --- bytecode: one test per op kind -----------------------------------------------------------

@pytest.mark.parametrize("flt, code, port", [
    (Filter.sport(443), INET_DIAG_BC_S_EQ, 443),
    (Filter.dport(65535), INET_DIAG_BC_D_EQ, 65535),
    (Filter.sport_range(7, 7), INET_DIAG_BC_S_EQ, 7),
])
def test_port_equal_bytecode(flt: Filter, code: int, port: int) -> None:
    bc = flt.bytecode()
    # One op that passes onto the end (accept) or fails to end + 4 (reject); the port rides
    # in the `no` field of a second, never-run op.
    assert bc == OP.pack(code, 8, 12) + OP.pack(INET_DIAG_BC_NOP, 0, port)
    assert kernel_audit(bc)


def test_port_range_bytecode() -> None:
    bc = Filter.dport_range(1000, 2000).bytecode()
    assert bc == (OP.pack(INET_DIAG_BC_D_GE, 8, 20) + OP.pack(0, 0, 1000)
                  + OP.pack(INET_DIAG_BC_D_LE, 8, 12) + OP.pack(0, 0, 2000))
    assert Filter.sport_range(1024, 65535).bytecode() == (
        OP.pack(INET_DIAG_BC_S_GE, 8, 12) + OP.pack(0, 0, 1024))
    assert Filter.sport_range(0, 1023).bytecode() == (
        OP.pack(INET_DIAG_BC_S_LE, 8, 12) + OP.pack(0, 0, 1023))
    assert Filter.sport_range(0, 65535).bytecode() == OP.pack(INET_DIAG_BC_NOP, 4, 0)
    assert kernel_audit(bc)


def test_hostcond_bytecode_v4_and_v6() -> None:
    bc = Filter.src("10.0.0.0/8").bytecode()
    assert bc == (OP.pack(INET_DIAG_BC_S_COND, 16, 20) + HOSTCOND.pack(AF_INET, 8, -1)
                  + bytes([10, 0, 0, 0]))
    bc6 = Filter.dst("2001:db8::/32").bytecode()
    assert bc6 == (OP.pack(INET_DIAG_BC_D_COND, 28, 32) + HOSTCOND.pack(AF_INET6, 32, -1)
                   + ipaddress.ip_address("2001:db8::").packed)
    assert kernel_audit(bc) and kernel_audit(bc6)


def test_v4_mapped_prefix_becomes_v4() -> None:
    assert Filter.src("::ffff:10.0.0.0/104") == Filter.src("10.0.0.0/8")
    assert Filter.dst("::ffff:127.0.0.1") == Filter.dst("127.0.0.1/32")
    assert Filter.src("::/0") != Filter.src("0.0.0.0/0")


def test_v6_prefix_dropped_from_v4_requests() -> None:
    flt = Filter.src("fd00::/8") | Filter.sport(22)
    assert flt.bytecode(AF_INET) == Filter.sport(22).bytecode()
    assert flt.bytecode(AF_INET6) == flt.bytecode()
    reject_all = OP.pack(INET_DIAG_BC_JMP, 4, 8)
    assert Filter.src("fd00::/8").bytecode(AF_INET) == reject_all
    assert Filter(()).bytecode() == reject_all
    assert kernel_audit(reject_all)
    assert not kernel_run(reject_all, Entry(AF_INET, "10.0.0.1", 1, "10.0.0.2", 2))


def test_cgroup_bytecode() -> None:
    bc = Filter.cgroup(0x1122334455667788).bytecode()
    assert bc == OP.pack(INET_DIAG_BC_CGROUP_COND, 12, 16) + struct.pack("=Q", 0x1122334455667788)
    assert kernel_audit(bc)


@pytest.mark.parametrize("make, message", [
    (lambda: Filter.sport(65536), "0-65535"),
    (lambda: Filter.dport_range(10, 5), "empty"),
    (lambda: Filter.src("10.0.0.300"), "not an IPv4/IPv6"),
    (lambda: Filter.cgroup(-1), "u64"),
])
def test_bad_conditions(make, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        make()


# --- bytecode: jump offsets of AND / OR -------------------------------------------------------

def test_and_jumps() -> None:
    bc = (Filter.sport(1) & Filter.dport(2)).bytecode()
    # Either failure rejects: no = (16 + 4) - offset.
    assert ops(bc) == [(0, INET_DIAG_BC_S_EQ, 8, 20), (8, INET_DIAG_BC_D_EQ, 8, 12)]


def test_or_jumps() -> None:
    bc = (Filter.sport(1) | Filter.dport(2)).bytecode()
    # sport fails -> try the dport group at 12; sport passes -> JMP (always takes `no`) to
    # the end = accept; dport fails -> end + 4 = reject.
    assert ops(bc) == [(0, INET_DIAG_BC_S_EQ, 8, 12), (8, INET_DIAG_BC_JMP, 4, 12),
                       (12, INET_DIAG_BC_D_EQ, 8, 12)]
    assert len(bc) == 20


def test_or_of_and_groups_jumps() -> None:
    flt = (Filter.src("10.0.0.0/8") & Filter.sport(1)) | Filter.cgroup(9)
    bc = flt.bytecode()
    assert ops(bc) == [(0, INET_DIAG_BC_S_COND, 16, 28), (16, INET_DIAG_BC_S_EQ, 8, 12),
                       (24, INET_DIAG_BC_JMP, 4, 16), (28, INET_DIAG_BC_CGROUP_COND, 12, 16)]
    assert len(bc) == 40 and kernel_audit(bc)


def test_and_distributes_over_or() -> None:
    a, b, c = Filter.sport(1), Filter.sport(2), Filter.dport(3)
    assert ((a | b) & c).groups == ((a & c) | (b & c)).groups
    assert (a & a) == a


def test_too_long_filter_is_refused() -> None:
    flt = Filter.sport(0)
    for port in range(1, 3000):
        flt = flt | Filter.dst(f"2001:db8::{port:x}")
    with pytest.raises(FilterError, match="too long"):
        flt.bytecode()


V4_ADDRS = ["10.1.2.3", "192.168.1.1", "127.0.0.1"]
V6_ADDRS = ["::1", "fd00::5", "2001:db8::1", "::ffff:10.1.2.3", "::ffff:192.168.1.1"]
PREFIXES = ["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0", "192.168.1.1", "::1", "fd00::/8", "::/0",
            "2001:db8::/32", "::ffff:192.168.0.0/112"]
PORTS = [0, 1, 80, 443, 1000, 2000, 65535]


def _random_condition(rng: random.Random) -> Filter:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice([Filter.sport, Filter.dport])(rng.choice(PORTS))
    if kind == 1:
        lo, hi = sorted(rng.sample(PORTS, 2))
        return rng.choice([Filter.sport_range, Filter.dport_range])(lo, hi)
    if kind == 2:
        return rng.choice([Filter.src, Filter.dst])(rng.choice(PREFIXES))
    return Filter.cgroup(rng.choice([1, 2]))


def _random_filter(rng: random.Random, depth: int = 3) -> Filter:
    if depth == 0 or rng.random() < 0.3:
        return _random_condition(rng)
    a, b = _random_filter(rng, depth - 1), _random_filter(rng, depth - 1)
    return a & b if rng.random() < 0.5 else a | b


def _holds(cond, e: Entry) -> bool:
    """What the user meant by one condition (test helper; v4 prefixes cover v4-mapped)."""
    if hasattr(cond, "lo"):
        port = e.sport if cond.field == "sport" else e.dport
        return cond.lo <= port <= cond.hi
    if hasattr(cond, "network"):
        addr = ipaddress.ip_address(e.src if cond.field == "src" else e.dst)
        if cond.network.version == 4 and addr.version == 6:
            addr = addr.ipv4_mapped
        return addr is not None and addr.version == cond.network.version and addr in cond.network
    return cond.cgroup_id == e.cgroup


def test_random_filters_against_kernel_model() -> None:
    rng = random.Random(1234)
    entries = [Entry(fam, rng.choice(addrs), rng.choice(PORTS), rng.choice(addrs),
                     rng.choice(PORTS), rng.choice([1, 2]))
               for _ in range(60) for fam, addrs in ((AF_INET, V4_ADDRS), (AF_INET6, V6_ADDRS))]
    for _ in range(300):
        flt = _random_filter(rng)
        for family in (AF_INET, AF_INET6):
            bc = flt.bytecode(family)
            assert kernel_audit(bc), str(flt)
            for e in (e for e in entries if e.family == family):
                want = any(all(_holds(c, e) for c in g) for g in flt.groups)
                assert kernel_run(bc, e) == want, (str(flt), e)


# --- parser -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("sport == 443 and dst 10.0.0.0/8", Filter.sport(443) & Filter.dst("10.0.0.0/8")),
    ("SPORT = 443 && dst 10.0.0.0/8", Filter.sport(443) & Filter.dst("10.0.0.0/8")),
    ("dport 4000-4999", Filter.dport_range(4000, 4999)),
    ("dport >= 1024", Filter.dport_range(1024, 65535)),
    ("sport <= 1023", Filter.sport_range(0, 1023)),
    ("cgroup 1234", Filter.cgroup(1234)),
    ("src ::1 or src 127.0.0.1", Filter.src("::1") | Filter.src("127.0.0.1")),
    ("sport 1 or sport 2 and dport 3", Filter.sport(1) | (Filter.sport(2) & Filter.dport(3))),
    ("(sport 1 || sport 2) & dport 3", (Filter.sport(1) | Filter.sport(2)) & Filter.dport(3)),
    ("src fd00::/8|dst ::ffff:10.0.0.0/104", Filter.src("fd00::/8") | Filter.dst("10.0.0.0/8")),
])
def test_parse(text: str, expected: Filter) -> None:
    assert Filter.parse(text) == expected
    assert Filter.parse(str(expected)) == expected


def test_str_round_trips() -> None:
    rng = random.Random(99)
    for _ in range(200):
        flt = _random_filter(rng)
        assert Filter.parse(str(flt)) == flt, str(flt)
    assert str(Filter.sport(443) & Filter.dst("10.0.0.0/8") | Filter.dport_range(4000, 4999)) \
        == "sport == 443 and dst 10.0.0.0/8 or dport 4000-4999"


@pytest.mark.parametrize("text, message", [
    ("", "empty filter"),
    ("sport", "expected a port after 'sport' but the filter ended at position 5"),
    ("sport abc", "got 'abc' at position 6"),
    ("sport >= 1-2", "expected a port such as 443"),
    ("port 80", "unknown condition 'port'; expected one of: sport, dport, src, dst, cgroup"),
    ("sport 1 dport 2", "expected 'and', 'or' or the end after a condition, got 'dport'"),
    ("(sport 1", "expected ')' but the filter ended"),
    ("(sport 1 sport", "expected ')' to close the '(' at position 0, got 'sport'"),
    ("sport 1 and", "expected a condition"),
    ("sport ! 1", "unexpected character '!' at position 6"),
    ("cgroup /sys/fs/cgroup", "cgroup id must be a decimal number"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        Filter.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("sport 70000", "0-65535"), ("dport 9-1", "empty"), ("dst 10.0.0.256/8", "not an IPv4"),
])
def test_parse_value_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Filter.parse(text)


# --- the real kernel --------------------------------------------------------------------------
# Test helper only: the production decoder is C (csrc/), this reads just the inet_diag_msg
# header of each reply (family @0, sport be16 @4, dport be16 @6, src @8, dst @24).

NLMSG_ERROR, NLMSG_DONE = 2, 3


def kernel_dump(family: int, flt: Filter | bytes | None = None,
                states: int = DEFAULT_STATES) -> set[tuple]:
    """Send one request and return (family, src, sport, dst, dport) of every reply."""
    found = set()
    with socket.socket(fileno=native.open_diag_socket()[0]) as nl:  # connected, like the poller's
        nl.setblocking(True)
        nl.sendall(build_request(family, filter=flt, states=states, ext=0, seq=7))
        while True:
            data, pos = nl.recv(65536), 0
            while pos < len(data):
                length, typ = NLMSGHDR.unpack_from(data, pos)[:2]
                if typ == NLMSG_DONE:
                    return found
                if typ == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, pos + 16)[0]
                    raise OSError(err, os.strerror(err))
                fam = data[pos + 16]
                sport, dport = struct.unpack_from(">HH", data, pos + 20)
                alen = 4 if fam == AF_INET else 16
                src = ipaddress.ip_address(data[pos + 24:pos + 24 + alen])
                dst = ipaddress.ip_address(data[pos + 40:pos + 40 + alen])
                found.add((fam, src, sport, dst, dport))
                pos += (length + 3) & ~3


def _key(sock: socket.socket, peer: bool = True) -> tuple:
    fam = AF_INET if sock.family == socket.AF_INET else AF_INET6
    local = sock.getsockname()
    remote = sock.getpeername() if peer else (("0.0.0.0" if fam == AF_INET else "::"), 0)
    return (fam, ipaddress.ip_address(local[0]), local[1], ipaddress.ip_address(remote[0]),
            remote[1])


class Farm:
    """Our loopback sockets by name. L4_i / L6_i listen on 127.0.0.1 / ::1 port base+i;
    C* / A* are the client and accepted ends of connections; M2 is an AF_INET6 client on
    v4-mapped addresses (::ffff:127.0.0.1) connected to L4_2, accepted as the AF_INET A4_2."""

    def __init__(self, base: int) -> None:
        self.base, self.socks, self.names = base, {}, {}
        try:
            for i in range(4):
                self._listen(f"L4_{i}", socket.AF_INET, ("127.0.0.1", base + i))
                self._listen(f"L6_{i}", socket.AF_INET6, ("::1", base + i))
            self._connect("C4_0", "A4_0", socket.AF_INET, ("127.0.0.1", base), "L4_0")
            self._connect("C6_0", "A6_0", socket.AF_INET6, ("::1", base), "L6_0")
            self._connect("C4_1", "A4_1", socket.AF_INET, ("127.0.0.1", base + 1), "L4_1")
            self._connect("M2", "A4_2", socket.AF_INET6, ("::ffff:127.0.0.1", base + 2), "L4_2")
        except OSError:
            self.close()
            raise

    def _listen(self, name: str, fam: int, addr: tuple) -> None:
        s = self.socks[name] = socket.socket(fam, socket.SOCK_STREAM)
        s.bind(addr)
        s.listen(8)
        self.names[_key(s, peer=False)] = name

    def _connect(self, client: str, accepted: str, fam: int, addr: tuple, listener: str) -> None:
        c = self.socks[client] = socket.socket(fam, socket.SOCK_STREAM)
        c.connect(addr)
        a = self.socks[accepted] = self.socks[listener].accept()[0]
        self.names[_key(c)] = client
        self.names[_key(a)] = accepted

    def close(self) -> None:
        for s in self.socks.values():
            s.close()

    def matching(self, flt: Filter | bytes | str | None, **kw) -> set[str]:
        """Names of our sockets that the kernel returns for ``flt`` in either family."""
        if isinstance(flt, str):
            b = self.base
            flt = Filter.parse(flt.format(b=b, b1=b + 1, b2=b + 2, b3=b + 3))
        got = kernel_dump(AF_INET, flt, **kw) | kernel_dump(AF_INET6, flt, **kw)
        return {self.names[k] for k in got if k in self.names}


@pytest.fixture(scope="module")
def farm():
    rng = random.Random()
    for _ in range(50):
        # Below the default ephemeral range (32768+), so client ports never fall in ours.
        try:
            f = Farm(rng.randrange(20000, 32000))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        yield f
        f.close()
        return
    pytest.skip("no free block of 4 loopback ports")


ALL_V4 = {"L4_0", "L4_1", "L4_2", "L4_3", "C4_0", "A4_0", "C4_1", "A4_1", "A4_2"}
ALL_V6 = {"L6_0", "L6_1", "L6_2", "L6_3", "C6_0", "A6_0", "M2"}


def test_kernel_sees_all_our_sockets_without_filter(farm: Farm) -> None:
    assert farm.matching(None) == ALL_V4 | ALL_V6
    assert farm.matching(Filter.sport_range(0, 65535)) == ALL_V4 | ALL_V6  # NOP program


def test_kernel_states_mask(farm: Farm) -> None:
    listeners = {n for n in ALL_V4 | ALL_V6 if n.startswith("L")}
    assert farm.matching(None, states=1 << TCP_LISTEN) == listeners


@pytest.mark.parametrize("text, expected", [
    ("sport == {b}", {"L4_0", "L6_0", "A4_0", "A6_0"}),
    ("dport == {b}", {"C4_0", "C6_0"}),
    ("sport {b}-{b}", {"L4_0", "L6_0", "A4_0", "A6_0"}),
])
def test_kernel_port_equal(farm: Farm, text: str, expected: set) -> None:
    assert farm.matching(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("sport {b1}-{b2}", {"L4_1", "L6_1", "L4_2", "L6_2", "A4_1", "A4_2"}),
    ("dport {b}-{b2}", {"C4_0", "C6_0", "C4_1", "M2"}),
    # Clients' ephemeral source ports (32768+) are above every listener port.
    ("sport >= {b3}", {"L4_3", "L6_3", "C4_0", "C6_0", "C4_1", "M2"}),
    ("sport <= {b}", {"L4_0", "L6_0", "A4_0", "A6_0"}),
])
def test_kernel_port_ranges(farm: Farm, text: str, expected: set) -> None:
    assert farm.matching(text) == expected


@pytest.mark.parametrize("text, expected", [
    # A v4 prefix also matches v4-mapped addresses of AF_INET6 sockets (M2).
    ("src 127.0.0.0/8", ALL_V4 | {"M2"}),
    ("dst 127.0.0.1", {"C4_0", "A4_0", "C4_1", "A4_1", "A4_2", "M2"}),
    ("src ::ffff:127.0.0.1", ALL_V4 | {"M2"}),
    ("src ::1", ALL_V6 - {"M2"}),
    ("dst ::1/128", {"C6_0", "A6_0"}),
    ("src ::/0", ALL_V6),  # never an AF_INET socket
    ("dst 10.0.0.0/8 or dst fd00::/8", set()),
])
def test_kernel_address_prefixes(farm: Farm, text: str, expected: set) -> None:
    assert farm.matching(text) == expected


def _own_cgroup_id() -> int:
    """Inode of this process's cgroup v2 directory, i.e. its cgroup id (test helper)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split(" - ")[1].startswith("cgroup2 ")]
    if path is None or not mounts:
        pytest.skip("no cgroup v2 hierarchy")
    return os.stat(mounts[0] + path.rstrip("/") if path != "/" else mounts[0]).st_ino


def test_kernel_cgroup(farm: Farm) -> None:
    own = _own_cgroup_id()
    assert farm.matching(Filter.cgroup(own)) == ALL_V4 | ALL_V6
    assert farm.matching(Filter.cgroup(own + 1_000_000_007)) == set()


@pytest.mark.parametrize("text, expected", [
    ("src 127.0.0.1 and dport == {b1}", {"C4_1"}),
    ("sport == {b3} or dport == {b2}", {"L4_3", "L6_3", "M2"}),
    ("(src ::1 or src 127.0.0.1) and sport == {b1}", {"L4_1", "L6_1", "A4_1"}),
    ("sport {b}-{b1} and dst ::1 or dport {b2} and src ::ffff:127.0.0.0/104", {"A6_0", "M2"}),
])
def test_kernel_and_or(farm: Farm, text: str, expected: set) -> None:
    assert farm.matching(text) == expected


def test_kernel_rejects_bad_bytecode(farm: Farm) -> None:
    # The control for "no NLMSG_ERROR" above: a `no` jump that is not 4-aligned fails the audit.
    with pytest.raises(OSError) as info:
        kernel_dump(AF_INET, OP.pack(INET_DIAG_BC_S_EQ, 8, 6) + OP.pack(0, 0, 1))
    assert info.value.errno == errno.EINVAL
