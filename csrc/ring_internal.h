/*
 * What ring.c and ring_decoder.c share: the ring's and the jobs' state, and the calls between
 * the two files. Not part of the cffi API (cffi_build.py skips *_internal.h): nothing here is
 * visible outside the extension.
 */
#ifndef XTCP_RING_INTERNAL_H
#define XTCP_RING_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <liburing.h>

#include "ring.h"

#define RING_INTERNAL __attribute__((visibility("hidden")))

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
    uint32_t net_id;
    int fd;
    uint8_t family;
    uint8_t state;
    uint8_t finished;      /* the dump ended (or failed): no further RECV */
    uint8_t taken;         /* records and encoded bytes now belong to the caller */
    int32_t error;         /* first error, positive errno */
    int32_t cancel_errno;  /* set by expire/teardown: finish with this instead of re-arming */
    uint32_t seq;          /* nlmsg_seq of the request, checked on every reply message */
    uint32_t inflight;     /* this job's SQEs without a CQE yet */
    uint32_t recvs;
    int64_t next;          /* job queued behind this one on the same fd, or -1 */
    uint8_t *req;
    size_t req_len;
    uint8_t *label;        /* protobuf bytes put in front of each encoded record */
    size_t label_len;
    uint8_t *buf[2];       /* receive buffers, XTCP_RING_RECV_MIN each; the RECV fills buf[cur] */
    uint32_t cur;
    uint64_t bytes;
    struct xtcp_record *recs;
    size_t nrecs, recs_cap;
    uint8_t *out;          /* encoded records */
    size_t out_len, out_cap;
    uint64_t decode_ns, encode_ns;
    uint64_t start_ns, end_ns;
    struct xtcp_decode_stats dstats;
    /* With a decode thread: chunks handed to it, and decoded by it. The job is reported once
     * both are equal; until then it is `deferred`. Records, encoded bytes, stats and
     * decode_error belong to the decode thread until then. */
    uint32_t pushed;
    _Atomic uint32_t consumed;
    int32_t decode_error;
    uint8_t deferred;
    uint8_t reported;
};

#define WORK_SLOTS 64   /* chunks queued for the decode thread before the ring waits for it */

struct work {
    uint32_t job;
    uint32_t len;
    uint8_t *buf;
};

/* The decode thread (XTCP_RING_DECODE_THREAD): the ring's reap hands it each received chunk and
 * goes straight back to the kernel for the next one, so the kernel builds chunk n+1 inline
 * while this thread decodes chunk n on another core. It sleeps when it has nothing to do. */
struct decoder {
    pthread_t thread;
    pthread_mutex_t lock;          /* guards everything below and the ring's spare buffers */
    pthread_cond_t work_ready;
    pthread_cond_t space;          /* an item finished: room in q, or the queue ran dry */
    struct work q[WORK_SLOTS];
    size_t head, count;
    int busy;                      /* an item is being decoded */
    int sleeping;
    int stop;
};

