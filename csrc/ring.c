/*
 * io_uring dump driver (see ring.h for the API). The chunk path and the decode thread are in
 * ring_decoder.c; what both share is in ring_internal.h. Over 450 lines on purpose: it is one
 * state machine (the job life below), and its invariants (one CQE per SQE, buffers live while
 * named by an SQE) are easiest to check in one file.
 *
 * Theory of operation. A job is one dump: (net id, fd, family, request). Its life:
 *
 *   QUEUED  -- another job of the same fd is running; starts when that one finishes
 *   RUNNING -- SEND(request) linked to RECV(buf[0]); each RECV with data is scanned and, unless
 *              it ended the dump, followed at once by the next RECV into the other buffer; then
 *              the chunk is decoded into the job's records (and encoded, if asked), while the
 *              kernel builds the next chunk inline in the next submit (decoded by the
 *              decode thread, if any, while it does)
 *   DONE    -- NLMSG_DONE / NLMSG_ERROR seen, or an error, or cancelled, AND no SQE of the job
 *              is in flight any more; only then is it reported, and only then may its buffers
 *              be moved or freed (a buffer named by an in-flight SQE lives until its CQE).
 *
 * Rules: (1) one dump per fd at a time (the kernel answers EBUSY otherwise), so jobs on one fd
 * are chained in the order added; (2) at most one RECV per job in flight, so two receive
 * buffers per job are enough and the records and encoded bytes, which no SQE names, may grow
 * with realloc; (3) every SQE is counted in `inflight` until its last CQE: a job's SQEs have
 * exactly one (no SEND_ZC), a close subscription's multishot RECV ends with the one without
 * IORING_CQE_F_MORE; so the counts are exact and teardown knows when it may free memory.
 *
 * The close-event subscriptions (close_events.c) share the ring and outlive the jobs: their
 * CQEs (ops CLOSE, CLOSE_CANCEL) go to xtcp_close_cqe, `close_inflight` counts their SQEs, and
 * a reset waits only for the jobs' (`inflight - close_inflight`) after cancelling them by
 * user_data (their ops SEND and RECV, never CLOSE).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "bufpool.h"
#include "nl.h"
#include "ring_internal.h"

#define REAP_BATCH 128
#define TEARDOWN_WAIT_NS 2000000000ull   /* cancelled netlink ops complete in microseconds */

_Static_assert(sizeof(struct xtcp_ring_event) == 48, "event layout is part of the cffi ABI");
_Static_assert(sizeof(((struct xtcp_ring_stats *)0)->cqe_errors) / sizeof(uint64_t) ==
               XTCP_RING_ERRNO_SLOTS, "cqe_errors has one slot per errno");

static void count_error(struct xtcp_ring *r, int err)
{
    r->st.cqe_errors[err >= XTCP_RING_ERRNO_SLOTS ? XTCP_RING_ERRNO_SLOTS - 1 : err]++;
}

/* Submit what is queued. An error leaves the SQEs in the SQ ring for the next call. */
static int flush(struct xtcp_ring *r)
{
    if (!io_uring_sq_ready(&r->uring))
        return 0;
    r->st.submits++;
    r->st.enters++;
    int n = io_uring_submit(&r->uring);
    if (n < 0)
        r->st.submit_errors++;
    return n;
}

/* n free SQEs, submitting what is queued if the SQ ring is full. */
static int reserve(struct xtcp_ring *r, unsigned n)
{
    if (io_uring_sq_space_left(&r->uring) >= n)
        return 0;
    int rc = flush(r);
    if (rc < 0)
        return rc;
    return io_uring_sq_space_left(&r->uring) >= n ? 0 : -EBUSY;
}

static struct io_uring_sqe *sqe_for(struct xtcp_ring *r, uint32_t op, uint32_t job, uint32_t net)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (sqe) {
        sqe->user_data = xtcp_ring_pack(op, job, net);
        r->inflight++;
        if (close_op(op))
            r->close_inflight++;   /* counted in the close stats, not the jobs' */
        else
            r->st.sqes++;
    }
    return sqe;
}

/* SQEs of the jobs without their last CQE. */
static uint64_t jobs_inflight(const struct xtcp_ring *r)
{
    return r->inflight - r->close_inflight;
}

