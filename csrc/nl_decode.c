/*
 * Netlink SOCK_DIAG dump bytes -> struct xtcp_record array. (At ~450 lines: one attribute table
 * and the one walk that reads it.)
 *
 * Theory of operation: a dump arrives as a run of netlink messages (one recv = one skb of at
 * most ~32 KiB). Each SOCK_DIAG_BY_FAMILY message is a struct inet_diag_msg (72 B) followed by
 * rtattrs. We walk messages and attributes with every length checked against what is left of
 * the buffer: a lying length ends the walk of that message (or of the buffer) and is counted,
 * it is never followed. Each attribute has one decoder, xtcp_attr_<name>, headed by its uapi
 * struct, the kernel that added it, and its minimum length. Netlink is host byte order, except
 * ports and addresses in inet_diag_sockid, which are network order.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "nl.h"
#include "xtcp_native.h"

_Static_assert(sizeof(struct xtcp_decode_stats) % 8 == 0, "stats stay 8-byte sized");

#define ld16 xtcp_nl_ld16
#define ld32 xtcp_nl_ld32
static inline uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint16_t ldbe16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

#define ATTR_SEEN(r, type) ((r)->attributes_present |= (type) < 31 ? (1u << (type)) : (1u << 31))

/* Each decoder returns 0, or -1 when the payload is shorter than its struct (counted, ignored). */

/* INET_DIAG_MEMINFO (1), struct inet_diag_meminfo {u32 rmem, wmem, fmem, tmem}: 16 B, <=2.6.14 */
static int xtcp_attr_meminfo(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 16) return -1;
    r->mem_info_rmem = ld32(p);
    r->mem_info_wmem = ld32(p + 4);
    r->mem_info_fmem = ld32(p + 8);
    r->mem_info_tmem = ld32(p + 12);
    return 0;
}

/* INET_DIAG_INFO (2), struct tcp_info: 104 B (<=3.14) ... 280 B (6.18+). Decoded by payload
 * length: a field beyond it was not reported and stays 0, tcp_info_len tells which. */
