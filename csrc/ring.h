/*
 * io_uring dump driver: one ring runs SOCK_DIAG dumps of many namespaces at once.
 *
 * Python adds one job per (namespace fd, address family), submits once, then calls
 * xtcp_ring_reap() each time the ring's eventfd is readable. C does the per-recv work: it re-arms
 * the next RECV into the job's other receive buffer, then decodes the chunk just received into
 * the job's record array (nl_decode.c) and, if asked, encodes those records (pb_encode.c), so
 * each chunk is turned into records while the kernel builds the next one. Python crosses cffi
 * per namespace, never per recv, and a dump's raw bytes are never kept whole.
 *
 * The same ring keeps the close-event subscriptions (close_events.c): one multishot RECV armed
 * on each namespace's destroy-group socket for the namespace's life. Those outlive every poll:
 * xtcp_ring_reset cancels only the dump operations (by user_data), and every reap decodes the
 * close datagrams that completed meanwhile, whether a poll runs or not.
 *
 * user_data of every SQE = op (bits 56..63) | request id = job index, or subscription index for
 * the close ops (32..55) | net id (0..31).
 */
#ifndef XTCP_RING_H
#define XTCP_RING_H

#include <stddef.h>
#include <stdint.h>

#include "close_events.h"
#include "xtcp_native.h"

#define XTCP_RING_OP_NONE 0            /* never issued: a zeroed user_data is always unknown */
#define XTCP_RING_OP_SEND 1            /* the dump request */
#define XTCP_RING_OP_RECV 2            /* one chunk (one skb, <= ~32 KiB) of the dump */
#define XTCP_RING_OP_CANCEL 3          /* per-job timeout or teardown cancel */
#define XTCP_RING_OP_NOP 4             /* reserved: wake-ups and tests */
#define XTCP_RING_OP_CLOSE 5           /* a close-event subscription's multishot RECV (close_events.c) */
#define XTCP_RING_OP_CLOSE_CANCEL 6    /* the cancel of a subscription's RECV (removal, teardown) */

#define XTCP_RING_OP_BITS 8
#define XTCP_RING_REQUEST_BITS 24
#define XTCP_RING_NET_BITS 32
#define XTCP_RING_OP_MAX 255
#define XTCP_RING_REQUEST_MAX 16777215     /* (1 << 24) - 1: also the most jobs per reset */
#define XTCP_RING_NET_MAX 4294967295       /* (1 << 32) - 1 */

/* Flags of xtcp_ring_new. Each dump step runs inline in our io_uring_enter unless punted to
 * an io-wq worker: the SEND builds the first skb, each RECV the next one (netlink_recvmsg). */
#define XTCP_RING_ASYNC 1                  /* IOSQE_ASYNC on the SEND: namespaces in parallel */
#define XTCP_RING_ASYNC_RECV 2             /* IOSQE_ASYNC on every RECV too: one big namespace's
                                              chunks in a worker (~30% slower alone, faster mixed) */
#define XTCP_RING_DECODE_THREAD 8          /* a thread of ours decodes (and encodes) each chunk
                                              while the kernel builds the next one inline */
#define XTCP_RING_NO_ENCODE (-1)           /* framing of xtcp_ring_set_output: decode only */

/* Size of each receive buffer. One recv returns one skb of at most SKB_WITH_OVERHEAD(32768)
 * (netlink_recvmsg caps max_recvmsg_len there); less space than the skb silently truncates it
 * (MSG_TRUNC), so twice that leaves margin. A running job holds two (one being filled by the
 * kernel, one being decoded) and, with a decode thread, hands each filled one over to it;
 * buffers go back to a small per-ring free list. */
#define XTCP_RING_RECV_MIN 65536
#define XTCP_RING_SPARE_BUFFERS 64
#define XTCP_RING_ERRNO_SLOTS 256          /* cqe_errors[] per errno; larger ones at 255 */

static inline uint64_t xtcp_ring_pack(uint32_t op, uint32_t request_id, uint32_t net_id)
{
    return ((uint64_t)(op & 0xffu) << 56) | ((uint64_t)(request_id & 0xffffffu) << 32) | net_id;
}
static inline uint32_t xtcp_ring_unpack_op(uint64_t u) { return (uint32_t)(u >> 56); }
static inline uint32_t xtcp_ring_unpack_request(uint64_t u) { return (uint32_t)(u >> 32) & 0xffffffu; }
static inline uint32_t xtcp_ring_unpack_net(uint64_t u) { return (uint32_t)u; }