static void lock_spares(struct xtcp_ring *r)
{
    if (r->dec)
        pthread_mutex_lock(&r->dec->lock);
}

static void unlock_spares(struct xtcp_ring *r)
{
    if (r->dec)
        pthread_mutex_unlock(&r->dec->lock);
}

static uint8_t *take_buffer(struct xtcp_ring *r)
{
    lock_spares(r);
    uint8_t *buf = r->nspare ? r->spare[--r->nspare] : NULL;
    unlock_spares(r);
    return buf ? buf : malloc(XTCP_RING_RECV_MIN);
}

static void give_back_buffers(struct xtcp_ring *r, struct job *j)
{
    lock_spares(r);
    for (int i = 0; i < 2; i++) {
        if (j->buf[i])
            put_buffer_locked(r, j->buf[i]);
        j->buf[i] = NULL;
    }
    unlock_spares(r);
}

/* Queue the next RECV into buf[cur] (taken from the spare list, or allocated, when missing). */
static int arm_recv(struct xtcp_ring *r, uint32_t idx, unsigned sqe_flags)
{
    struct job *j = &r->jobs[idx];
    if (!j->buf[j->cur]) {
        j->buf[j->cur] = take_buffer(r);
        if (!j->buf[j->cur])
            return -ENOMEM;
    }
    struct io_uring_sqe *sqe = sqe_for(r, XTCP_RING_OP_RECV, idx, j->net_id);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv(sqe, j->fd, j->buf[j->cur], XTCP_RING_RECV_MIN, 0);
    io_uring_sqe_set_flags(sqe, sqe_flags);
    j->inflight++;
    return 0;
}

/* Put a job on the done FIFO: reap hands it to Python next. */
static void report(struct xtcp_ring *r, uint32_t idx)
{
    struct job *j = &r->jobs[idx];
    if (j->decode_error && !j->error)
        j->error = j->decode_error;
    j->reported = 1;
    j->end_ns = now_ns();
    r->done[r->done_tail++] = idx;
    r->st.jobs++;
    if (j->error)
        r->st.jobs_failed++;
}

static void report_or_defer(struct xtcp_ring *r, uint32_t idx)
{
    struct job *j = &r->jobs[idx];
    if (!r->dec || drained(j)) {
        report(r, idx);
        return;
    }
    atomic_fetch_add(&r->awaiting, 1);
    if (drained(j)) {   /* the decode thread finished in between: it may not have seen us */
        atomic_fetch_sub(&r->awaiting, 1);
        report(r, idx);
        return;
    }
    j->deferred = 1;
}

/* Report the deferred jobs the decode thread has finished with. */
static void report_drained(struct xtcp_ring *r)
{
    if (!r->dec || !atomic_load(&r->awaiting))
        return;
    for (size_t i = 0; i < r->njobs; i++) {
        struct job *j = &r->jobs[i];
        if (j->deferred && drained(j)) {
            j->deferred = 0;
            atomic_fetch_sub(&r->awaiting, 1);
            report(r, (uint32_t)i);
        }
    }
}

static void finish(struct xtcp_ring *r, uint32_t idx, int err);

/* SEND linked to the first RECV: one submit starts the dump and its first read. The SEND
 * builds the first skb (for a small namespace, the whole walk of the host-wide ehash), so
 * XTCP_RING_ASYNC on it alone already spreads small namespaces over io-wq workers. */
static void start_job(struct xtcp_ring *r, uint32_t idx)
{
    struct job *j = &r->jobs[idx];
    unsigned async = (r->flags & XTCP_RING_ASYNC) ? IOSQE_ASYNC : 0;
    unsigned rasync = (r->flags & XTCP_RING_ASYNC_RECV) ? IOSQE_ASYNC : 0;
    j->state = JOB_RUNNING;
    j->start_ns = now_ns();
    int rc = reserve(r, 2);
    if (rc < 0) {
        finish(r, idx, -rc);
        return;
    }
    struct io_uring_sqe *sqe = sqe_for(r, XTCP_RING_OP_SEND, idx, j->net_id);
    io_uring_prep_send(sqe, j->fd, j->req, j->req_len, 0);
    io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK | async);
    j->inflight++;
    rc = arm_recv(r, idx, rasync);
    if (rc < 0) {
        /* Unlink, or the next SQE queued (another job's) would hang off this SEND. */
        io_uring_sqe_set_flags(sqe, async);
        j->finished = 1;
        if (!j->error)
            j->error = -rc;
    }
}

