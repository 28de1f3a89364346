"""A slow, plain-`struct` decoder of SOCK_DIAG messages: the test oracle for the C decoder.

Written independently from csrc/nl_decode.c, straight from the kernel's structs (docs/kernel.md), so the two can
disagree. Test code only: never imported by the package.
"""

from __future__ import annotations

import socket
import struct

# (offset, struct format, field) of struct tcp_info (docs/kernel.md); bitfield bytes 6/7 below.
TCP_INFO_FIELDS = [
    (0, "B", "tcp_info_state"), (1, "B", "tcp_info_ca_state"), (2, "B", "tcp_info_retransmits"),
    (3, "B", "tcp_info_probes"), (4, "B", "tcp_info_backoff"), (5, "B", "tcp_info_options"),
    (8, "I", "tcp_info_rto"), (12, "I", "tcp_info_ato"), (16, "I", "tcp_info_snd_mss"),
    (20, "I", "tcp_info_rcv_mss"), (24, "I", "tcp_info_unacked"), (28, "I", "tcp_info_sacked"),
    (32, "I", "tcp_info_lost"), (36, "I", "tcp_info_retrans"), (40, "I", "tcp_info_fackets"),
    (44, "I", "tcp_info_last_data_sent"), (48, "I", "tcp_info_last_ack_sent"),
    (52, "I", "tcp_info_last_data_recv"), (56, "I", "tcp_info_last_ack_recv"),
    (60, "I", "tcp_info_pmtu"), (64, "I", "tcp_info_rcv_ssthresh"), (68, "I", "tcp_info_rtt"),
    (72, "I", "tcp_info_rtt_var"), (76, "I", "tcp_info_snd_ssthresh"), (80, "I", "tcp_info_snd_cwnd"),
    (84, "I", "tcp_info_adv_mss"), (88, "I", "tcp_info_reordering"), (92, "I", "tcp_info_rcv_rtt"),
    (96, "I", "tcp_info_rcv_space"), (100, "I", "tcp_info_total_retrans"),
    (104, "Q", "tcp_info_pacing_rate"), (112, "Q", "tcp_info_max_pacing_rate"),
    (120, "Q", "tcp_info_bytes_acked"), (128, "Q", "tcp_info_bytes_received"),
    (136, "I", "tcp_info_segs_out"), (140, "I", "tcp_info_segs_in"),
    (144, "I", "tcp_info_not_sent_bytes"), (148, "I", "tcp_info_min_rtt"),
    (152, "I", "tcp_info_data_segs_in"), (156, "I", "tcp_info_data_segs_out"),
    (160, "Q", "tcp_info_delivery_rate"), (168, "Q", "tcp_info_busy_time"),
    (176, "Q", "tcp_info_rwnd_limited"), (184, "Q", "tcp_info_sndbuf_limited"),
    (192, "I", "tcp_info_delivered"), (196, "I", "tcp_info_delivered_ce"),
    (200, "Q", "tcp_info_bytes_sent"), (208, "Q", "tcp_info_bytes_retrans"),
    (216, "I", "tcp_info_dsack_dups"), (220, "I", "tcp_info_reord_seen"),
    (224, "I", "tcp_info_rcv_ooopack"), (228, "I", "tcp_info_snd_wnd"),
    (232, "I", "tcp_info_rcv_wnd"), (236, "I", "tcp_info_rehash"),
    (240, "H", "tcp_info_total_rto"), (242, "H", "tcp_info_total_rto_recoveries"),
    (244, "I", "tcp_info_total_rto_time"), (248, "I", "tcp_info_received_ce"),
    (252, "I", "tcp_info_delivered_e1_bytes"), (256, "I", "tcp_info_delivered_e0_bytes"),
    (260, "I", "tcp_info_delivered_ce_bytes"), (264, "I", "tcp_info_received_e1_bytes"),
    (268, "I", "tcp_info_received_e0_bytes"), (272, "I", "tcp_info_received_ce_bytes"),
]

SKMEM = ["rmem_alloc", "rcv_buf", "wmem_alloc", "snd_buf", "fwd_alloc", "wmem_queued", "optmem", "backlog", "drops"]


def _tcp_info(d: dict, p: bytes, seven_zero: bool) -> None:
    d["tcp_info_len"] = len(p)
    p = p[:280].ljust(280, b"\0")
    for off, fmt, name in TCP_INFO_FIELDS:
        d[name] = struct.unpack_from("=" + fmt, p, off)[0]
    d["tcp_info_send_scale"], d["tcp_info_rcv_scale"] = p[6] & 15, p[6] >> 4
    d["tcp_info_delivery_rate_app_limited"], d["tcp_info_fast_open_client_failed"] = p[7] & 1, (p[7] >> 1) & 3
    if seven_zero:
        (w,) = struct.unpack_from("=I", p, 276)
        d.update(tcp_info_ecn_mode=w & 3, tcp_info_accecn_opt_seen=(w >> 2) & 3,
                 tcp_info_accecn_fail_mode=(w >> 4) & 15, tcp_info_options2=w >> 8)
    else:
        d["tcp_info_accecn_fail_mode"], d["tcp_info_accecn_opt_seen"] = struct.unpack_from("=HH", p, 276)


