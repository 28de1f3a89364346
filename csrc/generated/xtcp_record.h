/* generated from proto/xtcp_flat_record.proto by tools/gen_schema.py; do not edit */
#ifndef XTCP_RECORD_H
#define XTCP_RECORD_H

#include <stdint.h>
#include <string.h>

#define XTCP_RECORD_FIELDS 130
/* Upper bound of one encoded record's per-socket fields (labels come on top). */
#define XTCP_RECORD_MAX_ENCODED 1017

/* BEGIN CDEF: cffi_build.py passes this block to ffi.cdef() */
struct xtcp_record {
    int64_t event_time_ns;
    uint64_t inet_diag_msg_socket_cookie;
    uint64_t tcp_info_pacing_rate;
    uint64_t tcp_info_max_pacing_rate;
    uint64_t tcp_info_bytes_acked;
    uint64_t tcp_info_bytes_received;
    uint64_t tcp_info_delivery_rate;
    uint64_t tcp_info_busy_time;
    uint64_t tcp_info_rwnd_limited;
    uint64_t tcp_info_sndbuf_limited;
    uint64_t tcp_info_bytes_sent;
    uint64_t tcp_info_bytes_retrans;
    uint64_t c_group;
    uint32_t inet_diag_msg_socket_interface;
    uint32_t inet_diag_msg_expires;
    uint32_t inet_diag_msg_rqueue;
    uint32_t inet_diag_msg_wqueue;
    uint32_t inet_diag_msg_uid;
    uint32_t inet_diag_msg_inode;
    uint32_t mem_info_rmem;
    uint32_t mem_info_wmem;
    uint32_t mem_info_fmem;
    uint32_t mem_info_tmem;
    uint32_t tcp_info_rto;
    uint32_t tcp_info_ato;
    uint32_t tcp_info_snd_mss;
    uint32_t tcp_info_rcv_mss;
    uint32_t tcp_info_unacked;
    uint32_t tcp_info_sacked;
    uint32_t tcp_info_lost;
    uint32_t tcp_info_retrans;
    uint32_t tcp_info_fackets;
    uint32_t tcp_info_last_data_sent;
    uint32_t tcp_info_last_ack_sent;
    uint32_t tcp_info_last_data_recv;
    uint32_t tcp_info_last_ack_recv;
    uint32_t tcp_info_pmtu;
    uint32_t tcp_info_rcv_ssthresh;
    uint32_t tcp_info_rtt;
    uint32_t tcp_info_rtt_var;
    uint32_t tcp_info_snd_ssthresh;
    uint32_t tcp_info_snd_cwnd;
    uint32_t tcp_info_adv_mss;
    uint32_t tcp_info_reordering;
    uint32_t tcp_info_rcv_rtt;
    uint32_t tcp_info_rcv_space;
    uint32_t tcp_info_total_retrans;
    uint32_t tcp_info_segs_out;
    uint32_t tcp_info_segs_in;
    uint32_t tcp_info_not_sent_bytes;
    uint32_t tcp_info_min_rtt;
    uint32_t tcp_info_data_segs_in;
    uint32_t tcp_info_data_segs_out;
    uint32_t tcp_info_delivered;
    uint32_t tcp_info_delivered_ce;
    uint32_t tcp_info_dsack_dups;
    uint32_t tcp_info_reord_seen;
    uint32_t tcp_info_rcv_ooopack;
    uint32_t tcp_info_snd_wnd;
    uint32_t tcp_info_rcv_wnd;
    uint32_t tcp_info_rehash;
    uint32_t tcp_info_total_rto_time;
    uint32_t tcp_info_received_ce;
    uint32_t tcp_info_delivered_e1_bytes;
    uint32_t tcp_info_delivered_e0_bytes;
    uint32_t tcp_info_delivered_ce_bytes;
    uint32_t tcp_info_received_e1_bytes;
    uint32_t tcp_info_received_e0_bytes;
    uint32_t tcp_info_received_ce_bytes;
    uint32_t tcp_info_options2;
    uint32_t sk_mem_info_rmem_alloc;
    uint32_t sk_mem_info_rcv_buf;
    uint32_t sk_mem_info_wmem_alloc;
    uint32_t sk_mem_info_snd_buf;
    uint32_t sk_mem_info_fwd_alloc;
    uint32_t sk_mem_info_wmem_queued;
    uint32_t sk_mem_info_optmem;
    uint32_t sk_mem_info_backlog;
    uint32_t sk_mem_info_drops;
    uint32_t vegas_info_enabled;
    uint32_t vegas_info_rtt_cnt;
    uint32_t vegas_info_rtt;
    uint32_t vegas_info_min_rtt;
    uint32_t dctcp_info_alpha;
    uint32_t dctcp_info_ab_ecn;
    uint32_t dctcp_info_ab_tot;
    uint32_t bbr_info_bw_lo;
    uint32_t bbr_info_bw_hi;
    uint32_t bbr_info_min_rtt;
    uint32_t bbr_info_pacing_gain;
    uint32_t bbr_info_cwnd_gain;
    uint32_t class_id;
    uint32_t mark;
    uint32_t attributes_present;
    uint16_t inet_diag_msg_socket_source_port;
    uint16_t inet_diag_msg_socket_destination_port;
    uint16_t tcp_info_total_rto;
    uint16_t tcp_info_total_rto_recoveries;
    uint16_t tcp_info_accecn_fail_mode;
    uint16_t tcp_info_accecn_opt_seen;
    uint16_t tcp_info_len;
    uint16_t dctcp_info_enabled;
    uint16_t dctcp_info_ce_state;
    uint16_t sock_opt;
    uint8_t event;
    uint8_t inet_diag_msg_family;
    uint8_t inet_diag_msg_state;
    uint8_t inet_diag_msg_timer;
    uint8_t inet_diag_msg_retrans;
    uint8_t inet_diag_msg_socket_source[16];
    uint8_t inet_diag_msg_socket_source_len;
    uint8_t inet_diag_msg_socket_destination[16];
    uint8_t inet_diag_msg_socket_destination_len;
    uint8_t tcp_info_state;
    uint8_t tcp_info_ca_state;
    uint8_t tcp_info_retransmits;
    uint8_t tcp_info_probes;
    uint8_t tcp_info_backoff;
    uint8_t tcp_info_options;
    uint8_t tcp_info_send_scale;
    uint8_t tcp_info_rcv_scale;
    uint8_t tcp_info_delivery_rate_app_limited;
    uint8_t tcp_info_fast_open_client_failed;
    uint8_t tcp_info_ecn_mode;
    char congestion_algorithm_string[16];
    uint8_t congestion_algorithm_enum;
    uint8_t type_of_service;
    uint8_t traffic_class;
    uint8_t shutdown_state;
    uint8_t protocol;
    uint8_t skv6only;
    uint8_t md5sig_keys;
};
/* END CDEF */