/* Once nothing of a job is in flight: report it (when its chunks are decoded), then start (or
 * fail) the job queued behind it on the same fd. */
static void complete(struct xtcp_ring *r, uint32_t idx)
{
    for (;;) {
        struct job *j = &r->jobs[idx];
        j->state = JOB_DONE;
        give_back_buffers(r, j);   /* no SQE of this job is in flight any more */
        report_or_defer(r, idx);
        if (j->next < 0)
            return;
        uint32_t nxt = (uint32_t)j->next;
        /* Cut short (timeout, teardown): the fd may still hold a running dump. */
        int inherited = (r->draining || (j->cancel_errno && j->error)) ? ECANCELED : 0;
        if (!inherited) {
            start_job(r, nxt);
            return;
        }
        /* A new dump there would get EBUSY: fail the chain now, so a stuck namespace costs
         * one timeout, not one per family. */
        struct job *n = &r->jobs[nxt];
        n->start_ns = now_ns();
        n->finished = 1;
        n->error = inherited;
        idx = nxt;
    }
}

static void finish(struct xtcp_ring *r, uint32_t idx, int err)
{
    struct job *j = &r->jobs[idx];
    j->finished = 1;
    if (err && !j->error)
        j->error = err;
    if (j->inflight == 0 && j->state != JOB_DONE)
        complete(r, idx);
}

static void handle_cqe(struct xtcp_ring *r, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    uint32_t op = xtcp_ring_unpack_op(ud), idx = xtcp_ring_unpack_request(ud);
    int res = cqe->res;

    if (close_op(op)) {
        xtcp_close_cqe(r, cqe);
        return;
    }
    r->st.cqes++;
    if (jobs_inflight(r))
        r->inflight--;   /* never below the close subscriptions' share */
    if (res < 0)
        count_error(r, -res);
    if (op == XTCP_RING_OP_CANCEL || op == XTCP_RING_OP_NOP) {
        if (op == XTCP_RING_OP_NOP && ud != xtcp_ring_pack(XTCP_RING_OP_NOP, 0, 0))
            r->st.unknown_completions++;
        return;
    }
    if ((op != XTCP_RING_OP_SEND && op != XTCP_RING_OP_RECV) || idx >= r->njobs ||
        r->jobs[idx].net_id != xtcp_ring_unpack_net(ud) || r->jobs[idx].inflight == 0) {
        r->st.unknown_completions++;
        return;
    }
    struct job *j = &r->jobs[idx];
    j->inflight--;
    if (op == XTCP_RING_OP_SEND) {
        if (res < 0)
            finish(r, idx, -res);          /* its linked RECV comes back ECANCELED */
        else if ((size_t)res != j->req_len)
            finish(r, idx, EMSGSIZE);      /* netlink sends whole datagrams; never expected */
        else if (j->finished && j->inflight == 0 && j->state != JOB_DONE)
            complete(r, idx);
        return;
    }
    uint8_t *chunk = NULL;
    if (res > 0) {
        chunk = j->buf[j->cur];
        xtcp_chunk_scan(j, chunk, (size_t)res);
        j->bytes += (uint64_t)res;
        j->recvs++;
        r->st.recvs++;
        r->st.bytes += (uint64_t)res;
    } else if (res == 0) {
        j->finished = 1;                   /* a dump never sends an empty datagram */
        if (!j->error)
            j->error = ENODATA;
    } else {
        /* Our own cancel (timeout, teardown) says why; otherwise keep the first error. */
        j->finished = 1;
        if (!j->error)
            j->error = j->cancel_errno && res == -ECANCELED ? j->cancel_errno : -res;
    }
    if (!j->finished && (j->cancel_errno || r->draining)) {
        j->finished = 1;
        j->error = j->cancel_errno ? j->cancel_errno : ECANCELED;
    }
    if (chunk && r->dec) {
        j->buf[j->cur] = NULL;   /* the decode thread's now; the next RECV takes a fresh one */
        xtcp_decoder_push(r, idx, chunk, (size_t)res);
        chunk = NULL;
    }
    if (!j->finished) {
        /* Arm the next RECV (reap's next submit runs it: the kernel copies chunk n+1 out and
         * builds n+2, while the decode thread, if any, decodes chunk n). Inline decoding
         * reads chunk n below, so that RECV gets the other buffer. */
        if (!r->dec)
            j->cur ^= 1;
        int rc = reserve(r, 1);
        if (rc == 0)
            rc = arm_recv(r, idx, (r->flags & XTCP_RING_ASYNC_RECV) ? IOSQE_ASYNC : 0);
        if (rc < 0) {
            j->finished = 1;
            j->error = -rc;
        }
    }
    if (chunk) {
        int rc = xtcp_chunk_consume(r, j, chunk, (size_t)res);
        if (rc < 0 && !j->error) {
            j->finished = 1;   /* the RECV armed above still completes; nothing follows it */
            j->error = -rc;
        }
    }
    if (j->finished && j->inflight == 0 && j->state != JOB_DONE)
        complete(r, idx);
}

