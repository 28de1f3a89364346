"""``--emit changed``: send a socket's record only when something that matters moved.

Most sockets of a busy host are idle between two polls: their counters read the same, and a
fleet that stores each of them every poll stores mostly repeats. ``ChangeFilter`` keeps, per
socket cookie, the values of ``WATCHED`` in its last sent record (numpy arrays sorted by
cookie: no per-socket Python), and per poll keeps a record when, in this order of reasons:

* ``new``: the cookie was not in the previous poll (a new socket, or the daemon just started);
* ``state``: the TCP state or the congestion-control state changed (a closing socket's
  FIN_WAIT/TIME_WAIT/CLOSE is one: the last record of a socket before it vanishes);
* ``retrans``: total_retrans grew;
* ``rtt``: its RTT is above ``rtt_above_us`` (0: rule off);
* ``changed``: any other watched counter moved (bytes, segments);
* ``keyframe``: one poll in ``keyframe_every``, at a phase set by the cookie, so an idle
  socket still shows up (its existence, queue and window) and the polls share the load.

Everything else is ``unchanged`` and left out. Deterministic: the same sockets and values
give the same decision. The rollups' per-poll deltas stay exact (a skipped socket's counters
did not move), but their quantiles then describe kept samples, which lean to busy sockets.
Sockets that vanished since the last poll are counted (``vanished``); they have no record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

WATCHED = ("inet_diag_msg_state", "tcp_info_ca_state", "tcp_info_total_retrans", "tcp_info_bytes_acked",
           "tcp_info_bytes_received", "tcp_info_segs_out", "tcp_info_segs_in", "tcp_info_lost")
_STATE, _CA_STATE, _RETRANS = 0, 1, 2
REASONS = ("new", "state", "retrans", "rtt", "changed", "keyframe")
DECISIONS = (*REASONS, "unchanged")
MODES = ("all", "changed")
_COOKIE_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads consecutive cookies


@dataclass
class EmitStats:
    """Records by decision: totals since start, and the last poll's."""

    total: dict = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    last_poll: dict = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    vanished: int = 0  # sockets of the previous poll absent from this one, total


class ChangeFilter:
    def __init__(self, keyframe_every: int = 60, rtt_above_us: int = 0):
        if int(keyframe_every) != keyframe_every or keyframe_every < 1:
            raise ConfigError(f"--keyframe-every is a number of polls >= 1, not {keyframe_every!r}")
        if rtt_above_us < 0:
            raise ConfigError(f"--keep-rtt-above is microseconds >= 0 (0: off), not {rtt_above_us!r}")
        self.keyframe_every = int(keyframe_every)
        self.rtt_above_us = int(rtt_above_us)
        self.stats = EmitStats()
        self._cookies = np.empty(0, dtype=np.uint64)  # sorted
        self._values = np.empty((0, len(WATCHED)), dtype=np.uint64)

    def apply(self, dumps, poll_id: int) -> None:
        """Drop the records not worth sending from each dump (compacting its C array in place)
        and remember this poll's values for the next."""
        last = dict.fromkeys(DECISIONS, 0)
        seen_cookies, seen_values = [], []
        for d in dumps:
            if not d.count:
                continue
            arr = d.array()
            cookies = arr["inet_diag_msg_socket_cookie"].astype(np.uint64)
            values = np.stack([arr[f].astype(np.uint64) for f in WATCHED], axis=1)
            keep = self._decide(arr, cookies, values, poll_id, last)
            seen_cookies.append(cookies)
            seen_values.append(values)  # a skipped socket's values are those last sent
            kept = int(np.count_nonzero(keep))
            if kept < d.count:
                arr[:kept] = arr[keep]
                d.count = kept
                d.encoded = None
        cookies = np.concatenate(seen_cookies) if seen_cookies else np.empty(0, dtype=np.uint64)
        values = np.concatenate(seen_values) if seen_values else np.empty((0, len(WATCHED)), dtype=np.uint64)
        order = np.argsort(cookies, kind="stable")
        cookies, values = cookies[order], values[order]
        self.stats.vanished += int(self._cookies.size - np.count_nonzero(np.isin(self._cookies, cookies,
                                                                                 assume_unique=True)))
        self._cookies, self._values = cookies, values
        self.stats.last_poll = last
        for k, v in last.items():
            self.stats.total[k] += v

    def _decide(self, arr, cookies, values, poll_id: int, counts: dict) -> np.ndarray:
        n = cookies.size
        if self._cookies.size:
            idx = np.minimum(np.searchsorted(self._cookies, cookies), self._cookies.size - 1)
            found = self._cookies[idx] == cookies
            prev = self._values[idx]
        else:
            found = np.zeros(n, dtype=bool)
            prev = values
        moved = values != prev
        rules = {
            "new": ~found,
            "state": found & (moved[:, _STATE] | moved[:, _CA_STATE]),
            "retrans": found & (values[:, _RETRANS] > prev[:, _RETRANS]),
            "rtt": arr["tcp_info_rtt"] > self.rtt_above_us if self.rtt_above_us else np.zeros(n, dtype=bool),
            "changed": found & moved.any(axis=1),
            "keyframe": ((cookies * _COOKIE_MIX >> np.uint64(32)) + np.uint64(poll_id))
            % np.uint64(self.keyframe_every) == 0,
        }
        keep = np.zeros(n, dtype=bool)
        for reason in REASONS:  # each kept record counts once, under its first reason
            first = rules[reason] & ~keep
            counts[reason] += int(np.count_nonzero(first))
            keep |= first
        counts["unchanged"] += n - int(np.count_nonzero(keep))
        return keep