static int xtcp_attr_info(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    uint8_t padded[XTCP_TCP_INFO_MAX];
    const uint8_t *t = p;
    if (n < 8) return -1;
    if (n < XTCP_TCP_INFO_MAX) { /* an older kernel: absent fields read as 0 */
        memcpy(padded, p, n);
        memset(padded + n, 0, XTCP_TCP_INFO_MAX - n);
        t = padded;
    }
    r->tcp_info_len = (uint16_t)(n > 0xffff ? 0xffff : n);
    r->tcp_info_state = t[0];
    r->tcp_info_ca_state = t[1];
    r->tcp_info_retransmits = t[2];
    r->tcp_info_probes = t[3];
    r->tcp_info_backoff = t[4];
    r->tcp_info_options = t[5];
    r->tcp_info_send_scale = t[6] & 0x0f;               /* u8 snd_wscale:4 (low nibble) */
    r->tcp_info_rcv_scale = t[6] >> 4;                  /* u8 rcv_wscale:4 */
    r->tcp_info_delivery_rate_app_limited = t[7] & 1;   /* 4.9 */
    r->tcp_info_fast_open_client_failed = (t[7] >> 1) & 3; /* 5.5 */
    r->tcp_info_rto = ld32(t + 8);
    r->tcp_info_ato = ld32(t + 12);
    r->tcp_info_snd_mss = ld32(t + 16);
    r->tcp_info_rcv_mss = ld32(t + 20);
    r->tcp_info_unacked = ld32(t + 24);
    r->tcp_info_sacked = ld32(t + 28);
    r->tcp_info_lost = ld32(t + 32);
    r->tcp_info_retrans = ld32(t + 36);
    r->tcp_info_fackets = ld32(t + 40);
    r->tcp_info_last_data_sent = ld32(t + 44);
    r->tcp_info_last_ack_sent = ld32(t + 48);
    r->tcp_info_last_data_recv = ld32(t + 52);
    r->tcp_info_last_ack_recv = ld32(t + 56);
    r->tcp_info_pmtu = ld32(t + 60);
    r->tcp_info_rcv_ssthresh = ld32(t + 64);
    r->tcp_info_rtt = ld32(t + 68);
    r->tcp_info_rtt_var = ld32(t + 72);
    r->tcp_info_snd_ssthresh = ld32(t + 76);
    r->tcp_info_snd_cwnd = ld32(t + 80);
    r->tcp_info_adv_mss = ld32(t + 84);
    r->tcp_info_reordering = ld32(t + 88);
    r->tcp_info_rcv_rtt = ld32(t + 92);
    r->tcp_info_rcv_space = ld32(t + 96);
    r->tcp_info_total_retrans = ld32(t + 100);
    r->tcp_info_pacing_rate = ld64(t + 104);            /* 3.15 */
    r->tcp_info_max_pacing_rate = ld64(t + 112);
    r->tcp_info_bytes_acked = ld64(t + 120);            /* 4.1 */
    r->tcp_info_bytes_received = ld64(t + 128);
    r->tcp_info_segs_out = ld32(t + 136);               /* 4.2 */
    r->tcp_info_segs_in = ld32(t + 140);
    r->tcp_info_not_sent_bytes = ld32(t + 144);         /* 4.6 */
    r->tcp_info_min_rtt = ld32(t + 148);
    r->tcp_info_data_segs_in = ld32(t + 152);
    r->tcp_info_data_segs_out = ld32(t + 156);
    r->tcp_info_delivery_rate = ld64(t + 160);          /* 4.9 */
    r->tcp_info_busy_time = ld64(t + 168);              /* 4.10 */
    r->tcp_info_rwnd_limited = ld64(t + 176);
    r->tcp_info_sndbuf_limited = ld64(t + 184);
    r->tcp_info_delivered = ld32(t + 192);              /* 4.18 */
    r->tcp_info_delivered_ce = ld32(t + 196);
    r->tcp_info_bytes_sent = ld64(t + 200);             /* 4.19 */
    r->tcp_info_bytes_retrans = ld64(t + 208);
    r->tcp_info_dsack_dups = ld32(t + 216);
    r->tcp_info_reord_seen = ld32(t + 220);
    r->tcp_info_rcv_ooopack = ld32(t + 224);            /* 5.4 */
    r->tcp_info_snd_wnd = ld32(t + 228);
    r->tcp_info_rcv_wnd = ld32(t + 232);                /* 6.2 */
    r->tcp_info_rehash = ld32(t + 236);
    r->tcp_info_total_rto = ld16(t + 240);              /* 6.7 */
    r->tcp_info_total_rto_recoveries = ld16(t + 242);
    r->tcp_info_total_rto_time = ld32(t + 244);
    r->tcp_info_received_ce = ld32(t + 248);            /* 6.18 */
    r->tcp_info_delivered_e1_bytes = ld32(t + 252);
    r->tcp_info_delivered_e0_bytes = ld32(t + 256);
    r->tcp_info_delivered_ce_bytes = ld32(t + 260);
    r->tcp_info_received_e1_bytes = ld32(t + 264);
    r->tcp_info_received_e0_bytes = ld32(t + 268);
    r->tcp_info_received_ce_bytes = ld32(t + 272);
    /* Bytes 276..279 mean different things at the same length: the caller picks by release. */
    if (layout == XTCP_TCP_INFO_LAYOUT_7_0) {
        uint32_t w = ld32(t + 276);
        r->tcp_info_ecn_mode = w & 3;
        r->tcp_info_accecn_opt_seen = (w >> 2) & 3;
        r->tcp_info_accecn_fail_mode = (w >> 4) & 0xf;
        r->tcp_info_options2 = w >> 8;
    } else {
        r->tcp_info_accecn_fail_mode = ld16(t + 276);
        r->tcp_info_accecn_opt_seen = ld16(t + 278);
    }
    return 0;
}

/* INET_DIAG_VEGASINFO (3), struct tcpvegas_info {u32 enabled, rttcnt, rtt, minrtt}: 16 B */
static int xtcp_attr_vegasinfo(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 16) return -1;
    r->vegas_info_enabled = ld32(p);
    r->vegas_info_rtt_cnt = ld32(p + 4);
    r->vegas_info_rtt = ld32(p + 8);
    r->vegas_info_min_rtt = ld32(p + 12);
    return 0;
}