/* Process every CQE that is ready now. Returns how many. */
static unsigned process_ready(struct xtcp_ring *r)
{
    struct io_uring_cqe *cqes[REAP_BATCH];
    unsigned total = 0, n;
    while ((n = io_uring_peek_batch_cqe(&r->uring, cqes, REAP_BATCH)) > 0) {
        for (unsigned i = 0; i < n; i++)
            handle_cqe(r, cqes[i]);
        io_uring_cq_advance(&r->uring, n);
        total += n;
    }
    return total;
}

static int grow_jobs(struct xtcp_ring *r)
{
    size_t cap = r->jobs_cap ? r->jobs_cap * 2 : 64;
    struct job *jobs = realloc(r->jobs, cap * sizeof *jobs);   /* no SQE points into it */
    if (!jobs)
        return -ENOMEM;
    r->jobs = jobs;
    int64_t *done = realloc(r->done, cap * sizeof *done);
    if (!done)
        return -ENOMEM;
    r->done = done;
    r->jobs_cap = cap;
    return 0;
}

static int fd_slot(struct xtcp_ring *r, int fd)
{
    if ((size_t)fd < r->fd_cap)
        return 0;
    size_t cap = r->fd_cap ? r->fd_cap : 256;
    while (cap <= (size_t)fd)
        cap *= 2;
    int32_t *p = realloc(r->fd_last, cap * sizeof *p);
    if (!p)
        return -ENOMEM;
    for (size_t i = r->fd_cap; i < cap; i++)
        p[i] = -1;
    r->fd_last = p;
    r->fd_cap = cap;
    return 0;
}

xtcp_ring_t *xtcp_ring_new(unsigned entries, int flags, int *err)
{
    struct xtcp_ring *r = calloc(1, sizeof *r);
    if (!r) {
        *err = ENOMEM;
        return NULL;
    }
    r->flags = flags;
    r->efd = -1;
    if (entries == 0)
        entries = 256;
    /* The CQ holds up to two completions per running job; size it for ~thousands of
     * namespaces so the kernel's overflow list (NODROP) stays a rare path. */
    r->layout = XTCP_TCP_INFO_LAYOUT_6_18;
    r->framing = XTCP_RING_NO_ENCODE;
    /* Cooperative task work (5.19+): the kernel finishes a completion (moves a close datagram
     * into a provided buffer, a dump chunk's poll-driven RECV) when our thread next enters the
     * kernel or sleeps, not by interrupting it with an IPI per event. Not DEFER_TASKRUN:
     * measured on 6.18, after an overrun (ENOBUFS) its re-armed multishot RECV never completed
     * again and every later close event was lost unseen (benchmarks/README.md). SUBMIT_ALL is
     * 5.18+; older kernels get the plain ring. */
    static const unsigned setups[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, IORING_SETUP_SUBMIT_ALL, 0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof setups / sizeof *setups && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | setups[i];
        p.cq_entries = entries * 16 < 4096 ? 4096 : entries * 16;
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
    }
    if (rc < 0) {
        free(r);
        *err = -rc;
        return NULL;
    }
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        *err = errno;
        io_uring_queue_exit(&r->uring);
        free(r);
        return NULL;
    }
    rc = io_uring_register_eventfd(&r->uring, r->efd);
    if (rc == 0 && (flags & XTCP_RING_DECODE_THREAD))
        rc = xtcp_decoder_start(r);
    if (rc < 0) {
        *err = -rc;
        close(r->efd);
        io_uring_queue_exit(&r->uring);
        free(r);
        return NULL;
    }
    *err = 0;
    return r;
}