static inline uint8_t *xtcp_pb_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
    *p++ = (uint8_t)v;
    return p;
}

static inline size_t xtcp_pb_varint_len(uint64_t v)
{
    /* 7 bits per byte: ceil(significant bits / 7), without a loop. */
    return (size_t)((64 - __builtin_clzll(v | 1)) * 9 + 64) / 64;
}

/* Exactly the bytes xtcp_record_encode_fields writes for r. */
static inline size_t xtcp_record_encoded_size(const struct xtcp_record *r)
{
    size_t n = 0;
    if (r->event) n += 2 + xtcp_pb_varint_len((uint64_t)r->event);
    if (r->event_time_ns) n += 2 + xtcp_pb_varint_len((uint64_t)r->event_time_ns);
    if (r->inet_diag_msg_family) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_family);
    if (r->inet_diag_msg_state) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_state);
    if (r->inet_diag_msg_timer) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_timer);
    if (r->inet_diag_msg_retrans) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_retrans);
    if (r->inet_diag_msg_socket_source_port) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_socket_source_port);
    if (r->inet_diag_msg_socket_destination_port) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_socket_destination_port);
    if (r->inet_diag_msg_socket_source_len) n += 2 + 1 + r->inet_diag_msg_socket_source_len;
    if (r->inet_diag_msg_socket_destination_len) n += 2 + 1 + r->inet_diag_msg_socket_destination_len;
    if (r->inet_diag_msg_socket_interface) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_socket_interface);
    if (r->inet_diag_msg_socket_cookie) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_socket_cookie);
    if (r->inet_diag_msg_expires) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_expires);
    if (r->inet_diag_msg_rqueue) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_rqueue);
    if (r->inet_diag_msg_wqueue) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_wqueue);
    if (r->inet_diag_msg_uid) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_uid);
    if (r->inet_diag_msg_inode) n += 2 + xtcp_pb_varint_len((uint64_t)r->inet_diag_msg_inode);
    if (r->mem_info_rmem) n += 2 + xtcp_pb_varint_len((uint64_t)r->mem_info_rmem);
    if (r->mem_info_wmem) n += 2 + xtcp_pb_varint_len((uint64_t)r->mem_info_wmem);
    if (r->mem_info_fmem) n += 2 + xtcp_pb_varint_len((uint64_t)r->mem_info_fmem);
    if (r->mem_info_tmem) n += 2 + xtcp_pb_varint_len((uint64_t)r->mem_info_tmem);
    if (r->tcp_info_state) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_state);
    if (r->tcp_info_ca_state) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_ca_state);
    if (r->tcp_info_retransmits) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_retransmits);
    if (r->tcp_info_probes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_probes);
    if (r->tcp_info_backoff) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_backoff);
    if (r->tcp_info_options) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_options);
    if (r->tcp_info_send_scale) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_send_scale);
    if (r->tcp_info_rcv_scale) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_scale);
    if (r->tcp_info_delivery_rate_app_limited) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivery_rate_app_limited);
    if (r->tcp_info_fast_open_client_failed) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_fast_open_client_failed);
    if (r->tcp_info_rto) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rto);
    if (r->tcp_info_ato) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_ato);
    if (r->tcp_info_snd_mss) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_snd_mss);
    if (r->tcp_info_rcv_mss) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_mss);
    if (r->tcp_info_unacked) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_unacked);
    if (r->tcp_info_sacked) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_sacked);
    if (r->tcp_info_lost) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_lost);
    if (r->tcp_info_retrans) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_retrans);
    if (r->tcp_info_fackets) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_fackets);
    if (r->tcp_info_last_data_sent) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_last_data_sent);
    if (r->tcp_info_last_ack_sent) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_last_ack_sent);
    if (r->tcp_info_last_data_recv) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_last_data_recv);
    if (r->tcp_info_last_ack_recv) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_last_ack_recv);
    if (r->tcp_info_pmtu) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_pmtu);
    if (r->tcp_info_rcv_ssthresh) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_ssthresh);
    if (r->tcp_info_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rtt);
    if (r->tcp_info_rtt_var) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rtt_var);
    if (r->tcp_info_snd_ssthresh) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_snd_ssthresh);
    if (r->tcp_info_snd_cwnd) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_snd_cwnd);
    if (r->tcp_info_adv_mss) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_adv_mss);
    if (r->tcp_info_reordering) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_reordering);
    if (r->tcp_info_rcv_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_rtt);
    if (r->tcp_info_rcv_space) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_space);
    if (r->tcp_info_total_retrans) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_total_retrans);
    if (r->tcp_info_pacing_rate) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_pacing_rate);
    if (r->tcp_info_max_pacing_rate) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_max_pacing_rate);
    if (r->tcp_info_bytes_acked) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_bytes_acked);
    if (r->tcp_info_bytes_received) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_bytes_received);
    if (r->tcp_info_segs_out) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_segs_out);
    if (r->tcp_info_segs_in) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_segs_in);
    if (r->tcp_info_not_sent_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_not_sent_bytes);
    if (r->tcp_info_min_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_min_rtt);
    if (r->tcp_info_data_segs_in) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_data_segs_in);
    if (r->tcp_info_data_segs_out) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_data_segs_out);
    if (r->tcp_info_delivery_rate) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivery_rate);
    if (r->tcp_info_busy_time) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_busy_time);
    if (r->tcp_info_rwnd_limited) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rwnd_limited);
    if (r->tcp_info_sndbuf_limited) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_sndbuf_limited);
    if (r->tcp_info_delivered) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivered);
    if (r->tcp_info_delivered_ce) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivered_ce);
    if (r->tcp_info_bytes_sent) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_bytes_sent);
    if (r->tcp_info_bytes_retrans) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_bytes_retrans);
    if (r->tcp_info_dsack_dups) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_dsack_dups);
    if (r->tcp_info_reord_seen) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_reord_seen);
    if (r->tcp_info_rcv_ooopack) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_ooopack);
    if (r->tcp_info_snd_wnd) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_snd_wnd);
    if (r->tcp_info_rcv_wnd) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rcv_wnd);
    if (r->tcp_info_rehash) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_rehash);
    if (r->tcp_info_total_rto) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_total_rto);
    if (r->tcp_info_total_rto_recoveries) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_total_rto_recoveries);
    if (r->tcp_info_total_rto_time) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_total_rto_time);
    if (r->tcp_info_received_ce) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_received_ce);
    if (r->tcp_info_delivered_e1_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivered_e1_bytes);
    if (r->tcp_info_delivered_e0_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivered_e0_bytes);
    if (r->tcp_info_delivered_ce_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_delivered_ce_bytes);
    if (r->tcp_info_received_e1_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_received_e1_bytes);
    if (r->tcp_info_received_e0_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_received_e0_bytes);
    if (r->tcp_info_received_ce_bytes) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_received_ce_bytes);
    if (r->tcp_info_accecn_fail_mode) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_accecn_fail_mode);
    if (r->tcp_info_accecn_opt_seen) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_accecn_opt_seen);
    if (r->tcp_info_ecn_mode) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_ecn_mode);
    if (r->tcp_info_options2) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_options2);
    if (r->tcp_info_len) n += 2 + xtcp_pb_varint_len((uint64_t)r->tcp_info_len);
    { size_t k = strnlen(r->congestion_algorithm_string, 16); if (k) n += 2 + 1 + k; }
    if (r->congestion_algorithm_enum) n += 2 + xtcp_pb_varint_len((uint64_t)r->congestion_algorithm_enum);
    if (r->type_of_service) n += 2 + xtcp_pb_varint_len((uint64_t)r->type_of_service);
    if (r->traffic_class) n += 2 + xtcp_pb_varint_len((uint64_t)r->traffic_class);
    if (r->sk_mem_info_rmem_alloc) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_rmem_alloc);
    if (r->sk_mem_info_rcv_buf) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_rcv_buf);
    if (r->sk_mem_info_wmem_alloc) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_wmem_alloc);
    if (r->sk_mem_info_snd_buf) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_snd_buf);
    if (r->sk_mem_info_fwd_alloc) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_fwd_alloc);
    if (r->sk_mem_info_wmem_queued) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_wmem_queued);
    if (r->sk_mem_info_optmem) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_optmem);
    if (r->sk_mem_info_backlog) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_backlog);
    if (r->sk_mem_info_drops) n += 2 + xtcp_pb_varint_len((uint64_t)r->sk_mem_info_drops);
    if (r->shutdown_state) n += 2 + xtcp_pb_varint_len((uint64_t)r->shutdown_state);
    if (r->vegas_info_enabled) n += 2 + xtcp_pb_varint_len((uint64_t)r->vegas_info_enabled);
    if (r->vegas_info_rtt_cnt) n += 2 + xtcp_pb_varint_len((uint64_t)r->vegas_info_rtt_cnt);
    if (r->vegas_info_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->vegas_info_rtt);
    if (r->vegas_info_min_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->vegas_info_min_rtt);
    if (r->dctcp_info_enabled) n += 2 + xtcp_pb_varint_len((uint64_t)r->dctcp_info_enabled);
    if (r->dctcp_info_ce_state) n += 2 + xtcp_pb_varint_len((uint64_t)r->dctcp_info_ce_state);
    if (r->dctcp_info_alpha) n += 2 + xtcp_pb_varint_len((uint64_t)r->dctcp_info_alpha);
    if (r->dctcp_info_ab_ecn) n += 2 + xtcp_pb_varint_len((uint64_t)r->dctcp_info_ab_ecn);
    if (r->dctcp_info_ab_tot) n += 2 + xtcp_pb_varint_len((uint64_t)r->dctcp_info_ab_tot);
    if (r->bbr_info_bw_lo) n += 2 + xtcp_pb_varint_len((uint64_t)r->bbr_info_bw_lo);
    if (r->bbr_info_bw_hi) n += 2 + xtcp_pb_varint_len((uint64_t)r->bbr_info_bw_hi);
    if (r->bbr_info_min_rtt) n += 2 + xtcp_pb_varint_len((uint64_t)r->bbr_info_min_rtt);
    if (r->bbr_info_pacing_gain) n += 2 + xtcp_pb_varint_len((uint64_t)r->bbr_info_pacing_gain);
    if (r->bbr_info_cwnd_gain) n += 2 + xtcp_pb_varint_len((uint64_t)r->bbr_info_cwnd_gain);
    if (r->class_id) n += 2 + xtcp_pb_varint_len((uint64_t)r->class_id);
    if (r->sock_opt) n += 2 + xtcp_pb_varint_len((uint64_t)r->sock_opt);
    if (r->c_group) n += 3 + xtcp_pb_varint_len((uint64_t)r->c_group);
    if (r->protocol) n += 3 + xtcp_pb_varint_len((uint64_t)r->protocol);
    if (r->skv6only) n += 3 + xtcp_pb_varint_len((uint64_t)r->skv6only);
    if (r->mark) n += 3 + xtcp_pb_varint_len((uint64_t)r->mark);
    if (r->md5sig_keys) n += 3 + xtcp_pb_varint_len((uint64_t)r->md5sig_keys);
    if (r->attributes_present) n += 3 + xtcp_pb_varint_len((uint64_t)r->attributes_present);
    return n;
}

