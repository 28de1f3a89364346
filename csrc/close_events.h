/*
 * Close events: the kernel's broadcast of every destroyed TCP socket, per namespace.
 *
 * The kernel sends each destroyed TCP socket's inet_diag_msg + INET_DIAG_INFO (its final
 * tcp_info) to the NETLINK_SOCK_DIAG subscribers of SKNLGRP_INET_TCP_DESTROY /
 * SKNLGRP_INET6_TCP_DESTROY of the socket's own namespace (what `ss -E` prints). We keep one
 * such subscription socket per namespace (opened by the namespace opener next to the dump
 * socket), and the dump ring keeps one multishot RECV armed on each.
 *
 * Why the dump ring (ring.c) and not a ring of their own: one ring, one eventfd, one reaping
 * path; a subscription simply outlives the polls. xtcp_ring_reset cancels the dump operations
 * by user_data (ops SEND and RECV of each running job), so the long-lived multishot RECVs (op
 * CLOSE) are spared; each reap, during a poll or between polls, decodes the close datagrams that
 * completed, so closes never wait for a poll and a poll never waits for closes (a datagram is
 * ~2 us of decoding). The user_data scheme is the dump ring's (ring.h): XTCP_RING_OP_CLOSE |
 * subscription index | net id for the RECV, XTCP_RING_OP_CLOSE_CANCEL for its cancel. The
 * ring's `inflight` counts a multishot RECV once, until its last CQE (no IORING_CQE_F_MORE), so
 * teardown still checks one last CQE per SQE.
 *
 * Multishot RECVs with a provided-buffer ring, not re-armed RECVs (measured on 6.18 with
 * benchmarks/close_recv.c, 100,000 events on 2 cores: 2.0 vs 2.9 us of our CPU per event, one
 * io_uring_enter per 7 events instead of one per event; and at overload, with a 4 KiB receive
 * buffer, 43% of the events lost instead of 92%, because the kernel moves each datagram into a
 * provided buffer as it arrives instead of waiting for us to re-arm). A multishot RECV ends
 * with ENOBUFS both when the socket overran and when our buffers ran out; the socket's drop
 * counter tells them apart (below).
 *
 * Overload: a subscription whose receive queue is full makes the kernel drop the event,
 * count it in the socket's sk_drops and fail the next recv with ENOBUFS once. We then read
 * sk_drops (SO_MEMINFO) and count the difference as lost, re-arm and go on.
 */
#ifndef XTCP_CLOSE_EVENTS_H
#define XTCP_CLOSE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "xtcp_native.h"

#define XTCP_CLOSES_GROUP_TCP 1            /* SKNLGRP_INET_TCP_DESTROY */
#define XTCP_CLOSES_GROUP_TCP6 3           /* SKNLGRP_INET6_TCP_DESTROY */
#define XTCP_CLOSES_RECV_LEN 8192          /* each provided buffer: one destroy message is ~400-600 B, one per skb */
#define XTCP_CLOSES_MAX_PENDING 1048576    /* records held per subscription until taken;
                                              beyond, counted in `overflow` and dropped */
#define XTCP_CLOSES_EVENT_CLOSE 1          /* xtcp_record.event of a close record */

/* BEGIN CDEF */
/* What a subscription hands over (xtcp_ring_close_take); the caller owns `records` (xtcp_buf_free). */
struct xtcp_closes_output {
    struct xtcp_record *records;
    uint64_t count;
    uint64_t lost;            /* events the kernel dropped (receive queue full) since the last take */
    uint64_t overflow;        /* records dropped here because nobody took them (MAX_PENDING) */
    uint64_t datagrams;       /* datagrams received since the last take */
    uint64_t bytes;
    uint64_t decode_ns;
    int32_t error;            /* last recv error other than ENOBUFS/ECANCELED (positive), or 0 */
    uint32_t pad;
    struct xtcp_decode_stats stats;
};

struct xtcp_closes_stats {
    uint64_t subscriptions;        /* live */
    uint64_t cqes;
    uint64_t recvs;                /* RECVs that returned a datagram */
    uint64_t records;
    uint64_t lost;                 /* over all subscriptions, ever */
    uint64_t enobufs;              /* ENOBUFS completions (an overrun, or our buffers ran out) */
    uint64_t starved;              /* of which our buffers ran out: nothing lost, re-armed */
    uint64_t rearm_errors;         /* a RECV could not be re-armed (retried at the next reap) */
    uint64_t unknown_completions;
    uint64_t recv_errors;          /* other errors (the subscription stays armed) */
    uint64_t remove_timeouts;      /* removals whose cancel did not complete in 200 ms */
};

/* Open a non-blocking NETLINK_SOCK_DIAG socket in the namespace of nsfd (-1: the calling
 * thread's own), connected to the kernel (nl.h rule: only the kernel may feed it), subscribed
 * to both TCP destroy groups, with SO_RCVBUF = rcvbuf (SO_RCVBUFFORCE when privileged; 0:
 * the system default). Returns the fd or -errno (-ENOTRECOVERABLE: the thread could not go
 * back to its namespace, as xtcp_open_diag_socket_in). */
int xtcp_open_close_socket_in(int nsfd, int rcvbuf, uint32_t *drained);
/* The kernel's drop counter of a socket (SK_MEMINFO_DROPS of SO_MEMINFO), or -errno. */
int64_t xtcp_socket_drops(int fd);

/* (The subscriptions themselves live on the dump ring: xtcp_ring_close_* in ring.h.) */

/* Decode one received destroy datagram into out[0..cap) as close records stamped now_ns
 * (the plain-socket reader's path; the ring does the same per CQE). Returns records or -errno. */
int64_t xtcp_closes_decode(const uint8_t *buf, size_t len, struct xtcp_record *out, size_t cap,
                           int tcp_info_layout, int64_t event_time_ns, struct xtcp_decode_stats *st);
/* END CDEF */

#endif