int xtcp_ring_eventfd(const xtcp_ring_t *ring) { return ring->efd; }

int xtcp_ring_set_output(xtcp_ring_t *r, int tcp_info_layout, int framing)
{
    if (framing != XTCP_RING_NO_ENCODE && framing != XTCP_FRAME_DELIMITED &&
        framing != XTCP_FRAME_ENVELOPE_ROWS)
        return -EINVAL;   /* FRAME_SINGLE holds one record: no framing for a whole dump */
    if (tcp_info_layout != XTCP_TCP_INFO_LAYOUT_6_18 && tcp_info_layout != XTCP_TCP_INFO_LAYOUT_7_0)
        return -EINVAL;
    r->layout = tcp_info_layout;
    r->framing = framing;
    return 0;
}

int64_t xtcp_ring_add_job(xtcp_ring_t *r, uint32_t net_id, int fd, const uint8_t *req,
                          size_t req_len, uint8_t family, const uint8_t *label, size_t label_len)
{
    if (r->poisoned)
        return -EBUSY;
    if (req_len < XTCP_NL_HDR_LEN || req_len > UINT32_MAX)
        return -EINVAL;
    if (r->njobs > XTCP_RING_REQUEST_MAX)
        return -E2BIG;
    if (r->njobs == r->jobs_cap && grow_jobs(r) < 0)
        return -ENOMEM;
    if (fd >= 0 && fd_slot(r, fd) < 0)
        return -ENOMEM;
    uint8_t *copy = malloc(req_len + label_len);   /* lives until the SEND's CQE and the encode */
    if (!copy)
        return -ENOMEM;
    memcpy(copy, req, req_len);
    if (label_len)
        memcpy(copy + req_len, label, label_len);

    uint32_t idx = (uint32_t)r->njobs++;
    struct job *j = &r->jobs[idx];
    memset(j, 0, sizeof *j);
    j->net_id = net_id;
    j->fd = fd;
    j->family = family;
    j->state = JOB_QUEUED;
    j->next = -1;
    j->req = copy;
    j->req_len = req_len;
    j->label = copy + req_len;
    j->label_len = label_len;
    j->seq = xtcp_nl_ld32(copy + 8);   /* nlmsg_seq */

    /* A bad fd gets no chaining: its SEND fails on its own with EBADF. */
    int64_t prev = fd >= 0 ? r->fd_last[fd] : -1;
    if (fd >= 0)
        r->fd_last[fd] = (int32_t)idx;
    if (prev >= 0 && r->jobs[prev].state != JOB_DONE)
        r->jobs[prev].next = idx;
    else
        start_job(r, idx);
    return idx;
}

int xtcp_ring_submit(xtcp_ring_t *r)
{
    return flush(r);
}

int64_t xtcp_ring_reap(xtcp_ring_t *r, struct xtcp_ring_event *events, size_t max,
                       uint64_t budget_ns)
{
    uint64_t drained;
    /* First the eventfd, then the CQ: a CQE posted after this read signals it again. */
    if (read(r->efd, &drained, sizeof drained) < 0 && errno != EAGAIN)
        return -errno;
    uint64_t t0 = budget_ns ? now_ns() : 0;
    for (;;) {
        unsigned n = process_ready(r);
        if (r->cl)
            xtcp_close_rearm(r);
        /* Re-armed RECVs usually complete inside this submit (the next skb is built while
         * the previous one is read), so keep going: a whole dump often ends in one call. */
        if (flush(r) < 0 && n == 0)
            break;
        if (n == 0 && io_uring_cq_ready(&r->uring) == 0)
            break;
        if (budget_ns && now_ns() - t0 >= budget_ns) {
            /* Out of budget with CQEs left: their eventfd signal was read above, so signal
             * again, or nothing would wake the caller for them. */
            if (io_uring_cq_ready(&r->uring)) {
                uint64_t one = 1;
                ssize_t w = write(r->efd, &one, sizeof one);
                (void)w;   /* EAGAIN: the counter is already nonzero */
            }
            break;
        }
    }
    if (r->dec && atomic_load(&r->awaiting))
        xtcp_decoder_drain(r);   /* at most WORK_SLOTS chunks: cheaper than a trip through the loop */
    report_drained(r);
    size_t k = 0;
    while (k < max && r->done_head < r->done_tail) {
        struct job *j = &r->jobs[r->done[r->done_head++]];
        struct xtcp_ring_event *e = &events[k++];
        memset(e, 0, sizeof *e);
        e->job = (uint32_t)(j - r->jobs);
        e->net_id = j->net_id;
        e->error = j->error;
        e->recvs = j->recvs;
        e->bytes = j->bytes;
        e->start_ns = j->start_ns;
        e->end_ns = j->end_ns;
        e->family = j->family;
    }
    return (int64_t)k;
}