/* INET_DIAG_CONG (4): NUL-terminated name, at most TCP_CA_NAME_MAX (16) with the NUL */
static int xtcp_attr_cong(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    static const struct { const char *name; uint8_t len, value; } known[] = {
        {"cubic", 5, 1}, {"dctcp", 5, 2}, {"vegas", 5, 3}, {"prague", 6, 4},
        {"bbr", 3, 5}, {"bbr2", 4, 6}, {"bbr3", 4, 7}, {"reno", 4, 8},
    };
    size_t len = strnlen((const char *)p, n);
    (void)layout;
    if (len > sizeof(r->congestion_algorithm_string) - 1)
        len = sizeof(r->congestion_algorithm_string) - 1;
    /* Kernel CC names are ASCII identifiers; anything else would make an invalid protobuf
     * string that parsers reject with the whole message, so it becomes '?'. */
    for (size_t i = 0; i < len; i++)
        r->congestion_algorithm_string[i] = (p[i] > 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    r->congestion_algorithm_string[len] = '\0';
    r->congestion_algorithm_enum = len ? 9 : 0; /* OTHER unless known */
    /* Length first: this runs for every socket, and strcmp calls were 3% of a poll's CPU. */
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (len == known[i].len && memcmp(r->congestion_algorithm_string, known[i].name, len) == 0) {
            r->congestion_algorithm_enum = known[i].value;
            break;
        }
    return 0;
}

/* INET_DIAG_TOS (5) u8, 3.2 */
static int xtcp_attr_tos(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 1) return -1;
    r->type_of_service = p[0];
    return 0;
}

/* INET_DIAG_TCLASS (6) u8, 3.2, AF_INET6 only */
static int xtcp_attr_tclass(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 1) return -1;
    r->traffic_class = p[0];
    return 0;
}

/* INET_DIAG_SKMEMINFO (7) u32[SK_MEMINFO_VARS]: 7 (3.3), 8 (3.6 +BACKLOG), 9 (4.6 +DROPS) */
static int xtcp_attr_skmeminfo(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    size_t vars = n / 4;
    (void)layout;
    if (vars < 7) return -1;
    r->sk_mem_info_rmem_alloc = ld32(p);
    r->sk_mem_info_rcv_buf = ld32(p + 4);
    r->sk_mem_info_wmem_alloc = ld32(p + 8);
    r->sk_mem_info_snd_buf = ld32(p + 12);
    r->sk_mem_info_fwd_alloc = ld32(p + 16);
    r->sk_mem_info_wmem_queued = ld32(p + 20);
    r->sk_mem_info_optmem = ld32(p + 24);
    if (vars > 7) r->sk_mem_info_backlog = ld32(p + 28);
    if (vars > 8) r->sk_mem_info_drops = ld32(p + 32);
    return 0;
}

/* INET_DIAG_SHUTDOWN (8) u8: bit0 RCV_SHUTDOWN, bit1 SEND_SHUTDOWN, 3.8 */
static int xtcp_attr_shutdown(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 1) return -1;
    r->shutdown_state = p[0];
    return 0;
}

/* INET_DIAG_DCTCPINFO (9), struct tcp_dctcp_info {u16 enabled, ce_state; u32 alpha, ab_ecn,
 * ab_tot}: 16 B, 3.18 */
static int xtcp_attr_dctcpinfo(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 16) return -1;
    r->dctcp_info_enabled = ld16(p);
    r->dctcp_info_ce_state = ld16(p + 2);
    r->dctcp_info_alpha = ld32(p + 4);
    r->dctcp_info_ab_ecn = ld32(p + 8);
    r->dctcp_info_ab_tot = ld32(p + 12);
    return 0;
}

/* INET_DIAG_PROTOCOL (10) u8, 4.2 */
static int xtcp_attr_protocol(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 1) return -1;
    r->protocol = p[0];
    return 0;
}

/* INET_DIAG_SKV6ONLY (11) u8, 4.2 */
static int xtcp_attr_skv6only(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 1) return -1;
    r->skv6only = p[0];
    return 0;
}

/* INET_DIAG_MARK (15) u32 sk_mark, 4.9, only with CAP_NET_ADMIN */
static int xtcp_attr_mark(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 4) return -1;
    r->mark = ld32(p);
    return 0;
}

/* INET_DIAG_BBRINFO (16), struct tcp_bbr_info {u32 bw_lo, bw_hi, min_rtt, pacing_gain,
 * cwnd_gain}: 20 B, 4.9 */
static int xtcp_attr_bbrinfo(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 20) return -1;
    r->bbr_info_bw_lo = ld32(p);
    r->bbr_info_bw_hi = ld32(p + 4);
    r->bbr_info_min_rtt = ld32(p + 8);
    r->bbr_info_pacing_gain = ld32(p + 12);
    r->bbr_info_cwnd_gain = ld32(p + 16);
    return 0;
}

