"""The page's filters: read from the request's query string, checked, and turned into a WHERE
clause of fixed text plus bound parameters.

What the user typed only ever reaches ClickHouse as a parameter value (``{name:Type}``,
bound by ClickHouse); the SQL text is chosen from a fixed set by which filters are present.
A bad value is a ``BadRequest`` naming the parameter and what it wants (the server's 400).
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from ..errors import ConfigError

# The remote address as text: the record holds its raw bytes (4 for IPv4, 16 for IPv6).
REMOTE = ("if(length(inet_diag_msg_socket_destination) = 4, "
          "IPv4NumToString(reinterpretAsUInt32(reverse(inet_diag_msg_socket_destination))), "
          "IPv6NumToString(toFixedString(inet_diag_msg_socket_destination, 16)))")
# The remote /24 (IPv4) or /48 (IPv6) of the prefix charts, as a cheap grouping key (its first
# 3 or 6 bytes), and that key as text: group by the key, format only the rows shown.
PREFIX_KEY = ("if(length(inet_diag_msg_socket_destination) = 4, substring(inet_diag_msg_socket_destination, 1, 3), "
              "substring(inet_diag_msg_socket_destination, 1, 6))")
PREFIX_TEXT = ("if(length(prefix_key) = 3, concat(IPv4NumToString(reinterpretAsUInt32(reverse(concat(prefix_key, "
               "'\\0')))), '/24'), concat(IPv6NumToString(toFixedString(concat(prefix_key, repeat('\\0', 10)), 16)), "
               "'/48'))")

RANGES = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
DEFAULT_RANGE = "1h"
MAX_SPAN_S = 31 * 86400
MAX_TEXT = 256  # location, namespace: longer is no name of ours
POINTS = 240  # buckets per time chart, about
STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
TCP_STATES = {"ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECV": 3, "FIN_WAIT1": 4, "FIN_WAIT2": 5, "TIME_WAIT": 6,
              "CLOSE": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10, "CLOSING": 11, "NEW_SYN_RECV": 12}
STATE_NAMES = {v: k for k, v in TCP_STATES.items()}
KNOWN = frozenset({"range", "from", "to", "location", "netns", "state", "prefix", "cookie"})


class BadRequest(ConfigError):
    """A parameter the page cannot use; the message names it and says what it wants."""


@dataclass(frozen=True)
class Filters:
    t0: int  # seconds since the epoch, inclusive
    t1: int  # exclusive
    location: str | None = None
    netns: str | None = None  # a namespace name or a container (pod) name
    state: int | None = None
    prefix: str | None = None  # normalised CIDR
    cookie: int | None = None

    @property
    def step_s(self) -> int:
        """Bucket width of the time charts: about ``POINTS`` buckets over the range."""
        want = (self.t1 - self.t0) / POINTS
        return next((s for s in STEPS_S if s >= want), STEPS_S[-1])

    def where(self) -> str:
        """The WHERE clause (without the keyword): fixed text, one placeholder per filter set."""
        parts = ["timestamp_ns >= {t0:Int64}", "timestamp_ns < {t1:Int64}"]
        if self.location is not None:
            parts.append("location = {location:String}")
        if self.netns is not None:
            parts.append("(netns = {netns:String} OR container_name = {netns:String})")
        if self.state is not None:
            parts.append("inet_diag_msg_state = {state:UInt8}")
        if self.prefix is not None:
            parts.append(f"isIPAddressInRange({REMOTE}, {{prefix:String}})")
        return " AND ".join(parts)

    def params(self) -> dict[str, str]:
        """The values of ``where()``'s placeholders (and the bucket width), as text."""
        p = {"t0": str(self.t0 * 10**9), "t1": str(self.t1 * 10**9), "step_s": str(self.step_s),
             "inner_s": str(min(self.step_s, 60))}  # sockets by state: distinct per minute (or finer bucket)
        for name in ("location", "netns", "state", "prefix", "cookie"):
            value = getattr(self, name)
            if value is not None:
                p[name] = str(value)
        return p


def parse(query: dict[str, list[str]], now: float | None = None) -> Filters:
    """Filters from a parsed query string (``urllib.parse.parse_qs``).

    Raises:
        BadRequest: an unknown parameter, one given twice, or a value out of its range.
    """
    for name, values in query.items():
        if name not in KNOWN:
            raise BadRequest(f"unknown parameter {name[:40]!r}; known: {', '.join(sorted(KNOWN))}")
        if len(values) != 1:
            raise BadRequest(f"parameter {name} given {len(values)} times; give it once")
    q = {k: v[0] for k, v in query.items()}
    t0, t1 = _time_range(q, time.time() if now is None else now)
    return Filters(t0=t0, t1=t1, location=_text(q, "location"), netns=_text(q, "netns"), state=_state(q.get("state")),
                   prefix=_prefix(q.get("prefix")), cookie=_cookie(q.get("cookie")))


def _time_range(q: dict[str, str], now: float) -> tuple[int, int]:
    if "from" in q or "to" in q:
        if "range" in q:
            raise BadRequest("give either range or from/to, not both")
        t1 = _epoch(q, "to") if "to" in q else math.ceil(now)
        t0 = _epoch(q, "from") if "from" in q else t1 - RANGES[DEFAULT_RANGE]
    else:
        name = q.get("range", DEFAULT_RANGE)
        if name not in RANGES:
            raise BadRequest(f"range {name[:20]!r}: one of {', '.join(RANGES)}, or from/to in epoch seconds")
        t1 = math.ceil(now)
        t0 = t1 - RANGES[name]
    if t1 <= t0:
        raise BadRequest(f"from ({t0}) must be before to ({t1})")
    if t1 - t0 > MAX_SPAN_S:
        raise BadRequest(f"the time range spans {(t1 - t0) / 86400:.1f} days; at most {MAX_SPAN_S // 86400}")
    return t0, t1


def _epoch(q: dict[str, str], name: str) -> int:
    text = q[name]
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise BadRequest(f"{name} {text[:20]!r}: want seconds since 1970 (an integer)")
    return int(text)


def _text(q: dict[str, str], name: str) -> str | None:
    value = q.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name}: at most {MAX_TEXT} characters")
    return value


def _state(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if text.upper() in TCP_STATES:
        return TCP_STATES[text.upper()]
    if text.isascii() and text.isdigit() and int(text) in STATE_NAMES:
        return int(text)
    raise BadRequest(f"state {text[:20]!r}: a TCP state name ({', '.join(TCP_STATES)}) or its number 1-12")


def _prefix(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise BadRequest(f"prefix {text[:60]!r}: want an address or CIDR prefix, e.g. 192.0.2.0/24 or 2001:db8::/32") from None


def _cookie(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and int(text) < 2**64):
        raise BadRequest(f"cookie {text[:30]!r}: want a socket cookie (an unsigned 64-bit integer)")
    return int(text)