int64_t xtcp_ring_expire(xtcp_ring_t *r, uint64_t timeout_ns, uint64_t *next_ns)
{
    uint64_t now = now_ns(), next = 0;
    int64_t cancelled = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        struct job *j = &r->jobs[i];
        if (j->state != JOB_RUNNING || j->cancel_errno)
            continue;
        uint64_t age = now - j->start_ns;
        if (age < timeout_ns) {
            uint64_t left = timeout_ns - age;
            if (!next || left < next)
                next = left;
            continue;
        }
        j->cancel_errno = ETIMEDOUT;
        r->st.timeouts++;
        cancelled++;
        if (j->inflight == 0) {            /* cannot happen while RUNNING; be safe */
            finish(r, (uint32_t)i, ETIMEDOUT);
            continue;
        }
        /* Everything of this job is on its fd, and nothing else is (one dump per fd). */
        int rc = reserve(r, 1);
        struct io_uring_sqe *sqe = rc == 0 ? sqe_for(r, XTCP_RING_OP_CANCEL, (uint32_t)i, j->net_id) : NULL;
        if (sqe)
            io_uring_prep_cancel_fd(sqe, j->fd, IORING_ASYNC_CANCEL_ALL);
    }
    *next_ns = next;
    int rc = flush(r);
    return rc < 0 ? rc : cancelled;
}

size_t xtcp_ring_pending(const xtcp_ring_t *r)
{
    size_t reported = r->done_head;
    return r->njobs - reported;
}

int xtcp_ring_job_take(xtcp_ring_t *r, uint32_t job, struct xtcp_ring_output *out)
{
    memset(out, 0, sizeof *out);
    if (job >= r->njobs || !r->jobs[job].reported || r->jobs[job].taken)
        return -ENOENT;
    struct job *j = &r->jobs[job];
    j->taken = 1;
    out->records = j->nrecs ? j->recs : NULL;
    out->count = j->nrecs;
    out->encoded = j->out_len ? j->out : NULL;
    out->encoded_len = j->out_len;
    out->decode_ns = j->decode_ns;
    out->encode_ns = j->encode_ns;
    out->stats = j->dstats;
    if (!j->nrecs)
        xtcp_buf_free(j->recs);
    if (!j->out_len)
        xtcp_buf_free(j->out);
    j->recs = NULL;
    j->out = NULL;
    j->nrecs = j->recs_cap = j->out_len = j->out_cap = 0;
    return 0;
}

/* Reap until pending(r) is 0 or TEARDOWN_WAIT_NS passed: reset waits for the jobs' CQEs
 * (the close subscriptions stay armed), teardown for every SQE's last CQE. */
static void wait_while(struct xtcp_ring *r, uint64_t (*pending)(const struct xtcp_ring *))
{
    uint64_t deadline = now_ns() + TEARDOWN_WAIT_NS;
    flush(r);
    while (pending(r)) {
        process_ready(r);
        uint64_t now = now_ns();
        if (!pending(r) || now >= deadline)
            break;
        struct __kernel_timespec ts = {
            .tv_sec = (long long)((deadline - now) / 1000000000ull),
            .tv_nsec = (long long)((deadline - now) % 1000000000ull),
        };
        struct io_uring_cqe *cqe;
        r->st.enters++;
        int w = io_uring_wait_cqe_timeout(&r->uring, &cqe, &ts);
        if (w < 0 && w != -ETIME && w != -EINTR)
            break;
    }
    process_ready(r);
}