/* INET_DIAG_CLASS_ID (17) u32, 4.14 */
static int xtcp_attr_class_id(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 4) return -1;
    r->class_id = ld32(p);
    return 0;
}

/* INET_DIAG_MD5SIG (18) struct tcp_diag_md5sig[]: 100 B each, 4.14; we keep the key count */
static int xtcp_attr_md5sig(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)p; (void)layout;
    r->md5sig_keys = (uint8_t)(n / 100 > 255 ? 255 : n / 100);
    return 0;
}

/* INET_DIAG_CGROUP_ID (21) u64 cgroup v2 id, 5.8 */
static int xtcp_attr_cgroup_id(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 8) return -1;
    r->c_group = ld64(p);
    return 0;
}

/* INET_DIAG_SOCKOPT (22) struct inet_diag_sockopt: 2 B of bitfields, 5.10 */
static int xtcp_attr_sockopt(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)layout;
    if (n < 2) return -1;
    r->sock_opt = (uint16_t)(p[0] | (p[1] << 8));
    return 0;
}

/* Presence only: LOCALS/PEERS (SCTP), PAD, ULP_INFO (nested), SK_BPF_STORAGES (nested). */
static int xtcp_attr_presence(struct xtcp_record *r, const uint8_t *p, size_t n, int layout)
{
    (void)r; (void)p; (void)n; (void)layout;
    return 0;
}

typedef int (*xtcp_attr_fn)(struct xtcp_record *, const uint8_t *, size_t, int);

static const xtcp_attr_fn xtcp_attr_decoders[] = {
    [1] = xtcp_attr_meminfo,   [2] = xtcp_attr_info,       [3] = xtcp_attr_vegasinfo,
    [4] = xtcp_attr_cong,      [5] = xtcp_attr_tos,        [6] = xtcp_attr_tclass,
    [7] = xtcp_attr_skmeminfo, [8] = xtcp_attr_shutdown,   [9] = xtcp_attr_dctcpinfo,
    [10] = xtcp_attr_protocol, [11] = xtcp_attr_skv6only,  [12] = xtcp_attr_presence,
    [13] = xtcp_attr_presence, [14] = xtcp_attr_presence,  [15] = xtcp_attr_mark,
    [16] = xtcp_attr_bbrinfo,  [17] = xtcp_attr_class_id,  [18] = xtcp_attr_md5sig,
    [19] = xtcp_attr_presence, [20] = xtcp_attr_presence,  [21] = xtcp_attr_cgroup_id,
    [22] = xtcp_attr_sockopt,
};
#define XTCP_ATTR_KNOWN (sizeof(xtcp_attr_decoders) / sizeof(xtcp_attr_decoders[0]))

/* struct inet_diag_msg (72 B) and its attributes -> one record. */
static void xtcp_decode_socket(const uint8_t *m, size_t len, struct xtcp_record *r, int layout,
                               struct xtcp_decode_stats *st)
{
    uint8_t family = m[0];
    size_t alen = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
    size_t off;

    memset(r, 0, sizeof(*r));
    r->inet_diag_msg_family = family;
    r->inet_diag_msg_state = m[1];
    r->inet_diag_msg_timer = m[2];
    r->inet_diag_msg_retrans = m[3];
    r->inet_diag_msg_socket_source_port = ldbe16(m + 4);
    r->inet_diag_msg_socket_destination_port = ldbe16(m + 6);
    memcpy(r->inet_diag_msg_socket_source, m + 8, alen);
    r->inet_diag_msg_socket_source_len = (uint8_t)alen;
    memcpy(r->inet_diag_msg_socket_destination, m + 24, alen);
    r->inet_diag_msg_socket_destination_len = (uint8_t)alen;
    r->inet_diag_msg_socket_interface = ld32(m + 40);
    /* ss prints the cookie as cookie[1] << 32 | cookie[0]; keep the same number. */
    r->inet_diag_msg_socket_cookie = ((uint64_t)ld32(m + 48) << 32) | ld32(m + 44);
    r->inet_diag_msg_expires = ld32(m + 52);
    r->inet_diag_msg_rqueue = ld32(m + 56);
    r->inet_diag_msg_wqueue = ld32(m + 60);
    r->inet_diag_msg_uid = ld32(m + 64);
    r->inet_diag_msg_inode = ld32(m + 68);