/* BEGIN CDEF */
typedef struct xtcp_ring xtcp_ring_t;

/* One finished job (one namespace, one family): reported exactly once by xtcp_ring_reap. */
struct xtcp_ring_event {
    uint32_t job;             /* index returned by xtcp_ring_add_job */
    uint32_t net_id;
    int32_t error;            /* 0, or a positive errno: SEND/RECV failure, NLMSG_ERROR, ETIMEDOUT */
    uint32_t recvs;           /* RECV completions that carried data */
    uint64_t bytes;           /* netlink bytes received (decoded chunk by chunk, not kept) */
    uint64_t start_ns;        /* CLOCK_MONOTONIC: SEND queued */
    uint64_t end_ns;          /* CLOCK_MONOTONIC: last completion of the job reaped */
    uint8_t family;
    uint8_t pad[7];
};

struct xtcp_ring_stats {
    uint64_t submits;              /* io_uring_submit calls with something to submit */
    uint64_t enters;               /* io_uring_enter syscalls (submits and teardown waits) */
    uint64_t sqes;                 /* SQEs queued */
    uint64_t cqes;                 /* CQEs reaped */
    uint64_t recvs;                /* RECVs that returned data */
    uint64_t bytes;                /* bytes received */
    uint64_t jobs;                 /* jobs finished */
    uint64_t jobs_failed;          /* of which with an error */
    uint64_t timeouts;             /* jobs cancelled by xtcp_ring_expire */
    uint64_t unknown_completions;  /* CQEs naming no live job: counted, never fatal */
    uint64_t submit_errors;        /* io_uring_submit returning -errno (retried later) */
    uint64_t leaked_buffers;       /* receive buffers never freed: their CQE never came (teardown) */
    uint64_t cqe_errors[256];      /* CQEs with res < 0, by errno (ECANCELED counts cancels) */
};

uint64_t xtcp_ring_pack(uint32_t op, uint32_t request_id, uint32_t net_id);
uint32_t xtcp_ring_unpack_op(uint64_t u);
uint32_t xtcp_ring_unpack_request(uint64_t u);
uint32_t xtcp_ring_unpack_net(uint64_t u);

/* What a finished job hands over (xtcp_ring_job_take). The caller owns `records` and `encoded`
 * and frees each with xtcp_buf_free (both may be NULL when empty). */
struct xtcp_ring_output {
    struct xtcp_record *records;
    uint64_t count;
    uint8_t *encoded;             /* count records in the framing of xtcp_ring_set_output */
    uint64_t encoded_len;
    uint64_t decode_ns;           /* CLOCK_MONOTONIC spent in xtcp_decode for this job */
    uint64_t encode_ns;           /* and in xtcp_encode */
    struct xtcp_decode_stats stats;
};

/* A ring of `entries` SQEs (CQ sized for many jobs in flight) with a registered non-blocking
 * eventfd. flags: XTCP_RING_ASYNC[_RECV], XTCP_RING_DECODE_THREAD. NULL with *err = errno
 * (EPERM/ENOSYS: io_uring disabled). */
xtcp_ring_t *xtcp_ring_new(unsigned entries, int flags, int *err);
/* How jobs added from now on are decoded: tcp_info layout (XTCP_TCP_INFO_LAYOUT_*) and the
 * framing their records are encoded in as they arrive (XTCP_FRAME_*, or XTCP_RING_NO_ENCODE,
 * the default). Returns 0 or -EINVAL. */
int xtcp_ring_set_output(xtcp_ring_t *ring, int tcp_info_layout, int framing);
/* Cancel and reap everything in flight (close subscriptions included: every SQE's last CQE is
 * waited for), free every buffer the ring still owns, close. Once. Returns 0, or -ETIMEDOUT if
 * some completion never came (its buffers were leaked, never freed under the kernel). */
int xtcp_ring_free(xtcp_ring_t *ring);
int xtcp_ring_eventfd(const xtcp_ring_t *ring);

/* Queue the dump `req` on `fd`; the request bytes and the label (protobuf bytes put in front of
 * each encoded record) are copied. Jobs on one fd run in the order added (one dump per fd at a
 * time, EBUSY otherwise); jobs on different fds run in parallel. Returns the job index (>= 0)
 * or -errno (-EBUSY: a failed teardown poisoned the ring). */
