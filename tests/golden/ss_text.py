"""Test oracle: parse ``ss -tia`` text and state exactly what it says about the raw fields.

Over 450 lines on purpose: one parser of ss's text and one table of what each printed
field says about the raw value; both follow ss's print order and are read together.

Theory of operation
-------------------
The golden captures pair a pcap of a SOCK_DIAG dump with the text ``ss`` printed
from the same dump (``ss -tia`` plus, judging by what it prints, ``-e`` details,
``-m`` skmem, ``-n`` numeric, ``--tos`` and ``--cgroup``). ``ss`` prints
derived and rounded values, and omits most fields when they are zero, so a
golden test cannot just compare numbers. This module therefore has three parts:

1. :func:`parse_ss_text` / :func:`parse_ss_file` turn the text into one dict per
   socket (keys listed in :data:`SOCKET_KEYS` and :data:`KEYS`), numbers as
   printed, with the exact printed strings kept under ``"printed"``.
2. :data:`KEYS` — for every key ss prints: the xtcp2 schema field(s)
   (``xtcp2_schema_fields.txt`` names) it comes from, the formatting rule, the
   ss function that prints it, and what the *absence* of the key says about the
   raw value (most keys are printed only when nonzero).
3. :func:`expected` returns a predicate over a decoded raw value that is true
   exactly when ss would have printed the given text; :func:`compare_socket`
   applies every rule (presence and absence) to one decoded record.

The rules were read from iproute2's ``misc/ss.c`` (functions ``tcp_show_info``,
``tcp_stats_print``, ``print_skmeminfo``, ``inet_show_sock``,
``sock_details_print``, ``tcp_timer_print``, ``print_ms_timer``, ``sprint_bw``,
``inet_addr_print``, ``parse_diag_msg``); they are re-expressed here, not copied.
C's ``%g``/``%.0f``/``%.1f`` on a double and Python's ``%`` formatting both round
the exact binary value correctly, so ``"%g" % (us / 1000)`` reproduces ss's text
bit for bit when the decoded integer is right.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "KEYS",
    "SOCKET_KEYS",
    "STATE_NUMBERS",
    "TIMER_NUMBERS",
    "Expectation",
    "SsKey",
    "SsTextError",
    "compare_socket",
    "expected",
    "expected_absent",
    "format_bw",
    "format_ss_addr",
    "keys_for_fields",
    "parse_ss_file",
    "parse_ss_text",
    "print_ms_timer",
]


class SsTextError(ValueError):
    """The text is not ss output this parser understands (line number in message)."""


# --------------------------------------------------------------------------------------
# Constants ss uses to name things (ss.c sock_state_print, tcp_timer_print)
# --------------------------------------------------------------------------------------

STATE_NUMBERS: dict[str, int] = {
    "UNKNOWN": 0,
    "ESTAB": 1,
    "SYN-SENT": 2,
    "SYN-RECV": 3,
    "FIN-WAIT-1": 4,
    "FIN-WAIT-2": 5,
    "TIME-WAIT": 6,
    "UNCONN": 7,
    "CLOSE-WAIT": 8,
    "LAST-ACK": 9,
    "LISTEN": 10,
    "CLOSING": 11,
}
TCP_LISTEN = 10

# idiag_timer → printed name; ss prints "unknown" for any value > 4.
TIMER_NUMBERS: dict[str, int] = {"off": 0, "on": 1, "keepalive": 2, "timewait": 3, "persist": 4}

# tcpi_options bits ss turns into words (tcp_show_info: TCPI_HAS_OPT).
OPTION_BITS: dict[str, int] = {"ts": 1, "sack": 2, "ecn": 8, "ecnseen": 16, "fastopen": 32}
TCPI_OPT_WSCALE = 4

# skmem:(...) letters in print order → SK_MEMINFO index → schema field (print_skmeminfo).
SKMEM_FIELDS: dict[str, str] = {
    "r": "sk_mem_info_rmem_alloc",
    "rb": "sk_mem_info_rcv_buf",
    "t": "sk_mem_info_wmem_alloc",
    "tb": "sk_mem_info_snd_buf",
    "f": "sk_mem_info_fwd_alloc",
    "w": "sk_mem_info_wmem_queued",
    "o": "sk_mem_info_optmem",
    "bl": "sk_mem_info_backlog",  # only when SKMEMINFO has >= 8 words (3.6+)
    "d": "sk_mem_info_drops",  # only when SKMEMINFO has >= 9 words (4.6+)
}
# mem:(r,w,f,t) is printed instead, from INET_DIAG_MEMINFO, only when SKMEMINFO is absent.
MEM_FIELDS: dict[str, str] = {
    "r": "mem_info_rmem",
    "w": "mem_info_wmem",
    "f": "mem_info_fmem",
    "t": "mem_info_tmem",
}

U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF


# --------------------------------------------------------------------------------------
# Formatting helpers: Python re-expressions of ss's number formats
# --------------------------------------------------------------------------------------


def c_g(x: float) -> str:
    """C's ``%g`` (precision 6); Python's ``%g`` rounds and strips identically."""
    return "%g" % x


def c_alt_hex(v: int) -> str:
    """C's ``%#x``: ``0`` for zero (no prefix), else ``0x…``."""
    return "0" if v == 0 else "0x%x" % v


def format_bw(bps: float, numeric: bool = True) -> str:
    """ss ``sprint_bw``: ``%.0f`` with ``-n``, else ``%.3g`` with a k/M/G/T suffix."""
    if numeric:
        return "%.0f" % bps
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bps >= limit:
            return "%.3g%s" % (bps / limit, suffix)
    return "%g" % bps