    off = XTCP_INET_DIAG_MSG_LEN; /* already 4-aligned */
    while (off + XTCP_NL_ATTR_HDR_LEN <= len) {
        uint16_t rta_len = ld16(m + off);
        uint16_t type = ld16(m + off + 2) & NLA_TYPE_MASK;
        if (rta_len < XTCP_NL_ATTR_HDR_LEN || rta_len > len - off) {
            st->bad_attributes++;
            return;
        }
        const uint8_t *payload = m + off + XTCP_NL_ATTR_HDR_LEN;
        size_t plen = rta_len - XTCP_NL_ATTR_HDR_LEN;
        if (type < XTCP_ATTR_KNOWN && xtcp_attr_decoders[type]) {
            if (xtcp_attr_decoders[type](r, payload, plen, layout) == 0) {
                ATTR_SEEN(r, type);
                if (type == 2 && plen > XTCP_TCP_INFO_MAX)
                    st->tcp_info_longer++;
            } else {
                st->short_attributes++;
            }
        } else {
            st->unknown_attributes++;
            st->unknown_by_type[type < XTCP_ATTR_TYPES ? type : XTCP_ATTR_TYPES - 1]++;
            ATTR_SEEN(r, 31);
        }
        off += XTCP_NL_ALIGN((size_t)rta_len);
    }
}

int xtcp_native_abi(void) { return XTCP_NATIVE_ABI; }
size_t xtcp_record_size(void) { return sizeof(struct xtcp_record); }
size_t xtcp_record_max_encoded(void) { return XTCP_RECORD_MAX_ENCODED; }

size_t xtcp_count_socket_messages(const uint8_t *buf, size_t len)
{
    struct xtcp_nl_walk w = xtcp_nl_walk(buf, len);
    struct xtcp_nl_msg m;
    size_t n = 0;
    while (xtcp_nl_next(&w, &m) == XTCP_NL_NEXT)
        n += m.type == SOCK_DIAG_BY_FAMILY;
    return n;
}

int64_t xtcp_decode(const uint8_t *buf, size_t len, struct xtcp_record *out, size_t cap,
                    int tcp_info_layout, int64_t seq, struct xtcp_decode_stats *st)
{
    /* Counters accumulate across calls (all buffers of one dump share st); the flags below are
     * this buffer's, OR-ed in at the end. */
    struct xtcp_nl_walk w = xtcp_nl_walk(buf, len);
    struct xtcp_nl_msg m;
    enum xtcp_nl_step step;
    size_t consumed = 0;
    int64_t n = 0;
    int done = 0, full = 0;
    int32_t error = 0;

    while ((step = xtcp_nl_next(&w, &m)) == XTCP_NL_NEXT) {
        if (seq >= 0 && m.seq != (uint32_t)seq) {
            st->rejected_seq++;   /* not the dump in flight: dropped, never decoded */
        } else if (m.type == SOCK_DIAG_BY_FAMILY && !(m.flags & NLM_F_REQUEST)) {
            if (m.len - XTCP_NL_HDR_LEN < XTCP_INET_DIAG_MSG_LEN) {
                st->short_messages++;
            } else {
                if ((size_t)n == cap) {
                    full = 1;   /* resume at this message */
                    break;
                }
                xtcp_decode_socket(m.hdr + XTCP_NL_HDR_LEN, m.len - XTCP_NL_HDR_LEN, &out[n], tcp_info_layout, st);
                n++;
            }
        } else if (m.type == NLMSG_DONE) {
            done = 1;
        } else if (m.type == NLMSG_ERROR) {
            error = xtcp_nl_msg_errno(&m);   /* 0 is an ACK */
        } else {
            st->other_messages++;
        }
        st->messages++;
        consumed = w.off;
        if (done || error)
            break;
    }
    if (step == XTCP_NL_BAD) {
        /* A lying length, or trailing bytes too short for a header: the rest is not read. */
        st->rejected_malformed++;
        if (!st->malformed) {
            st->malformed = 1;
            st->malformed_offset = (uint32_t)w.off;
        }
    }
    st->done |= done;
    if (error)
        st->error = error;
    st->records += (uint64_t)n;
    st->consumed = full ? m.off : consumed;
    return full ? -ENOSPC : n;
}