int64_t xtcp_ring_add_job(xtcp_ring_t *ring, uint32_t net_id, int fd, const uint8_t *req,
                          size_t req_len, uint8_t family, const uint8_t *label, size_t label_len);
/* One io_uring_enter for everything queued. Returns SQEs submitted or -errno. */
int xtcp_ring_submit(xtcp_ring_t *ring);
/* Drain the eventfd, then process CQEs and re-submit follow-up RECVs/SENDs, round after round
 * while completions keep coming and budget_ns (0 = no limit) is not spent (if CQEs are left,
 * the eventfd is signalled again). Close-event completions are decoded on the way
 * (xtcp_ring_close_ready lists the subscriptions with something to take). Writes up to `max`
 * finished jobs to `events`; returns how many (call again while it returns `max`). */
int64_t xtcp_ring_reap(xtcp_ring_t *ring, struct xtcp_ring_event *events, size_t max,
                       uint64_t budget_ns);
/* Cancel jobs whose dump started more than timeout_ns ago: each finishes with ETIMEDOUT and
 * jobs queued behind it on the same fd with ECANCELED (the fd still holds a running dump).
 * *next_ns = ns until the next running job would expire (0: none running). Returns jobs
 * cancelled or -errno. */
int64_t xtcp_ring_expire(xtcp_ring_t *ring, uint64_t timeout_ns, uint64_t *next_ns);
/* Jobs added since the last reset that have not been reported yet. */
size_t xtcp_ring_pending(const xtcp_ring_t *ring);
/* Move a finished job's records, encoded bytes and decode stats to `out`. Returns 0, or -ENOENT
 * if the job is unknown, unfinished or already taken. */
int xtcp_ring_job_take(xtcp_ring_t *ring, uint32_t job, struct xtcp_ring_output *out);
/* Cancel (by user_data) and reap whatever of the jobs is in flight, free all output not taken, forget
 * every job. Close subscriptions stay armed. Returns 0, or -ETIMEDOUT if completions never
 * came: buffers were leaked and the ring refuses jobs. */
int xtcp_ring_reset(xtcp_ring_t *ring);
void xtcp_ring_stats(const xtcp_ring_t *ring, struct xtcp_ring_stats *out);
/* Queue a NOP with this user_data (its CQE is then checked like any other). Tests only. */
int xtcp_ring_queue_nop(xtcp_ring_t *ring, uint64_t user_data);

/* Close-event subscriptions on this ring (close_events.c). */
/* Subscribe fd (an xtcp_open_close_socket_in socket) under net_id: arms its multishot RECV (the
 * next submit or reap sends it; the first one also sets up the provided buffers). Returns the
 * subscription index (>= 0) or -errno. The caller keeps the fd open until
 * xtcp_ring_close_remove. */
int64_t xtcp_ring_close_add(xtcp_ring_t *ring, uint32_t net_id, int fd);
/* Stop a subscription while its fd is still open: its RECV is cancelled and waited for (other
 * completions met meanwhile are processed as a reap would), what it still delivered and what
 * is left queued on the socket are decoded; then one xtcp_ring_close_take hands those last
 * records over and frees the slot. After this returns the caller may close the fd.
 * -ETIMEDOUT (never expected): the cancel did not complete, the last records are dropped
 * (counted in remove_timeouts). -ENOENT: no such subscription. */
int xtcp_ring_close_remove(xtcp_ring_t *ring, uint32_t sub);
/* Subscriptions with something to take (records, losses, an error) since the last call: up to
 * `max` indices into `ready`; returns how many (call again while it returns `max`). */
int64_t xtcp_ring_close_ready(xtcp_ring_t *ring, uint32_t *ready, size_t max);
/* Move a subscription's records and counters to out. 0, or -ENOENT. */
int xtcp_ring_close_take(xtcp_ring_t *ring, uint32_t sub, struct xtcp_closes_output *out);
/* Records held by all subscriptions, not yet taken. */
uint64_t xtcp_ring_close_pending(const xtcp_ring_t *ring);
void xtcp_ring_close_stats(const xtcp_ring_t *ring, struct xtcp_closes_stats *out);
/* END CDEF */

#endif