def decode_message(payload: bytes, seven_zero: bool = False) -> dict:
    fam, state, timer, retrans = payload[0], payload[1], payload[2], payload[3]
    sport, dport = struct.unpack_from(">HH", payload, 4)
    alen = 4 if fam == socket.AF_INET else 16 if fam == socket.AF_INET6 else 0
    ifindex, c0, c1, expires, rq, wq, uid, ino = struct.unpack_from("=IIIIIIII", payload, 40)
    d = dict(
        inet_diag_msg_family=fam, inet_diag_msg_state=state, inet_diag_msg_timer=timer,
        inet_diag_msg_retrans=retrans, inet_diag_msg_socket_source_port=sport,
        inet_diag_msg_socket_destination_port=dport,
        inet_diag_msg_socket_source=bytes(payload[8:8 + alen]),
        inet_diag_msg_socket_destination=bytes(payload[24:24 + alen]),
        inet_diag_msg_socket_interface=ifindex, inet_diag_msg_socket_cookie=(c1 << 32) | c0,
        inet_diag_msg_expires=expires, inet_diag_msg_rqueue=rq, inet_diag_msg_wqueue=wq,
        inet_diag_msg_uid=uid, inet_diag_msg_inode=ino,
    )
    present = 0
    off = 72
    while off + 4 <= len(payload):
        rlen, rtype = struct.unpack_from("=HH", payload, off)
        if rlen < 4 or off + rlen > len(payload):
            break
        v = bytes(payload[off + 4:off + rlen])
        rtype &= 0x3FFF
        present |= 1 << rtype if rtype < 31 else 1 << 31
        if rtype == 1:
            d.update(zip(("mem_info_rmem", "mem_info_wmem", "mem_info_fmem", "mem_info_tmem"), struct.unpack_from("=4I", v)))
        elif rtype == 2:
            _tcp_info(d, v, seven_zero)
        elif rtype == 3:
            d.update(zip(("vegas_info_enabled", "vegas_info_rtt_cnt", "vegas_info_rtt", "vegas_info_min_rtt"), struct.unpack_from("=4I", v)))
        elif rtype == 4:
            d["congestion_algorithm_string"] = v.split(b"\0")[0].decode()
        elif rtype == 5:
            d["type_of_service"] = v[0]
        elif rtype == 6:
            d["traffic_class"] = v[0]
        elif rtype == 7:
            for i, val in enumerate(struct.unpack_from(f"={len(v) // 4}I", v)[:9]):
                d["sk_mem_info_" + SKMEM[i]] = val
        elif rtype == 8:
            d["shutdown_state"] = v[0]
        elif rtype == 9:
            d.update(zip(("dctcp_info_enabled", "dctcp_info_ce_state", "dctcp_info_alpha", "dctcp_info_ab_ecn", "dctcp_info_ab_tot"), struct.unpack_from("=HHIII", v)))
        elif rtype == 15:
            d["mark"] = struct.unpack_from("=I", v)[0]
        elif rtype == 16:
            d.update(zip(("bbr_info_bw_lo", "bbr_info_bw_hi", "bbr_info_min_rtt", "bbr_info_pacing_gain", "bbr_info_cwnd_gain"), struct.unpack_from("=5I", v)))
        elif rtype == 17:
            d["class_id"] = struct.unpack_from("=I", v)[0]
        elif rtype == 21:
            d["c_group"] = struct.unpack_from("=Q", v)[0]
        elif rtype == 22:
            d["sock_opt"] = v[0] | (v[1] << 8)
        off += (rlen + 3) & ~3
    d["attributes_present"] = present
    return d


def decode_buffer(buf: bytes, seven_zero: bool = False) -> list[dict]:
    """Every SOCK_DIAG response in buf, as dicts keyed by schema field names."""
    out, off = [], 0
    while off + 16 <= len(buf):
        mlen, mtype, flags = struct.unpack_from("=IHH", buf, off)
        if mlen < 16 or off + mlen > len(buf) or mtype in (2, 3):
            break
        if mtype == 20 and not flags & 1 and mlen - 16 >= 72:
            out.append(decode_message(buf[off + 16:off + mlen], seven_zero))
        off += (mlen + 3) & ~3
    return out