/* Append the non-zero per-socket fields of r (proto3: zero is not sent); return the end. */
static inline uint8_t *xtcp_record_encode_fields(const struct xtcp_record *r, uint8_t *p)
{
    if (r->event) { *p++ = 0x80; *p++ = 0x04; p = xtcp_pb_varint(p, r->event); }
    if (r->event_time_ns) { *p++ = 0x88; *p++ = 0x04; p = xtcp_pb_varint(p, (uint64_t)r->event_time_ns); }
    if (r->inet_diag_msg_family) { *p++ = 0xc8; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_family); }
    if (r->inet_diag_msg_state) { *p++ = 0xd0; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_state); }
    if (r->inet_diag_msg_timer) { *p++ = 0xd8; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_timer); }
    if (r->inet_diag_msg_retrans) { *p++ = 0xe0; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_retrans); }
    if (r->inet_diag_msg_socket_source_port) { *p++ = 0xe8; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_socket_source_port); }
    if (r->inet_diag_msg_socket_destination_port) { *p++ = 0xf0; *p++ = 0x3e; p = xtcp_pb_varint(p, r->inet_diag_msg_socket_destination_port); }
    if (r->inet_diag_msg_socket_source_len) { *p++ = 0xfa; *p++ = 0x3e; *p++ = r->inet_diag_msg_socket_source_len; memcpy(p, r->inet_diag_msg_socket_source, r->inet_diag_msg_socket_source_len); p += r->inet_diag_msg_socket_source_len; }
    if (r->inet_diag_msg_socket_destination_len) { *p++ = 0x82; *p++ = 0x3f; *p++ = r->inet_diag_msg_socket_destination_len; memcpy(p, r->inet_diag_msg_socket_destination, r->inet_diag_msg_socket_destination_len); p += r->inet_diag_msg_socket_destination_len; }
    if (r->inet_diag_msg_socket_interface) { *p++ = 0x88; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_socket_interface); }
    if (r->inet_diag_msg_socket_cookie) { *p++ = 0x90; *p++ = 0x3f; p = xtcp_pb_varint(p, (uint64_t)r->inet_diag_msg_socket_cookie); }
    if (r->inet_diag_msg_expires) { *p++ = 0xa8; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_expires); }
    if (r->inet_diag_msg_rqueue) { *p++ = 0xb0; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_rqueue); }
    if (r->inet_diag_msg_wqueue) { *p++ = 0xb8; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_wqueue); }
    if (r->inet_diag_msg_uid) { *p++ = 0xc0; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_uid); }
    if (r->inet_diag_msg_inode) { *p++ = 0xc8; *p++ = 0x3f; p = xtcp_pb_varint(p, r->inet_diag_msg_inode); }
    if (r->mem_info_rmem) { *p++ = 0xe8; *p++ = 0x44; p = xtcp_pb_varint(p, r->mem_info_rmem); }
    if (r->mem_info_wmem) { *p++ = 0xf0; *p++ = 0x44; p = xtcp_pb_varint(p, r->mem_info_wmem); }
    if (r->mem_info_fmem) { *p++ = 0xf8; *p++ = 0x44; p = xtcp_pb_varint(p, r->mem_info_fmem); }
    if (r->mem_info_tmem) { *p++ = 0x80; *p++ = 0x45; p = xtcp_pb_varint(p, r->mem_info_tmem); }
    if (r->tcp_info_state) { *p++ = 0x88; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_state); }
    if (r->tcp_info_ca_state) { *p++ = 0x90; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_ca_state); }
    if (r->tcp_info_retransmits) { *p++ = 0x98; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_retransmits); }
    if (r->tcp_info_probes) { *p++ = 0xa0; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_probes); }
    if (r->tcp_info_backoff) { *p++ = 0xa8; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_backoff); }
    if (r->tcp_info_options) { *p++ = 0xb0; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_options); }
    if (r->tcp_info_send_scale) { *p++ = 0xb8; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_send_scale); }
    if (r->tcp_info_rcv_scale) { *p++ = 0xc0; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_rcv_scale); }
    if (r->tcp_info_delivery_rate_app_limited) { *p++ = 0xc8; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_delivery_rate_app_limited); }
    if (r->tcp_info_fast_open_client_failed) { *p++ = 0xd0; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_fast_open_client_failed); }
    if (r->tcp_info_rto) { *p++ = 0xf8; *p++ = 0x4b; p = xtcp_pb_varint(p, r->tcp_info_rto); }
    if (r->tcp_info_ato) { *p++ = 0x80; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_ato); }
    if (r->tcp_info_snd_mss) { *p++ = 0x88; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_snd_mss); }
    if (r->tcp_info_rcv_mss) { *p++ = 0x90; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_rcv_mss); }
    if (r->tcp_info_unacked) { *p++ = 0x98; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_unacked); }
    if (r->tcp_info_sacked) { *p++ = 0xa0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_sacked); }
    if (r->tcp_info_lost) { *p++ = 0xa8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_lost); }
    if (r->tcp_info_retrans) { *p++ = 0xb0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_retrans); }
    if (r->tcp_info_fackets) { *p++ = 0xb8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_fackets); }
    if (r->tcp_info_last_data_sent) { *p++ = 0xc0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_last_data_sent); }
    if (r->tcp_info_last_ack_sent) { *p++ = 0xc8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_last_ack_sent); }
    if (r->tcp_info_last_data_recv) { *p++ = 0xd0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_last_data_recv); }
    if (r->tcp_info_last_ack_recv) { *p++ = 0xd8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_last_ack_recv); }
    if (r->tcp_info_pmtu) { *p++ = 0xe0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_pmtu); }
    if (r->tcp_info_rcv_ssthresh) { *p++ = 0xe8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_rcv_ssthresh); }
    if (r->tcp_info_rtt) { *p++ = 0xf0; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_rtt); }
    if (r->tcp_info_rtt_var) { *p++ = 0xf8; *p++ = 0x4c; p = xtcp_pb_varint(p, r->tcp_info_rtt_var); }
    if (r->tcp_info_snd_ssthresh) { *p++ = 0x80; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_snd_ssthresh); }
    if (r->tcp_info_snd_cwnd) { *p++ = 0x88; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_snd_cwnd); }
    if (r->tcp_info_adv_mss) { *p++ = 0x90; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_adv_mss); }
    if (r->tcp_info_reordering) { *p++ = 0x98; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_reordering); }
    if (r->tcp_info_rcv_rtt) { *p++ = 0xa0; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_rcv_rtt); }
    if (r->tcp_info_rcv_space) { *p++ = 0xa8; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_rcv_space); }
    if (r->tcp_info_total_retrans) { *p++ = 0xb0; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_total_retrans); }
    if (r->tcp_info_pacing_rate) { *p++ = 0xb8; *p++ = 0x4d; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_pacing_rate); }
    if (r->tcp_info_max_pacing_rate) { *p++ = 0xc0; *p++ = 0x4d; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_max_pacing_rate); }
    if (r->tcp_info_bytes_acked) { *p++ = 0xc8; *p++ = 0x4d; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_bytes_acked); }
    if (r->tcp_info_bytes_received) { *p++ = 0xd0; *p++ = 0x4d; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_bytes_received); }
    if (r->tcp_info_segs_out) { *p++ = 0xd8; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_segs_out); }
    if (r->tcp_info_segs_in) { *p++ = 0xe0; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_segs_in); }
    if (r->tcp_info_not_sent_bytes) { *p++ = 0xe8; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_not_sent_bytes); }
    if (r->tcp_info_min_rtt) { *p++ = 0xf0; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_min_rtt); }
    if (r->tcp_info_data_segs_in) { *p++ = 0xf8; *p++ = 0x4d; p = xtcp_pb_varint(p, r->tcp_info_data_segs_in); }
    if (r->tcp_info_data_segs_out) { *p++ = 0x80; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_data_segs_out); }
    if (r->tcp_info_delivery_rate) { *p++ = 0x88; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_delivery_rate); }
    if (r->tcp_info_busy_time) { *p++ = 0x90; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_busy_time); }
    if (r->tcp_info_rwnd_limited) { *p++ = 0x98; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_rwnd_limited); }
    if (r->tcp_info_sndbuf_limited) { *p++ = 0xa0; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_sndbuf_limited); }
    if (r->tcp_info_delivered) { *p++ = 0xa8; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_delivered); }
    if (r->tcp_info_delivered_ce) { *p++ = 0xb0; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_delivered_ce); }
    if (r->tcp_info_bytes_sent) { *p++ = 0xb8; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_bytes_sent); }
    if (r->tcp_info_bytes_retrans) { *p++ = 0xc0; *p++ = 0x4e; p = xtcp_pb_varint(p, (uint64_t)r->tcp_info_bytes_retrans); }
    if (r->tcp_info_dsack_dups) { *p++ = 0xc8; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_dsack_dups); }
    if (r->tcp_info_reord_seen) { *p++ = 0xd0; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_reord_seen); }
    if (r->tcp_info_rcv_ooopack) { *p++ = 0xd8; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_rcv_ooopack); }
    if (r->tcp_info_snd_wnd) { *p++ = 0xe0; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_snd_wnd); }
    if (r->tcp_info_rcv_wnd) { *p++ = 0xe8; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_rcv_wnd); }
    if (r->tcp_info_rehash) { *p++ = 0xf0; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_rehash); }
    if (r->tcp_info_total_rto) { *p++ = 0xf8; *p++ = 0x4e; p = xtcp_pb_varint(p, r->tcp_info_total_rto); }
    if (r->tcp_info_total_rto_recoveries) { *p++ = 0x80; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_total_rto_recoveries); }
    if (r->tcp_info_total_rto_time) { *p++ = 0x88; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_total_rto_time); }
    if (r->tcp_info_received_ce) { *p++ = 0x90; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_received_ce); }
    if (r->tcp_info_delivered_e1_bytes) { *p++ = 0x98; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_delivered_e1_bytes); }
    if (r->tcp_info_delivered_e0_bytes) { *p++ = 0xa0; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_delivered_e0_bytes); }
    if (r->tcp_info_delivered_ce_bytes) { *p++ = 0xa8; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_delivered_ce_bytes); }
    if (r->tcp_info_received_e1_bytes) { *p++ = 0xb0; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_received_e1_bytes); }
    if (r->tcp_info_received_e0_bytes) { *p++ = 0xb8; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_received_e0_bytes); }
    if (r->tcp_info_received_ce_bytes) { *p++ = 0xc0; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_received_ce_bytes); }
    if (r->tcp_info_accecn_fail_mode) { *p++ = 0xc8; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_accecn_fail_mode); }
    if (r->tcp_info_accecn_opt_seen) { *p++ = 0xd0; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_accecn_opt_seen); }
    if (r->tcp_info_ecn_mode) { *p++ = 0xd8; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_ecn_mode); }
    if (r->tcp_info_options2) { *p++ = 0xe0; *p++ = 0x4f; p = xtcp_pb_varint(p, r->tcp_info_options2); }
    if (r->tcp_info_len) { *p++ = 0x80; *p++ = 0x50; p = xtcp_pb_varint(p, r->tcp_info_len); }
    { size_t n = strnlen(r->congestion_algorithm_string, 16); if (n) { *p++ = 0xa2; *p++ = 0x51; *p++ = (uint8_t)n; memcpy(p, r->congestion_algorithm_string, n); p += n; } }
    if (r->congestion_algorithm_enum) { *p++ = 0xa8; *p++ = 0x51; p = xtcp_pb_varint(p, r->congestion_algorithm_enum); }
    if (r->type_of_service) { *p++ = 0xc8; *p++ = 0x57; p = xtcp_pb_varint(p, r->type_of_service); }
    if (r->traffic_class) { *p++ = 0xd0; *p++ = 0x57; p = xtcp_pb_varint(p, r->traffic_class); }
    if (r->sk_mem_info_rmem_alloc) { *p++ = 0xe8; *p++ = 0x5d; p = xtcp_pb_varint(p, r->sk_mem_info_rmem_alloc); }
    if (r->sk_mem_info_rcv_buf) { *p++ = 0xf0; *p++ = 0x5d; p = xtcp_pb_varint(p, r->sk_mem_info_rcv_buf); }
    if (r->sk_mem_info_wmem_alloc) { *p++ = 0xf8; *p++ = 0x5d; p = xtcp_pb_varint(p, r->sk_mem_info_wmem_alloc); }
    if (r->sk_mem_info_snd_buf) { *p++ = 0x80; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_snd_buf); }
    if (r->sk_mem_info_fwd_alloc) { *p++ = 0x88; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_fwd_alloc); }
    if (r->sk_mem_info_wmem_queued) { *p++ = 0x90; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_wmem_queued); }
    if (r->sk_mem_info_optmem) { *p++ = 0x98; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_optmem); }
    if (r->sk_mem_info_backlog) { *p++ = 0xa0; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_backlog); }
    if (r->sk_mem_info_drops) { *p++ = 0xa8; *p++ = 0x5e; p = xtcp_pb_varint(p, r->sk_mem_info_drops); }
    if (r->shutdown_state) { *p++ = 0x80; *p++ = 0x64; p = xtcp_pb_varint(p, r->shutdown_state); }
    if (r->vegas_info_enabled) { *p++ = 0xa8; *p++ = 0x6a; p = xtcp_pb_varint(p, r->vegas_info_enabled); }
    if (r->vegas_info_rtt_cnt) { *p++ = 0xb0; *p++ = 0x6a; p = xtcp_pb_varint(p, r->vegas_info_rtt_cnt); }
    if (r->vegas_info_rtt) { *p++ = 0xb8; *p++ = 0x6a; p = xtcp_pb_varint(p, r->vegas_info_rtt); }
    if (r->vegas_info_min_rtt) { *p++ = 0xc0; *p++ = 0x6a; p = xtcp_pb_varint(p, r->vegas_info_min_rtt); }
    if (r->dctcp_info_enabled) { *p++ = 0xc8; *p++ = 0x70; p = xtcp_pb_varint(p, r->dctcp_info_enabled); }
    if (r->dctcp_info_ce_state) { *p++ = 0xd0; *p++ = 0x70; p = xtcp_pb_varint(p, r->dctcp_info_ce_state); }
    if (r->dctcp_info_alpha) { *p++ = 0xd8; *p++ = 0x70; p = xtcp_pb_varint(p, r->dctcp_info_alpha); }
    if (r->dctcp_info_ab_ecn) { *p++ = 0xe0; *p++ = 0x70; p = xtcp_pb_varint(p, r->dctcp_info_ab_ecn); }
    if (r->dctcp_info_ab_tot) { *p++ = 0xe8; *p++ = 0x70; p = xtcp_pb_varint(p, r->dctcp_info_ab_tot); }
    if (r->bbr_info_bw_lo) { *p++ = 0xe8; *p++ = 0x76; p = xtcp_pb_varint(p, r->bbr_info_bw_lo); }
    if (r->bbr_info_bw_hi) { *p++ = 0xf0; *p++ = 0x76; p = xtcp_pb_varint(p, r->bbr_info_bw_hi); }
    if (r->bbr_info_min_rtt) { *p++ = 0xf8; *p++ = 0x76; p = xtcp_pb_varint(p, r->bbr_info_min_rtt); }
    if (r->bbr_info_pacing_gain) { *p++ = 0x80; *p++ = 0x77; p = xtcp_pb_varint(p, r->bbr_info_pacing_gain); }
    if (r->bbr_info_cwnd_gain) { *p++ = 0x88; *p++ = 0x77; p = xtcp_pb_varint(p, r->bbr_info_cwnd_gain); }
    if (r->class_id) { *p++ = 0x88; *p++ = 0x7d; p = xtcp_pb_varint(p, r->class_id); }
    if (r->sock_opt) { *p++ = 0x90; *p++ = 0x7d; p = xtcp_pb_varint(p, r->sock_opt); }
    if (r->c_group) { *p++ = 0xb8; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, (uint64_t)r->c_group); }
    if (r->protocol) { *p++ = 0xc0; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, r->protocol); }
    if (r->skv6only) { *p++ = 0xc8; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, r->skv6only); }
    if (r->mark) { *p++ = 0xd0; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, r->mark); }
    if (r->md5sig_keys) { *p++ = 0xd8; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, r->md5sig_keys); }
    if (r->attributes_present) { *p++ = 0xe0; *p++ = 0x83; *p++ = 0x01; p = xtcp_pb_varint(p, r->attributes_present); }
    return p;
}

#endif