def print_ms_timer(ms: int) -> str:
    """ss ``print_ms_timer``: idiag_expires (ms, u32) → e.g. ``611ms``, ``7.999ms``
    (meaning 7 s 999 ms), ``12sec``, ``1min13sec``, ``71582min``, or ``""`` for 0.

    Rules: minutes → ``Nmin`` and drops ms (and seconds too when minutes > 9);
    seconds > 9 drop ms; seconds print as ``N.`` when ms follow, else ``Nsec``;
    ms print as ``%03dms``.
    """
    ms &= U32_MAX
    secs = ms // 1000
    minutes = secs // 60
    secs %= 60
    msecs = ms % 1000
    out = ""
    if minutes:
        msecs = 0
        out = "%dmin" % minutes
        if minutes > 9:
            secs = 0
    if secs:
        if secs > 9:
            msecs = 0
        out += "%d%s" % (secs, "." if msecs else "sec")
    if msecs:
        out += "%03dms" % msecs
    return out


def format_ss_addr(family: int, addr: bytes, v6only: bool = False) -> str:
    """How ss (``inet_addr_print`` with ``-n``) prints an address, without brackets.

    AF_INET6 any-address prints as ``*`` unless the socket is v6only, where it
    is ``::`` (printed ``[::]``). Others use inet_ntop, so IPv4-mapped
    addresses look like ``::ffff:127.0.0.1``.
    """
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, bytes(addr[:4]))
    a = bytes(addr[:16])  # inet_ntop raises ValueError unless this is 16 bytes
    if not v6only and a == bytes(16):
        return "*"
    return socket.inet_ntop(socket.AF_INET6, a)


def _parse_bw(text: str) -> float | int:
    """``15152832370bps`` → int; ``981Mbps``/``1.2Gbps`` → float bps."""
    if not text.endswith("bps"):
        raise ValueError(f"not a rate: {text!r}")
    body = text[:-3]
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(body[-1:] or "")
    if scale:
        return float(body[:-1]) * scale
    return _num(body)


