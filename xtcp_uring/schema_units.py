"""The unit of every record field, for the ClickHouse column COMMENTs (tools/gen_schema.py).

The .proto states the kernel's units in its header ("*_rtt*, rto, ato in microseconds, last_* in
milliseconds, rates in bytes per second, windows in bytes") and, for single fields, in their
trailing comments; this module writes those rules down per field name, the first match winning,
so every column gets one. ``tests`` check that every field of the .proto has a unit. Loaded by
path from tools/gen_schema.py: imports nothing from the package.
"""

from __future__ import annotations

import re

__all__ = ["RULES", "unit_of"]

US, MS, BYTES, RATE, SEGS, COUNT, TEXT = ("microseconds", "milliseconds", "bytes", "bytes per second",
                                         "segments", "count", "text")

# (regular expression matched against the whole field name, unit); the first match wins.
RULES: tuple[tuple[str, str], ...] = (
    # identity and labels
    (r"schema_version", "version number"),
    (r"timestamp_ns|event_time_ns", "nanoseconds since the Unix epoch (UTC)"),
    (r"event", "what took the record (EVENT_POLL: a poll, EVENT_CLOSE: the kernel broadcast when the socket was destroyed)"),
    (r"poll_id|record_counter", COUNT),
    (r"netns_inode|inet_diag_msg_inode", "inode number"),
    (r"netns_cookie|inet_diag_msg_socket_cookie|nsid|netlinker_id|class_id", "id"),
    (r"netns_pid", "process id"),
    (r"socket_fd", "file descriptor"),
    (r"dump_family|inet_diag_msg_family", "address family (2 = AF_INET, 10 = AF_INET6)"),
    (r"uplink\d_nic_speed_mbps", "megabits per second"),
    (r"uplink\d_nic_pci_(vendor|device)", "PCI id"),
    (r"daemon_version|hostname|location|kernel_release|netns|container_\w+|pod_\w+|label|tag|uplink\d_\w+"
     r"|congestion_algorithm_string", TEXT),
    # struct inet_diag_msg
    (r"inet_diag_msg_state|tcp_info_state", "TCP state (1 = ESTABLISHED ... 10 = LISTEN, 12 = NEW_SYN_RECV)"),
    (r"inet_diag_msg_timer", "timer kind (0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero window probe)"),
    (r"inet_diag_msg_retrans", COUNT),
    (r"inet_diag_msg_socket_(source|destination)_port", "port number"),
    (r"inet_diag_msg_socket_(source|destination)", "address bytes, network order: 4 (IPv4) or 16 (IPv6)"),
    (r"inet_diag_msg_socket_interface", "interface index (0: not bound)"),
    (r"inet_diag_msg_socket_(dest|next_hop)_asn", "AS number"),
    (r"inet_diag_msg_expires", MS),
    (r"inet_diag_msg_[rw]queue", BYTES),
    (r"inet_diag_msg_uid", "user id"),
    (r"mem_info_\w+", BYTES),
    # tcp_info
    (r"tcp_info_ca_state", "congestion avoidance state (0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss)"),
    (r"tcp_info_(options|options2)", "bitmask"),
    (r"tcp_info_(send|rcv)_scale", "window scale shift, bits"),
    (r"tcp_info_(delivery_rate_app_limited|fast_open_client_failed)", "flag (0 or 1)"),
    (r"tcp_info_(rto|ato|rtt|rtt_var|rcv_rtt|min_rtt|busy_time|rwnd_limited|sndbuf_limited)", US),
    (r"tcp_info_last_\w+|tcp_info_total_rto_time", MS),
    (r"tcp_info_(snd_mss|rcv_mss|adv_mss|pmtu|rcv_ssthresh|rcv_space|not_sent_bytes|snd_wnd|rcv_wnd|len)", BYTES),
    (r"tcp_info_(pacing_rate|max_pacing_rate|delivery_rate)", RATE),
    (r"tcp_info_bytes_\w+|tcp_info_\w+_e[01]_bytes|tcp_info_\w+_ce_bytes", BYTES),
    (r"tcp_info_(unacked|sacked|lost|retrans|fackets|snd_ssthresh|snd_cwnd|reordering|total_retrans|segs_out"
     r"|segs_in|data_segs_in|data_segs_out|delivered|delivered_ce)", SEGS),
    (r"tcp_info_(retransmits|probes|backoff|dsack_dups|reord_seen|rehash|total_rto|total_rto_recoveries)", COUNT),
    (r"tcp_info_(rcv_ooopack|received_ce)", "packets"),
    (r"tcp_info_(accecn_fail_mode|accecn_opt_seen|ecn_mode)", "mode bits"),
    # other attributes
    (r"congestion_algorithm_enum", "enum"),
    (r"type_of_service|traffic_class", "header byte (DSCP and ECN bits)"),
    (r"sk_mem_info_drops", "packets"),
    (r"sk_mem_info_\w+", BYTES),
    (r"shutdown_state", "bitmask (1 = receive shut down, 2 = send shut down)"),
    (r"(vegas|dctcp)_info_enabled|skv6only", "flag (0 or 1)"),
    (r"vegas_info_rtt_cnt|md5sig_keys", COUNT),
    (r"vegas_info_(rtt|min_rtt)|bbr_info_min_rtt", US),
    (r"dctcp_info_ce_state", "state"),
    (r"dctcp_info_alpha", "fraction of 1024"),
    (r"dctcp_info_ab_(ecn|tot)", BYTES),
    (r"bbr_info_bw_(lo|hi)", "bytes per second (low / high 32 bits of one 64-bit value)"),
    (r"bbr_info_(pacing|cwnd)_gain", "gain, fixed point (256 = 1.0)"),
    (r"sock_opt|attributes_present", "bitmask"),
    (r"c_group", "cgroup v2 id"),
    (r"protocol", "IP protocol number (6 = TCP)"),
    (r"mark", "firewall mark"),
)
_COMPILED = tuple((re.compile(pattern + r"\Z"), unit) for pattern, unit in RULES)


def unit_of(name: str) -> str | None:
    """The unit of a field, None when no rule names it (a new field needs a rule)."""
    for pattern, unit in _COMPILED:
        if pattern.match(name):
            return unit
    return None