int xtcp_ring_reset(xtcp_ring_t *r)
{
    int rc = 0;
    r->draining = 1;
    for (size_t i = 0; i < r->njobs; i++)
        if (!r->jobs[i].cancel_errno)
            r->jobs[i].cancel_errno = ECANCELED;
    flush(r);   /* queued SQEs name our buffers too: let them run into the cancels below */
    if (jobs_inflight(r)) {
        /* By user_data, each running job's SEND and RECV (exact, whatever became of its fd):
         * the close subscriptions' RECVs (op CLOSE) stay armed. */
        static const uint32_t ops[] = {XTCP_RING_OP_SEND, XTCP_RING_OP_RECV};
        for (size_t i = 0; i < r->njobs; i++) {
            struct job *j = &r->jobs[i];
            for (size_t k = 0; j->inflight && k < 2; k++) {
                struct io_uring_sqe *sqe =
                    reserve(r, 1) == 0 ? sqe_for(r, XTCP_RING_OP_CANCEL, (uint32_t)i, j->net_id) : NULL;
                if (sqe)
                    io_uring_prep_cancel64(sqe, xtcp_ring_pack(ops[k], (uint32_t)i, j->net_id),
                                           IORING_ASYNC_CANCEL_ALL);
            }
        }
        wait_while(r, jobs_inflight);
    }
    xtcp_decoder_drain(r);   /* it may still write records of these jobs */
    atomic_store(&r->awaiting, 0);
    for (size_t i = 0; i < r->njobs; i++) {
        struct job *j = &r->jobs[i];
        xtcp_buf_free(j->recs);    /* never named by an SQE */
        xtcp_buf_free(j->out);
        if (j->inflight) {
            r->st.leaked_buffers++;    /* the kernel may still write here: never free it */
            rc = -ETIMEDOUT;
        } else {
            give_back_buffers(r, j);
            free(j->req);
        }
        if (j->fd >= 0 && (size_t)j->fd < r->fd_cap)
            r->fd_last[j->fd] = -1;
    }
    if (rc < 0)
        r->poisoned = 1;    /* a late CQE could otherwise name a new job with the same index */
    r->njobs = 0;
    r->done_head = r->done_tail = 0;
    r->draining = 0;
    return rc;
}

void xtcp_ring_stats(const xtcp_ring_t *r, struct xtcp_ring_stats *out) { *out = r->st; }

struct io_uring_sqe *xtcp_ring_sqe(struct xtcp_ring *r, uint32_t op, uint32_t request, uint32_t net)
{
    return sqe_for(r, op, request, net);
}

int xtcp_ring_reserve(struct xtcp_ring *r, unsigned n) { return reserve(r, n); }

int xtcp_ring_flush(struct xtcp_ring *r) { return flush(r); }

unsigned xtcp_ring_process(struct xtcp_ring *r) { return process_ready(r); }

int xtcp_ring_queue_nop(xtcp_ring_t *r, uint64_t user_data)
{
    int rc = reserve(r, 1);
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = sqe_for(r, XTCP_RING_OP_NOP, 0, 0);
    io_uring_prep_nop(sqe);
    sqe->user_data = user_data;
    if (close_op(xtcp_ring_unpack_op(user_data))) {
        r->close_inflight++;   /* its CQE is accounted as the close side's */
        r->st.sqes--;
    }
    return 0;
}

static uint64_t any_inflight(const struct xtcp_ring *r) { return r->inflight; }

/* Teardown: wait until every SQE's last CQE came (or TEARDOWN_WAIT_NS passed). */
static void wait_all(struct xtcp_ring *r)
{
    wait_while(r, any_inflight);
}

int xtcp_ring_free(xtcp_ring_t *r)
{
    if (!r)
        return 0;
    int rc = xtcp_ring_reset(r);
    if (r->cl) {
        xtcp_close_cancel_all(r);
        wait_all(r);
        if (xtcp_close_free(r))
            rc = -ETIMEDOUT;   /* a close RECV never ended: its buffers stay mapped */
    }
    xtcp_decoder_stop(r);
    io_uring_queue_exit(&r->uring);   /* also drops the eventfd registration */
    close(r->efd);
    while (r->nspare)
        free(r->spare[--r->nspare]);
    free(r->jobs);
    free(r->done);
    free(r->fd_last);
    free(r);
    return rc;
}