def _num(text: str) -> int | float:
    """A number exactly as printed: int when it has no '.'/exponent, else float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


# --------------------------------------------------------------------------------------
# Expectations: predicates "would ss print this text for that raw value?"
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """Predicate over a decoded raw value; ``rule`` says which ss rule it applies.

    Call it with the raw integer (or, for derived keys, a mapping of schema
    fields). ``render`` gives the text ss would print for a value, when the rule
    is a pure function of that value.
    """

    rule: str
    printed: str
    test: Callable[[Any], bool]
    render: Callable[[Any], str] | None = None

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, KeyError, ZeroDivisionError, OverflowError):
            return False


def _render_exact(v: int) -> str:
    return "%d" % v


def _render_usec_ms_g(v: int) -> str:
    return c_g(v / 1000)  # ss: (double)usec / 1000, then %g


def _render_rate_x8(v: int) -> str:
    return format_bw(float(v) * 8.0)  # ss: tcpi_*_rate * 8. (u64 → double)


def _render_usec_ms_floor(v: int) -> str:
    return "%d" % (v // 1000)  # ss: %llu of busy_time / 1000 (integer division)


def _render_gain(v: int) -> str:
    return c_g(v / 256.0)  # ss: (double)gain / 256.0, %g


def _render_bbr_bw(v: int) -> str:
    return format_bw(float(v) * 8.0)  # ss: ((u64)bw_hi << 32 | bw_lo) * 8.0


_RENDERERS: dict[str, Callable[[int], str]] = {
    "exact": _render_exact,
    "usec_as_ms_g": _render_usec_ms_g,
    "bytes_per_s_as_bps": _render_rate_x8,
    "usec_as_ms_floor": _render_usec_ms_floor,
    "gain_256_g": _render_gain,
    "bbr_bw_bps": _render_bbr_bw,
    "alt_hex": c_alt_hex,
    "ms_timer": print_ms_timer,
    "hex_cookie": lambda v: "%x" % v,
}


def _match_rendered(rule: str, printed: str) -> Callable[[Any], bool]:
    render = _RENDERERS[rule]
    if rule in ("bytes_per_s_as_bps", "bbr_bw_bps") and not re.fullmatch(r"\d+", printed):
        # non-numeric ss (no -n): %.3g with a unit suffix
        return lambda v: format_bw(float(v) * 8.0, numeric=False) == printed
    if rule == "alt_hex":
        return lambda v: int(v) == int(printed, 0)
    return lambda v: render(int(v)) == printed


@dataclass(frozen=True)
class SsKey:
    """What ss prints for one key and where it comes from.

    Attributes:
        key: key in a parsed socket dict.
        fields: schema field names the value is derived from.
        rule: formatting rule (see :func:`expected`).
        source: the ss.c function that prints it.
        printed_when: when ss prints the key at all.
        absent: predicate on the raw value that must hold when the key is NOT
            printed (``None``: absence says nothing about the value). Gets
            ``(value, socket_dict)``.
    """

    key: str
    fields: tuple[str, ...]
    rule: str
    source: str
    printed_when: str = "always"
    absent: Callable[[int, Mapping[str, Any]], bool] | None = None


def _zero(v: int, _s: Mapping[str, Any]) -> bool:
    return v == 0


def _k(key, fields, rule, source, printed_when="value != 0", absent=_zero) -> SsKey:
    if isinstance(fields, str):
        fields = (fields,)
    return SsKey(key, tuple(fields), rule, source, printed_when, absent)


TSP = "tcp_stats_print"
TSI = "tcp_show_info"

#: Every key ss prints for a TCP socket, in print order. Keys of the first
#: line come from inet_show_sock / sock_details_print; keys of the tab-indented
#: line from print_skmeminfo, tcp_show_info and tcp_stats_print.
KEYS: dict[str, SsKey] = {
    k.key: k
    for k in [
        # ---- first line ----
        _k("state", "inet_diag_msg_state", "state_name", "sock_state_print", "always", None),
        _k("recv_q", "inet_diag_msg_rqueue", "exact", "sock_state_print", "always", None),
        _k("send_q", "inet_diag_msg_wqueue", "exact", "sock_state_print", "always", None),
        _k("local_addr", "inet_diag_msg_socket_source", "address", "inet_addr_print", "always", None),
        _k("local_port", "inet_diag_msg_socket_source_port", "port", "inet_addr_print", "always", None),
        _k("local_if", "inet_diag_msg_socket_interface", "ifname", "inet_addr_print",
           "idiag_if != 0 (printed as %ifname; ifindex→name needs the host)"),
        _k("peer_addr", "inet_diag_msg_socket_destination", "address", "inet_addr_print", "always", None),
        _k("peer_port", "inet_diag_msg_socket_destination_port", "port", "inet_addr_print", "always", None),
        _k("timer", "inet_diag_msg_timer", "timer_name", "tcp_timer_print", "idiag_timer != 0"),
        _k("timer_expires", "inet_diag_msg_expires", "ms_timer", "tcp_timer_print",
           "with timer", None),
        _k("timer_retrans", "inet_diag_msg_retrans", "exact", "tcp_timer_print", "with timer", None),
        _k("uid", "inet_diag_msg_uid", "exact", "sock_details_print"),
        _k("inode", "inet_diag_msg_inode", "exact", "sock_details_print", "always", None),
        _k("cookie", "inet_diag_msg_socket_cookie", "hex_cookie", "sock_details_print",
           "always (sk:%llx of idiag_cookie[1]<<32 | idiag_cookie[0])", None),
        _k("fwmark", "mark", "alt_hex", "sock_details_print",
           "INET_DIAG_MARK present and != 0 (needs CAP_NET_ADMIN)"),
        _k("cgroup_path", "c_group", "cgroup", "sock_details_print / inet_show_sock",
           "INET_DIAG_CGROUP_ID present (5.8+); ss maps the id to a path via the host's "
           "cgroupfs, so it cannot be compared offline", None),
        _k("v6only", "skv6only", "exact", "inet_show_sock",
           "AF_INET6 socket with INET_DIAG_SKV6ONLY (LISTEN/CLOSE only)", None),
        _k("shutdown", "shutdown_state", "shutdown", "inet_show_sock",
           "INET_DIAG_SHUTDOWN present (all full sockets)", None),
        _k("tos", "type_of_service", "alt_hex", "inet_show_sock", "INET_DIAG_TOS present", None),
        _k("tclass", "traffic_class", "alt_hex", "inet_show_sock",
           "INET_DIAG_TCLASS present (AF_INET6 only)", None),
        _k("class_id", "class_id", "alt_hex", "inet_show_sock", "INET_DIAG_CLASS_ID present", None),
        # ---- second line: print_skmeminfo ----
        *[
            _k("skmem_" + letter, fld, "exact", "print_skmeminfo",
               "INET_DIAG_SKMEMINFO present" + (" with >= 8 words" if letter == "bl" else
                                                " with >= 9 words" if letter == "d" else ""),
               None)
            for letter, fld in SKMEM_FIELDS.items()
        ],
        *[
            _k("mem_" + letter, fld, "exact", "print_skmeminfo",
               "INET_DIAG_MEMINFO present and SKMEMINFO absent", None)
            for letter, fld in MEM_FIELDS.items()
        ],
        # ---- tcp_show_info / tcp_stats_print ----
        *[
            _k(word, "tcp_info_options", "option_bit", TSI,
               f"tcpi_options & {bit}",
               (lambda b: (lambda v, s: not (v & b)))(bit))
            for word, bit in OPTION_BITS.items()
        ],
        _k("cong", "congestion_algorithm_string", "string", TSP, "INET_DIAG_CONG present", None),
        _k("snd_wscale", "tcp_info_send_scale", "exact", TSP,
           "tcpi_options & TCPI_OPT_WSCALE (printed as wscale:snd,rcv)", None),
        _k("rcv_wscale", "tcp_info_rcv_scale", "exact", TSP,
           "tcpi_options & TCPI_OPT_WSCALE", None),
        _k("rto", "tcp_info_rto", "usec_as_ms_g", TSI,
           "tcpi_rto != 0 and != 3000000 (µs, printed in ms with %g)",
           lambda v, s: v in (0, 3_000_000)),
        _k("backoff", "tcp_info_backoff", "exact", TSP),
        _k("rtt", "tcp_info_rtt", "usec_as_ms_g", TSP, "tcpi_rtt != 0 (rtt:%g/%g ms)"),
        _k("rttvar", "tcp_info_rtt_var", "usec_as_ms_g", TSP, "with rtt", None),
        _k("ato", "tcp_info_ato", "usec_as_ms_g", TSP),
        _k("mss", "tcp_info_snd_mss", "exact", TSP),
        _k("pmtu", "tcp_info_pmtu", "exact", TSP),
        _k("rcvmss", "tcp_info_rcv_mss", "exact", TSP),
        _k("advmss", "tcp_info_adv_mss", "exact", TSP),
        _k("cwnd", "tcp_info_snd_cwnd", "exact", TSP),
        _k("ssthresh", "tcp_info_snd_ssthresh", "exact", TSI,
           "0 < tcpi_snd_ssthresh < 0xFFFF (the initial 0x7fffffff is hidden)",
           lambda v, s: v == 0 or v >= 0xFFFF),
        _k("bytes_sent", "tcp_info_bytes_sent", "exact", TSP),
        _k("bytes_retrans", "tcp_info_bytes_retrans", "exact", TSP),
        _k("bytes_acked", "tcp_info_bytes_acked", "exact", TSP),
        _k("bytes_received", "tcp_info_bytes_received", "exact", TSP),
        _k("segs_out", "tcp_info_segs_out", "exact", TSP),
        _k("segs_in", "tcp_info_segs_in", "exact", TSP),
        _k("data_segs_out", "tcp_info_data_segs_out", "exact", TSP),
        _k("data_segs_in", "tcp_info_data_segs_in", "exact", TSP),
        _k("dctcp_ce_state", "dctcp_info_ce_state", "exact", TSP,
           "INET_DIAG_DCTCPINFO present and dctcp_enabled", None),
        _k("dctcp_alpha", "dctcp_info_alpha", "exact", TSP, "as dctcp_ce_state", None),
        _k("dctcp_ab_ecn", "dctcp_info_ab_ecn", "exact", TSP, "as dctcp_ce_state", None),
        _k("dctcp_ab_tot", "dctcp_info_ab_tot", "exact", TSP, "as dctcp_ce_state", None),
        _k("dctcp_fallback", "dctcp_info_enabled", "flag_inverse", TSP,
           "INET_DIAG_DCTCPINFO present and dctcp_enabled == 0 (dctcp:fallback_mode)", None),
        _k("bbr_bw", ("bbr_info_bw_hi", "bbr_info_bw_lo"), "bbr_bw_bps", TSP,
           "INET_DIAG_BBRINFO present; bw = (bw_hi<<32 | bw_lo) B/s × 8", None),
        _k("bbr_mrtt", "bbr_info_min_rtt", "usec_as_ms_g", TSP, "INET_DIAG_BBRINFO present", None),
        _k("bbr_pacing_gain", "bbr_info_pacing_gain", "gain_256_g", TSP,
           "INET_DIAG_BBRINFO present and gain != 0 (gain/256, %g)", None),
        _k("bbr_cwnd_gain", "bbr_info_cwnd_gain", "gain_256_g", TSP,
           "INET_DIAG_BBRINFO present and gain != 0", None),
        _k("send_bps", ("tcp_info_snd_cwnd", "tcp_info_snd_mss", "tcp_info_rtt",
                        "vegas_info_enabled", "vegas_info_rtt"), "send_bps", TSI,
           "derived: cwnd*mss*8e6/rtt, rtt = vegas rtt when vegas is enabled with a valid "
           "rtt, else tcpi_rtt; printed when rtt, mss and cwnd are nonzero", None),
        _k("lastsnd", "tcp_info_last_data_sent", "exact", TSP),
        _k("lastrcv", "tcp_info_last_data_recv", "exact", TSP),
        _k("lastack", "tcp_info_last_ack_recv", "exact", TSP),
        _k("pacing_rate_bps", "tcp_info_pacing_rate", "bytes_per_s_as_bps", TSI,
           "tcpi_pacing_rate != 0 and != ~0 (B/s × 8)",
           lambda v, s: v in (0, U64_MAX)),
        _k("pacing_rate_max_bps", "tcp_info_max_pacing_rate", "bytes_per_s_as_bps", TSI,
           "with pacing_rate, when max != 0 and != ~0 (pacing_rate Xbps/Ybps)",
           lambda v, s: "pacing_rate_bps" not in s or v in (0, U64_MAX)),
        _k("delivery_rate_bps", "tcp_info_delivery_rate", "bytes_per_s_as_bps", TSI),
        _k("delivered", "tcp_info_delivered", "exact", TSP),
        _k("delivered_ce", "tcp_info_delivered_ce", "exact", TSP),
        _k("app_limited", "tcp_info_delivery_rate_app_limited", "flag", TSP,
           "tcpi_delivery_rate_app_limited != 0"),
        _k("busy_ms", "tcp_info_busy_time", "usec_as_ms_floor", TSP,
           "tcpi_busy_time != 0 (µs // 1000, so busy:0ms is possible)"),
        _k("rwnd_limited_ms", "tcp_info_rwnd_limited", "usec_as_ms_floor", TSP,
           "busy_time != 0 and rwnd_limited != 0",
           lambda v, s: v == 0 or "busy_ms" not in s),
        _k("rwnd_limited_pct", ("tcp_info_rwnd_limited", "tcp_info_busy_time"), "pct_of_busy",
           TSP, "with rwnd_limited_ms: %.1f of 100.0*limited/busy", None),
        _k("sndbuf_limited_ms", "tcp_info_sndbuf_limited", "usec_as_ms_floor", TSP,
           "busy_time != 0 and sndbuf_limited != 0",
           lambda v, s: v == 0 or "busy_ms" not in s),
        _k("sndbuf_limited_pct", ("tcp_info_sndbuf_limited", "tcp_info_busy_time"),
           "pct_of_busy", TSP, "with sndbuf_limited_ms", None),
        _k("unacked", "tcp_info_unacked", "exact", TSP,
           "tcpi_unacked != 0 (for LISTEN: the accept queue length)"),
        # NB: ss's retrans:a/b is tcpi_retrans (segments currently retransmitted, u32 @36)
        # / tcpi_total_retrans — NOT tcpi_retransmits (u8 @2, the RTO back-off count).
        _k("retrans", "tcp_info_retrans", "exact", TSP,
           "tcpi_retrans != 0 or tcpi_total_retrans != 0 (retrans:a/b)",
           lambda v, s: v == 0),
        _k("retrans_total", "tcp_info_total_retrans", "exact", TSP, "with retrans",
           lambda v, s: v == 0),
        _k("lost", "tcp_info_lost", "exact", TSP),
        _k("sacked", "tcp_info_sacked", "exact", TSP,
           "tcpi_sacked != 0 and state != LISTEN (LISTEN reuses it for the max backlog)",
           lambda v, s: v == 0 or s.get("state") == "LISTEN"),
        _k("dsack_dups", "tcp_info_dsack_dups", "exact", TSP),
        _k("fackets", "tcp_info_fackets", "exact", TSP),
        _k("reordering", "tcp_info_reordering", "exact", TSP, "tcpi_reordering != 3",
           lambda v, s: v == 3),
        _k("reord_seen", "tcp_info_reord_seen", "exact", TSP),
        _k("rcv_rtt", "tcp_info_rcv_rtt", "usec_as_ms_g", TSP),
        _k("rcv_space", "tcp_info_rcv_space", "exact", TSP),
        _k("rcv_ssthresh", "tcp_info_rcv_ssthresh", "exact", TSP),
        _k("notsent", "tcp_info_not_sent_bytes", "exact", TSP),
        _k("minrtt", "tcp_info_min_rtt", "usec_as_ms_g", TSI,
           "tcpi_min_rtt != 0 and != ~0U", lambda v, s: v in (0, U32_MAX)),
        _k("rcv_ooopack", "tcp_info_rcv_ooopack", "exact", TSP),
        _k("snd_wnd", "tcp_info_snd_wnd", "exact", TSP),
        _k("rcv_wnd", "tcp_info_rcv_wnd", "exact", TSP),
        _k("rehash", "tcp_info_rehash", "exact", TSP),
    ]
}

#: Keys of a parsed socket dict that are not tcp_info values.
SOCKET_KEYS = (
    "line_no", "netid", "state", "recv_q", "send_q", "local_addr", "local_port", "local_if",
    "peer_addr", "peer_port", "peer_if", "users", "timer", "timer_expires",
    "timer_expires_ms", "timer_retrans", "uid", "inode", "cookie", "fwmark", "cgroup_path",
    "v6only", "shutdown", "tos", "tclass", "class_id", "opts", "cong", "printed", "unknown",
)

# ss prints nothing about vegas itself: VEGASINFO only changes the rtt behind "send".
# Keys ss prints only from /proc/net/tcp (never from netlink): qack, bidir.

_FIELD_TO_KEY: dict[str, str] = {}
for _key in KEYS.values():
    for _f in _key.fields:
        _FIELD_TO_KEY.setdefault(_f, _key.key)


def _bbr_bw(v: Any) -> int:
    if isinstance(v, Mapping):
        return (int(v["bbr_info_bw_hi"]) << 32) | int(v["bbr_info_bw_lo"])
    return int(v)


def _send_bps(rec: Mapping[str, int]) -> float:
    rtt = float(rec["tcp_info_rtt"])
    vegas_rtt = rec.get("vegas_info_rtt", 0)
    if rec.get("vegas_info_enabled") and vegas_rtt and vegas_rtt != 0x7FFFFFFF:
        rtt = float(vegas_rtt)
    return float(rec["tcp_info_snd_cwnd"]) * float(rec["tcp_info_snd_mss"]) * 8000000.0 / rtt


def expected(field_name: str, printed: str | int | float) -> Expectation:
    """Predicate: "ss would print ``printed`` for this raw value of ``field_name``".

    ``field_name`` is a schema field (``tcp_info_rtt``) or a key of
    :data:`KEYS` (``rtt``). ``printed`` is the exact text ss printed for that
    key (``parsed["printed"][key]``). Rules (source function in ss.c):

    * ``exact`` — ``%u``/``%d``/``%llu``: ``str(v) == printed``.
    * ``usec_as_ms_g`` — rto, ato, rtt, rttvar, rcv_rtt, minrtt
      (tcp_show_info/tcp_stats_print), bbr mrtt: ``"%g" % (v/1000) == printed``;
      six significant digits, so 119 µs ⇔ ``0.119`` but 12345678 µs ⇔ ``12345.7``.
    * ``bytes_per_s_as_bps`` — pacing_rate, max pacing rate, delivery_rate
      (tcp_show_info + sprint_bw): ``"%.0f" % (float(v)*8.0)`` with ``-n``, else
      ``%.3g`` with k/M/G/T.
    * ``bbr_bw_bps`` — ``v`` is the u64 ``bw_hi<<32 | bw_lo`` (or pass
      ``{"bbr_info_bw_hi":…, "bbr_info_bw_lo":…}``), printed as ``v*8.0`` bps.
    * ``gain_256_g`` — bbr pacing/cwnd gain: ``"%g" % (v/256)``.
    * ``usec_as_ms_floor`` — busy, rwnd_limited, sndbuf_limited (tcp_stats_print):
      ``str(v // 1000)``.
    * ``pct_of_busy`` — the ``(P%)`` after rwnd/sndbuf_limited: pass
      ``(limited_us, busy_us)``; ``"%.1f" % (100.0*limited/busy)``.
    * ``send_bps`` — derived (tcp_show_info): pass the record mapping;
      ``"%.0f" % (cwnd*mss*8e6/rtt)`` with vegas's rtt when vegas is enabled.
    * ``alt_hex`` — tos/tclass/class_id/fwmark (``%#x``): int value equality.
    * ``hex_cookie`` — ``sk:%llx``: ``int(printed, 16) == cookie``.
    * ``ms_timer`` — timer expiry: :func:`print_ms_timer` (v) == printed.

    Raises:
        KeyError: unknown field or key; ValueError: a rule with no value check
        (addresses, cgroup paths, flags — compare those directly).
    """
    key = field_name if field_name in KEYS else _FIELD_TO_KEY.get(field_name)
    if key is None:
        raise KeyError(f"ss prints nothing for {field_name!r}")
    spec = KEYS[key]
    text = str(printed)
    rule = spec.rule
    if rule in _RENDERERS:
        match = _match_rendered(rule, text)
        if rule == "bbr_bw_bps":
            # also accept the (bw_hi, bw_lo) pair as a record mapping
            return Expectation(rule, text, lambda v: match(_bbr_bw(v)), _RENDERERS[rule])
        return Expectation(rule, text, match, _RENDERERS[rule])
    if rule == "pct_of_busy":
        return Expectation(
            rule, text, lambda pair: "%.1f" % (100.0 * pair[0] / pair[1]) == text
        )
    if rule == "send_bps":
        numeric = re.fullmatch(r"\d+", text) is not None
        return Expectation(
            rule, text, lambda rec: format_bw(_send_bps(rec), numeric) == text
        )
    raise ValueError(f"{key!r} ({rule}) has no value rule; compare it directly")


def expected_absent(field_name: str, sock: Mapping[str, Any] | None = None) -> Expectation:
    """Predicate for a key ss did NOT print: what the raw value must then be.

    E.g. ``expected_absent("tcp_info_reordering")(3)`` is True, and
    ``expected_absent("tcp_info_unacked")(0)`` is True, ``(1)`` False.

    Raises:
        ValueError: when absence says nothing about the field (e.g. rttvar).
    """
    key = field_name if field_name in KEYS else _FIELD_TO_KEY.get(field_name)
    if key is None:
        raise KeyError(f"ss prints nothing for {field_name!r}")
    spec = KEYS[key]
    if spec.absent is None:
        raise ValueError(f"absence of {key!r} says nothing ({spec.printed_when})")
    s = sock or {}
    return Expectation("absent:" + spec.printed_when, "", lambda v: spec.absent(int(v), s))


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------

_RECORD_START = re.compile(r"^(?:(?P<netid>[a-z_0-9]+)\s+)?(?P<state>[A-Z][A-Z0-9-]*)\s+\d+\s+\d+\s")
_SHUTDOWN = {"<->": 0, "--->": 1, "-->": 1, "<--": 2, "---": 3}


_TOKEN = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^\s"])+')


def _split_tokens(line: str) -> list[str]:
    """Split on whitespace outside double quotes (process names may hold spaces)."""
    return _TOKEN.findall(line)


def _split_addr(token: str) -> tuple[str, str | None, int | str]:
    """``[::1]:4001`` / ``127.0.0.1%lo:22`` / ``*:*`` → (addr, ifname, port)."""
    host, sep, port = token.rpartition(":")
    if not sep:
        raise ValueError(f"no ':port' in address {token!r}")
    ifname = None
    if host.startswith("["):
        close = host.find("]")
        if close < 0:
            raise ValueError(f"unbalanced '[' in {token!r}")
        rest = host[close + 1 :]
        host = host[1:close]
        if rest.startswith("%"):
            ifname = rest[1:]
    elif "%" in host:
        host, _, ifname = host.partition("%")
    if port == "*":
        port_v: int | str = 0
    elif port.isdigit():
        port_v = int(port)
    else:
        port_v = port  # a service name (ss without -n)
    return host, ifname, port_v


def _parse_users(body: str) -> list[dict[str, Any]]:
    users = []
    for m in re.finditer(r'\("((?:[^"\\]|\\.)*)",((?:[a-z_]+=[^,()]*,?)*)\)', body):
        entry: dict[str, Any] = {"name": m.group(1)}
        for kv in filter(None, m.group(2).split(",")):
            k, _, v = kv.partition("=")
            entry[k] = int(v) if v.isdigit() else v
        users.append(entry)
    return users


def _timer_ms_range(text: str) -> tuple[int, int] | None:
    """Inverse of print_ms_timer: the inclusive ms range a printed expiry covers."""
    if text == "":
        return (0, 0)
    m = re.fullmatch(r"(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d{3})ms)?", text)
    if not m:
        return None
    minutes = int(m.group(1) or 0)
    secs = int(m.group(2) or 0)
    msecs = int(m.group(4) or 0)
    base = minutes * 60_000 + secs * 1000 + msecs
    if minutes > 9:
        return (base, base + 59_999)
    if minutes or secs > 9:
        return (base, base + 999)
    return (base, base)


def _set(sock: dict[str, Any], key: str, text: str, value: Any = None) -> None:
    sock["printed"][key] = text
    sock[key] = _num(text) if value is None else value


def _parse_first_line(sock: dict[str, Any], tokens: list[str], has_netid: bool) -> None:
    i = 0
    if has_netid:
        sock["netid"] = tokens[0]
        i = 1
    sock["state"] = tokens[i]
    _set(sock, "recv_q", tokens[i + 1])
    _set(sock, "send_q", tokens[i + 2])
    for side, tok in (("local", tokens[i + 3]), ("peer", tokens[i + 4])):
        addr, ifname, port = _split_addr(tok)
        sock["printed"][side] = tok
        sock[side + "_addr"] = addr
        sock[side + "_port"] = port
        if ifname is not None:
            sock[side + "_if"] = ifname
    for tok in tokens[i + 5 :]:
        key, sep, val = tok.partition(":")
        if tok in _SHUTDOWN:
            sock["printed"]["shutdown"] = tok
            sock["shutdown"] = _SHUTDOWN[tok]
        elif not sep:
            sock["unknown"].append(tok)
        elif key == "users":
            sock["users"] = _parse_users(val)
        elif key == "timer":
            parts = val.strip("()").split(",")
            if len(parts) != 3:
                sock["unknown"].append(tok)
                continue
            sock["timer"] = parts[0]
            sock["printed"]["timer_expires"] = parts[1]
            sock["timer_expires"] = parts[1]
            sock["timer_expires_ms"] = _timer_ms_range(parts[1])
            _set(sock, "timer_retrans", parts[2])
        elif key in ("uid", "ino", "v6only"):
            _set(sock, "inode" if key == "ino" else key, val)
        elif key == "sk":
            sock["printed"]["cookie"] = val
            sock["cookie"] = int(val, 16)
        elif key == "cgroup":
            # printed twice (sock_details_print and --cgroup); both from CGROUP_ID
            if "cgroup_path" in sock and sock["cgroup_path"] != val:
                sock["unknown"].append(tok)
            sock["cgroup_path"] = val
        elif key in ("tos", "tclass", "class_id", "fwmark"):
            sock["printed"][key] = val
            sock[key] = int(val, 0)
        else:
            sock["unknown"].append(tok)


_RATE_KEYS = {"send": "send_bps", "pacing_rate": "pacing_rate_bps", "delivery_rate": "delivery_rate_bps"}
_LIMITED = re.compile(r"(\d+)ms\(([\d.]+)%\)")
_INFO_INT_KEYS = {
    "backoff", "mss", "pmtu", "rcvmss", "advmss", "cwnd", "ssthresh", "bytes_sent",
    "bytes_retrans", "bytes_acked", "bytes_received", "segs_out", "segs_in",
    "data_segs_out", "data_segs_in", "lastsnd", "lastrcv", "lastack", "delivered",
    "delivered_ce", "unacked", "lost", "sacked", "dsack_dups", "fackets", "reordering",
    "reord_seen", "rcv_space", "rcv_ssthresh", "notsent", "rcv_ooopack", "snd_wnd",
    "rcv_wnd", "rehash", "qack",
}
_INFO_G_KEYS = {"rto", "ato", "rcv_rtt", "minrtt"}


def _parse_paren_kv(body: str) -> list[tuple[str, str]]:
    return [tuple(p.split(":", 1)) for p in body.split(",") if ":" in p]  # type: ignore[misc]


def _parse_info_line(sock: dict[str, Any], tokens: list[str]) -> None:
    it = iter(range(len(tokens)))
    for i in it:
        tok = tokens[i]
        key, sep, val = tok.partition(":")
        if tok in _RATE_KEYS:
            if i + 1 >= len(tokens):
                sock["unknown"].append(tok)
                continue
            next(it)
            rate = tokens[i + 1]
            main, _, extra = rate.partition("/")
            name = _RATE_KEYS[tok]
            sock["printed"][name] = main[:-3] if main.endswith("bps") else main
            sock[name] = _parse_bw(main)
            if extra:  # pacing_rate Xbps/Ybps: the max pacing rate
                sock["printed"]["pacing_rate_max_bps"] = extra[:-3]
                sock["pacing_rate_max_bps"] = _parse_bw(extra)
        elif tok in OPTION_BITS:
            sock["opts"].append(tok)
        elif tok == "app_limited":
            sock["printed"]["app_limited"] = tok
            sock["app_limited"] = True
        elif tok == "bidir":
            sock["unknown"].append(tok)
        elif not sep:
            if "cong" not in sock:
                sock["cong"] = tok
            else:
                sock["unknown"].append(tok)
        elif key == "skmem" or key == "mem":
            for part in val.strip("()").split(","):
                m = re.fullmatch(r"([a-z]+)(\d+)", part)
                if not m:
                    sock["unknown"].append(tok)
                    break
                _set(sock, f"{key}_{m.group(1)}", m.group(2))
        elif key == "wscale":
            snd, _, rcv = val.partition(",")
            _set(sock, "snd_wscale", snd)
            _set(sock, "rcv_wscale", rcv)
        elif key == "rtt":
            rtt, _, rttvar = val.partition("/")
            _set(sock, "rtt", rtt)
            _set(sock, "rttvar", rttvar)
        elif key == "retrans":
            a, _, b = val.partition("/")
            _set(sock, "retrans", a)
            _set(sock, "retrans_total", b)
        elif key == "busy":
            _set(sock, "busy_ms", val.removesuffix("ms"))
        elif key in ("rwnd_limited", "sndbuf_limited"):
            m = _LIMITED.fullmatch(val)
            if not m:
                sock["unknown"].append(tok)
                continue
            _set(sock, key + "_ms", m.group(1))
            _set(sock, key + "_pct", m.group(2))
        elif key == "bbr":
            for k, v in _parse_paren_kv(val.strip("()")):
                if k == "bw":
                    sock["printed"]["bbr_bw"] = v[:-3] if v.endswith("bps") else v
                    sock["bbr_bw"] = _parse_bw(v)
                else:
                    _set(sock, "bbr_" + k, v)
        elif key == "dctcp":
            if val == "fallback_mode":
                sock["dctcp_fallback"] = True
            else:
                sock["dctcp_fallback"] = False
                for k, v in _parse_paren_kv(val.strip("()")):
                    _set(sock, "dctcp_" + k, v)
        elif key in _INFO_INT_KEYS or key in _INFO_G_KEYS:
            _set(sock, key, val)
        else:
            sock["unknown"].append(tok)


def _new_socket(line_no: int) -> dict[str, Any]:
    return {"line_no": line_no, "printed": {}, "opts": [], "unknown": [], "app_limited": False}


def parse_ss_text(text: str) -> list[dict[str, Any]]:
    """Parse ``ss -tia``-style text into one dict per socket, in print order.

    Each dict has the keys of :data:`SOCKET_KEYS` that ss printed (address keys
    always) plus the :data:`KEYS` keys it printed, as numbers exactly as
    printed (int, or float for ``%g`` values such as ``rtt``), and
    ``printed[key]`` with the exact text of every scalar. ``opts`` lists the
    option words (ts, sack, ecn, ecnseen, fastopen); ``unknown`` lists tokens
    this parser does not know (golden tests should expect it empty).

    Line rules: a socket starts on a line ``STATE Recv-Q Send-Q local peer …``;
    tab-indented lines that follow are its tcp_info/skmem details; any other
    line is a wrapped continuation of the previous line.

    Raises:
        SsTextError: no ss header line, or a socket line that cannot be parsed.
    """
    if not text.strip("\0 \t\r\n"):
        raise SsTextError("no ss output: text is empty or all NUL bytes")
    lines = text.splitlines()
    if not lines or not lines[0].lstrip().startswith(("State", "Netid")):
        raise SsTextError("line 1: expected an ss header starting with 'State' or 'Netid'")
    has_netid = lines[0].lstrip().startswith("Netid")

    # Group into (line_no, first_line, [detail lines]).
    groups: list[tuple[int, list[str], list[str]]] = []
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if _RECORD_START.match(line):
            groups.append((no, [line], []))
        elif not groups:
            raise SsTextError(f"line {no}: text before the first socket line: {line[:60]!r}")
        elif line[:1].isspace():
            groups[-1][2].append(line)
        else:  # a wrapped line: continues whatever came last
            target = groups[-1][2] if groups[-1][2] else groups[-1][1]
            target.append(line)

    sockets = []
    for no, first, details in groups:
        sock = _new_socket(no)
        try:
            _parse_first_line(sock, _split_tokens(" ".join(first)), has_netid)
            _parse_info_line(sock, _split_tokens(" ".join(details)))
        except (ValueError, IndexError) as e:
            raise SsTextError(f"line {no}: {e}") from e
        sockets.append(sock)
    return sockets


def parse_ss_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and parse an ss capture file; errors name the file.

    Raises:
        SsTextError: as :func:`parse_ss_text`, prefixed with the path.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return parse_ss_text(raw.decode("utf-8", errors="replace"))
    except SsTextError as e:
        raise SsTextError(f"{os.fspath(path)}: {e}") from e


# --------------------------------------------------------------------------------------
# Whole-socket comparison for golden tests
# --------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    sock: Mapping[str, Any]
    rec: Mapping[str, Any]
    problems: list[str] = field(default_factory=list)

    def bad(self, key: str, msg: str) -> None:
        self.problems.append(f"{key}: {msg}")


_NOT_COMPARABLE = {"cgroup_path", "local_if", "peer_if", "users", "cong_enum"}


def compare_socket(sock: Mapping[str, Any], rec: Mapping[str, Any]) -> list[str]:
    """Check a decoded record against one parsed ss socket; return the mismatches.

    ``rec`` maps schema field names to decoded raw values (addresses as bytes;
    ``skv6only``, ``mark``, ``shutdown_state`` where decoded). A field missing
    from ``rec`` is "not reported" (e.g. beyond ``tcp_info_len``): fine when ss
    did not print the key, a mismatch when it did. Not compared: cgroup paths
    (ss resolves the id through the host's cgroupfs), interface names,
    ``users:`` (from /proc), TIME-WAIT details ss never prints.
    """
    c = _Ctx(sock, rec)
    printed = sock["printed"]

    state = STATE_NUMBERS.get(sock["state"])
    if "inet_diag_msg_state" in rec and state is not None and rec["inet_diag_msg_state"] != state:
        c.bad("state", f"ss {sock['state']} vs decoded {rec['inet_diag_msg_state']}")

    fam = rec.get("inet_diag_msg_family")
    if fam is not None and fam not in (socket.AF_INET, socket.AF_INET6):
        c.bad("family", f"decoded family {fam} is neither AF_INET nor AF_INET6")
    elif fam is not None:
        v6only = bool(sock.get("v6only", rec.get("skv6only", 0)))
        for side, fld in (("local", "inet_diag_msg_socket_source"),
                          ("peer", "inet_diag_msg_socket_destination")):
            if fld in rec:
                try:
                    want = format_ss_addr(fam, rec[fld], v6only)
                except ValueError as e:
                    c.bad(side + "_addr", f"decoded address {bytes(rec[fld]).hex()}: {e}")
                    continue
                if sock[side + "_addr"] != want:
                    c.bad(side + "_addr", f"ss {sock[side + '_addr']!r} vs decoded {want!r}")
    for side, fld in (("local_port", "inet_diag_msg_socket_source_port"),
                      ("peer_port", "inet_diag_msg_socket_destination_port")):
        if fld in rec and isinstance(sock[side], int) and sock[side] != rec[fld]:
            c.bad(side, f"ss {sock[side]} vs decoded {rec[fld]}")

    if "inet_diag_msg_timer" in rec:
        t = rec["inet_diag_msg_timer"]
        if "timer" in sock:
            want = TIMER_NUMBERS.get(sock["timer"])
            if (want is None and t <= 4) or (want is not None and want != t):
                c.bad("timer", f"ss {sock['timer']} vs decoded {t}")
        elif t != 0:
            c.bad("timer", f"ss printed no timer but decoded idiag_timer={t}")

    ifindex = rec.get("inet_diag_msg_socket_interface")
    if ifindex is not None and ("local_if" in sock) != (ifindex != 0):
        c.bad("local_if", f"ss {sock.get('local_if')!r} vs decoded ifindex {ifindex}")

    cong = rec.get("congestion_algorithm_string")
    if cong is not None and sock.get("cong", "") != cong:
        c.bad("cong", f"ss {sock.get('cong')!r} vs decoded {cong!r}")

    for key, spec in KEYS.items():
        rule = spec.rule
        if key in _NOT_COMPARABLE or rule in ("address", "port", "ifname", "state_name",
                                               "timer_name", "cgroup", "string"):
            continue
        if rule == "option_bit":
            v = rec.get("tcp_info_options")
            if v is None:
                continue
            has = key in sock["opts"]
            if has != bool(v & OPTION_BITS[key]):
                c.bad(key, f"ss {'printed' if has else 'omitted'} it, tcpi_options=0x{v:x}")
            continue
        if rule == "flag":
            v = rec.get(spec.fields[0])
            if v is not None and bool(sock.get(key)) != bool(v):
                c.bad(key, f"ss {bool(sock.get(key))} vs decoded {v}")
            continue
        if rule == "flag_inverse":
            if key in sock and spec.fields[0] in rec and sock[key] == bool(rec[spec.fields[0]]):
                c.bad(key, f"ss fallback={sock[key]} vs dctcp_enabled={rec[spec.fields[0]]}")
            continue
        if rule == "shutdown":
            if key in sock and spec.fields[0] in rec and sock[key] != rec[spec.fields[0]]:
                c.bad(key, f"ss {printed[key]} vs decoded {rec[spec.fields[0]]}")
            continue
        if key in printed:
            text = printed.get(key, "")
            if rule == "send_bps":
                needed = ("tcp_info_snd_cwnd", "tcp_info_snd_mss", "tcp_info_rtt")
                if all(f in rec for f in needed) and not expected(key, text)(rec):
                    c.bad(key, f"ss {text} vs derived {format_bw(_send_bps(rec))}")
                continue
            if rule == "pct_of_busy":
                lim, busy = spec.fields
                if lim in rec and busy in rec and not expected(key, text)((rec[lim], rec[busy])):
                    c.bad(key, f"ss {text}% vs decoded {rec[lim]}/{rec[busy]}")
                continue
            if rule == "bbr_bw_bps":
                if all(f in rec for f in spec.fields):
                    if not expected(key, text)(rec):
                        c.bad(key, f"ss {text} vs decoded {_bbr_bw(rec)} B/s")
                else:
                    c.bad(key, "ss printed it but BBRINFO was not decoded")
                continue
            fld = spec.fields[0]
            if fld not in rec:
                if fld not in ("c_group", "skv6only", "mark"):
                    c.bad(key, f"ss printed {text!r} but {fld} is absent from the record")
                continue
            exp = expected(key, text)
            if not exp(rec[fld]):
                shown = exp.render(rec[fld]) if exp.render else rec[fld]
                c.bad(key, f"ss {text!r} vs decoded {fld}={rec[fld]} (would print {shown!r})")
        elif spec.absent is not None and len(spec.fields) == 1:
            fld = spec.fields[0]
            if fld in rec and not spec.absent(int(rec[fld]), sock):
                # ss only prints tcp_info keys when INET_DIAG_INFO was present
                if fld.startswith("tcp_info_") and "tcp_info_state" not in rec:
                    continue
                c.bad(key, f"ss omitted it ({spec.printed_when}) but decoded {fld}={rec[fld]}")
    return c.problems


def keys_for_fields(fields: Iterable[str]) -> dict[str, str]:
    """Map schema field names to the ss key that shows them (missing: ss never prints it)."""
    return {f: _FIELD_TO_KEY[f] for f in fields if f in _FIELD_TO_KEY}