struct xtcp_ring {
    struct io_uring uring;
    int efd;
    int flags;
    int poisoned;          /* teardown could not reap everything: refuse new jobs */
    int layout;            /* tcp_info tail layout given to the decoder */
    int framing;           /* XTCP_FRAME_* of the encoded output, or XTCP_RING_NO_ENCODE */
    uint8_t *spare[XTCP_RING_SPARE_BUFFERS];   /* receive buffers of finished jobs, for reuse */
    size_t nspare;
    struct decoder *dec;   /* NULL: chunks are decoded inline, in reap */
    _Atomic uint32_t awaiting;   /* jobs done with the kernel, waiting for their last decode */
    int draining;          /* inside reset: never re-arm or start anything */
    uint64_t inflight;     /* SQEs queued or submitted without their last CQE yet, ring-wide */
    uint64_t close_inflight;   /* of which close-event ones (a multishot RECV counts once) */
    struct closes *cl;     /* close-event subscriptions (close_events.c), NULL until the first */
    struct job *jobs;
    size_t njobs, jobs_cap;
    int64_t *done;         /* FIFO of finished, not yet reported job indices */
    size_t done_head, done_tail;
    int32_t *fd_last;      /* last job added per fd (index by fd), -1 if none */
    size_t fd_cap;
    struct xtcp_ring_stats st;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Called with the decode thread's lock held, if there is one (it guards the spare list). */
static inline void put_buffer_locked(struct xtcp_ring *r, uint8_t *buf)
{
    if (r->nspare < XTCP_RING_SPARE_BUFFERS)
        r->spare[r->nspare++] = buf;
    else
        free(buf);
}

/* Everything the decode thread was handed for this job is decoded. */
static inline bool drained(struct job *j)
{
    return atomic_load(&j->consumed) == j->pushed;
}

/* A close-event op (the subscriptions' side of the ring, close_events.c)? */
static inline bool close_op(uint32_t op)
{
    return op == XTCP_RING_OP_CLOSE || op == XTCP_RING_OP_CLOSE_CANCEL;
}

/* ring.c, for close_events.c: the ring's SQE accounting. */

/* An SQE with this user_data, counted in flight until its last CQE; NULL if the SQ is full. */
RING_INTERNAL struct io_uring_sqe *xtcp_ring_sqe(struct xtcp_ring *r, uint32_t op, uint32_t request,
                                                 uint32_t net);
/* n free SQEs, submitting what is queued if the SQ ring is full. 0 or -errno. */
RING_INTERNAL int xtcp_ring_reserve(struct xtcp_ring *r, unsigned n);
/* Submit what is queued. SQEs submitted, or -errno. */
RING_INTERNAL int xtcp_ring_flush(struct xtcp_ring *r);
/* Handle every CQE ready now (jobs and subscriptions alike). Returns how many. */
RING_INTERNAL unsigned xtcp_ring_process(struct xtcp_ring *r);

/* close_events.c: the subscriptions' side of the ring. */

/* A CQE of a close op (close_op()): decode, count, re-arm; keeps r->inflight exact. */
RING_INTERNAL void xtcp_close_cqe(struct xtcp_ring *r, const struct io_uring_cqe *cqe);
/* Arm the subscriptions whose RECV could not be armed before (no SQE then). */
RING_INTERNAL void xtcp_close_rearm(struct xtcp_ring *r);
/* Teardown: cancel every subscription's RECV (the caller waits for their last CQEs). */
RING_INTERNAL void xtcp_close_cancel_all(struct xtcp_ring *r);
/* Teardown, after the wait: free the subscriptions; the provided buffers only if no close
 * RECV is in flight any more (else they are leaked: returns 1). */
RING_INTERNAL int xtcp_close_free(struct xtcp_ring *r);

/* ring_decoder.c: what a received chunk means, and the decode thread. */

/* Does this chunk end the job's dump? Sets j->finished (and j->error from the kernel). */
RING_INTERNAL void xtcp_chunk_scan(struct job *j, const uint8_t *p, size_t len);
/* Decode the chunk into the job's records and, if asked, encode them. 0 or -errno. */
RING_INTERNAL int xtcp_chunk_consume(struct xtcp_ring *r, struct job *j, const uint8_t *p, size_t len);
/* Start the decode thread (r->dec). 0 or -errno. */
RING_INTERNAL int xtcp_decoder_start(struct xtcp_ring *r);
/* Hand a received chunk (now the decode thread's) to it; waits while its queue is full. */
RING_INTERNAL void xtcp_decoder_push(struct xtcp_ring *r, uint32_t idx, uint8_t *buf, size_t len);
/* Until every chunk handed over is decoded. No-op without a decode thread. */
RING_INTERNAL void xtcp_decoder_drain(struct xtcp_ring *r);
/* Stop and join the decode thread, free it. No-op without one. */
RING_INTERNAL void xtcp_decoder_stop(struct xtcp_ring *r);

#endif
