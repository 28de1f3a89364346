/*
 * Close-event subscriptions on the dump ring (see close_events.h for why one ring, ring.h for
 * the API, ring.c for the jobs that share it).
 *
 * A subscription: (net id, fd, the records decoded and not yet taken). Its life: ARMED (one
 * multishot RECV in flight, picking buffers from the ring's provided-buffer ring) -> each CQE
 * carries one datagram in one buffer, decoded into close records at once and the buffer given
 * back -> a CQE without IORING_CQE_F_MORE ends the multishot (ENOBUFS: overrun or our buffers
 * ran out; anything else) and the RECV is armed again (IDLE until an SQE is free) ->
 * DRAINING (removal: its RECV cancelled by user_data and waited for, the socket read dry) ->
 * DRAINED (its last records wait for the one take that frees the slot) -> FREE. REMOVED: the
 * cancel did not complete in time, so the slot waits for the RECV's last CQE (dropped).
 * Buffers belong to the ring, not to a subscription: every CQE that carries one gives it back.
 *
 * Accounting: a RECV is one SQE in the ring's `inflight`/`close_inflight` until its last CQE
 * (no F_MORE); a cancel is one SQE with one CQE. xtcp_ring_reset never touches them (it
 * cancels jobs by user_data); xtcp_ring_free cancels them all and waits for every last CQE before the
 * buffers go.
 *
 * Over ~450 lines on purpose: one state machine (a subscription across CQEs, removal and
 * teardown) reads best whole; the socket side lives in close_socket.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "bufpool.h"
#include "close_events.h"
#include "nl.h"
#include "ring_internal.h"

#define BGID 1                /* our one buffer group */
#define NBUFS 512             /* provided buffers (power of two): 4 MiB; datagrams the ring can
                                 hold between two reaps before a multishot RECV pauses (ENOBUFS,
                                 nothing lost: the rest waits in the socket's receive queue) */
#define REMOVE_WAIT_NS 200000000ull   /* a cancelled netlink RECV completes in microseconds */

enum sub_state { SUB_FREE, SUB_ARMED, SUB_IDLE, SUB_REMOVED, SUB_DRAINING, SUB_DRAINED };

struct sub {
    uint32_t net_id;
    int fd;
    uint8_t state;
    uint8_t armed;          /* a RECV is in flight (counted in the ring's close_inflight) */
    uint8_t ready;          /* already listed in ready[] */
    struct xtcp_record *recs;
    size_t nrecs, cap;
    int64_t drops_seen;     /* sk_drops at the last ENOBUFS (or at add) */
    uint64_t lost, overflow, datagrams, bytes, decode_ns, starved;
    int32_t error;
    struct xtcp_decode_stats dstats;
};

struct closes {
    struct sub *subs;
    size_t nsubs, cap;      /* slots used (FREE ones are reused), allocated */
    uint32_t *ready;        /* subscriptions with something to take, across reaps */
    size_t nready;
    size_t idle;            /* subscriptions waiting for an SQE to be armed (a hint: see rearm) */
    uint8_t *bufs;          /* NBUFS x XTCP_CLOSES_RECV_LEN, registered as buffer group BGID */
    struct io_uring_buf_ring *br;
    int registered;         /* the buffer ring is registered with the kernel */
    int closing;            /* teardown: a RECV that ends is not armed again */
    int single;             /* multishot RECV refused (before 6.0): one buffer-select RECV each */
    struct xtcp_closes_stats st;
};

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void mark_ready(struct closes *c, uint32_t idx)
{
    struct sub *s = &c->subs[idx];
    if (s->ready)
        return;
    s->ready = 1;
    c->ready[c->nready++] = idx;   /* ready has room for every slot */
}

static int arm(struct xtcp_ring *r, uint32_t idx)
{
    struct closes *c = r->cl;
    struct sub *s = &c->subs[idx];
    if (c->closing) {
        s->state = SUB_IDLE;   /* never armed again: the ring is going away */
        return -ECANCELED;
    }
    struct io_uring_sqe *sqe =
        xtcp_ring_reserve(r, 1) == 0 ? xtcp_ring_sqe(r, XTCP_RING_OP_CLOSE, idx, s->net_id) : NULL;
    if (!sqe) {
        s->state = SUB_IDLE;   /* armed by the next reap */
        c->idle++;
        c->st.rearm_errors++;
        return -EBUSY;
    }
    uint64_t ud = sqe->user_data;
    if (c->single)
        io_uring_prep_recv(sqe, s->fd, NULL, XTCP_CLOSES_RECV_LEN, 0);
    else
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->user_data = ud;   /* the prep helpers clear it */
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    s->armed = 1;
    s->state = SUB_ARMED;
    return 0;
}

static void keep(struct xtcp_ring *r, struct sub *s, const uint8_t *p, size_t len)
{
    uint64_t t0 = now_ns();
    /* A datagram of len bytes holds at most this many socket messages. */
    size_t most = len / (XTCP_NL_HDR_LEN + XTCP_INET_DIAG_MSG_LEN) + 1;
    if (s->nrecs + most > XTCP_CLOSES_MAX_PENDING) {
        s->overflow += xtcp_count_socket_messages(p, len);
        return;
    }
    if (s->cap - s->nrecs < most) {
        size_t want = s->cap ? s->cap * 2 : 64;
        while (want < s->nrecs + most)
            want *= 2;
        void *q = xtcp_buf_grow(s->recs, want * sizeof *s->recs, XTCP_BUF_RECORDS);
        if (!q) {
            s->overflow += xtcp_count_socket_messages(p, len);
            return;
        }
        s->recs = q;
        s->cap = xtcp_buf_cap(q) / sizeof *s->recs;
    }
    int64_t k = xtcp_closes_decode(p, len, s->recs + s->nrecs, s->cap - s->nrecs, r->layout,
                                   real_ns(), &s->dstats);
    if (k > 0) {
        s->nrecs += (size_t)k;
        r->cl->st.records += (uint64_t)k;
    }
    s->decode_ns += now_ns() - t0;
}

static void give_back(struct closes *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_BUFFER))
        return;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (bid >= NBUFS)
        return;   /* never expected: not one of ours */
    io_uring_buf_ring_add(c->br, c->bufs + (size_t)bid * XTCP_CLOSES_RECV_LEN, XTCP_CLOSES_RECV_LEN, bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(c->br, 1);
}

static void release(struct sub *s)
{
    xtcp_buf_free(s->recs);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->state = SUB_FREE;
}

/* The kernel's drop counter moved since we last looked: that many events were lost. */
static uint64_t count_lost(struct closes *c, struct sub *s)
{
    int64_t drops = xtcp_socket_drops(s->fd);
    uint64_t lost = 1;   /* no drop counter (< 4.6): at least one */
    if (drops >= 0) {
        lost = drops > s->drops_seen ? (uint64_t)(drops - s->drops_seen) : 0;
        s->drops_seen = drops;
    }
    s->lost += lost;
    c->st.lost += lost;
    return lost;
}

void xtcp_close_cqe(struct xtcp_ring *r, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    uint32_t idx = xtcp_ring_unpack_request(ud);
    int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more && r->close_inflight) {   /* this SQE's last CQE */
        r->close_inflight--;
        r->inflight--;
    }
    struct closes *c = r->cl;
    if (!c) {
        r->st.unknown_completions++;   /* a close op before any subscription: never ours */
        return;
    }
    c->st.cqes++;
    if (xtcp_ring_unpack_op(ud) == XTCP_RING_OP_CLOSE_CANCEL)
        return;
    if (idx >= c->nsubs || c->subs[idx].net_id != xtcp_ring_unpack_net(ud) || !c->subs[idx].armed) {
        c->st.unknown_completions++;
        give_back(c, cqe);
        return;
    }
    struct sub *s = &c->subs[idx];
    if (!more)
        s->armed = 0;
    if (s->state == SUB_REMOVED) {
        give_back(c, cqe);
        if (!more)
            release(s);   /* its RECV is over: nothing names the slot any more */
        return;
    }
    int res = cqe->res;
    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        c->st.recvs++;
        s->datagrams++;
        s->bytes += (uint64_t)res;
        if (bid < NBUFS && (size_t)res <= XTCP_CLOSES_RECV_LEN)
            keep(r, s, c->bufs + (size_t)bid * XTCP_CLOSES_RECV_LEN, (size_t)res);
        give_back(c, cqe);   /* decoded: the kernel may fill it again */
        mark_ready(c, idx);
    } else if (res == -ENOBUFS) {
        /* Either the kernel dropped events (the socket overran: sk_drops grew by that many) or
         * our provided buffers ran out (nothing lost, the datagrams wait in the socket). */
        c->st.enobufs++;
        if (count_lost(c, s)) {
            mark_ready(c, idx);
        } else {
            s->starved++;
            c->st.starved++;
        }
    } else if (res == -EINVAL && !c->single && !s->datagrams) {
        c->single = 1;   /* no multishot RECV on this kernel: buffer-select RECVs, one each */
    } else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
        c->st.recv_errors++;
        s->error = -res;
        mark_ready(c, idx);
    } else {
        give_back(c, cqe);   /* a datagram without a buffer, or a buffer without one: never expected */
    }
    if (!more && s->state == SUB_ARMED)
        arm(r, idx);
}

void xtcp_close_rearm(struct xtcp_ring *r)
{
    struct closes *c = r->cl;
    if (!c->idle || c->closing)
        return;
    c->idle = 0;
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].state == SUB_IDLE && arm(r, (uint32_t)i) < 0)
            break;   /* arm counted it idle again; the SQ is full: the next reap goes on */
    for (size_t i = 0; i < c->nsubs; i++)
        c->idle += c->subs[i].state == SUB_IDLE;
}

static int setup_buffers(struct xtcp_ring *r, struct closes *c)
{
    size_t ring_len = NBUFS * sizeof(struct io_uring_buf);
    c->bufs = malloc((size_t)NBUFS * XTCP_CLOSES_RECV_LEN);
    void *br = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    c->br = br == MAP_FAILED ? NULL : br;
    if (!c->bufs || !c->br)
        return -ENOMEM;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = NBUFS;
    reg.bgid = BGID;
    int rc = io_uring_register_buf_ring(&r->uring, &reg, 0);   /* 5.19+ */
    if (rc < 0)
        return rc;
    c->registered = 1;
    io_uring_buf_ring_init(c->br);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(c->br, c->bufs + (size_t)i * XTCP_CLOSES_RECV_LEN, XTCP_CLOSES_RECV_LEN, i,
                              io_uring_buf_ring_mask(NBUFS), i);
    io_uring_buf_ring_advance(c->br, NBUFS);
    return 0;
}

/* Unregister and free the provided buffers: only once no RECV can pick one any more. */
static void free_buffers(struct xtcp_ring *r, struct closes *c)
{
    if (c->registered)
        io_uring_unregister_buf_ring(&r->uring, BGID);
    if (c->br)
        munmap(c->br, NBUFS * sizeof(struct io_uring_buf));
    free(c->bufs);
    c->registered = 0;
    c->br = NULL;
    c->bufs = NULL;
}

/* The ring's subscriptions, set up on the first one (its 4 MiB of buffers too). */
static int closes_of(struct xtcp_ring *r)
{
    if (r->cl)
        return 0;
    struct closes *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int rc = setup_buffers(r, c);
    if (rc < 0) {
        free_buffers(r, c);
        free(c);
        return rc;
    }
    r->cl = c;
    return 0;
}

int64_t xtcp_ring_close_add(xtcp_ring_t *r, uint32_t net_id, int fd)
{
    int rc = closes_of(r);
    if (rc < 0)
        return rc;
    struct closes *c = r->cl;
    size_t idx = 0;
    while (idx < c->nsubs && c->subs[idx].state != SUB_FREE)
        idx++;
    if (idx > XTCP_RING_REQUEST_MAX)
        return -E2BIG;
    if (idx == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct sub *subs = realloc(c->subs, cap * sizeof *subs);   /* no SQE points into it */
        if (!subs)
            return -ENOMEM;
        c->subs = subs;
        uint32_t *ready = realloc(c->ready, cap * sizeof *ready);
        if (!ready)
            return -ENOMEM;
        c->ready = ready;
        c->cap = cap;
    }
    struct sub *s = &c->subs[idx];
    memset(s, 0, sizeof *s);
    s->net_id = net_id;
    s->fd = fd;
    int64_t drops = xtcp_socket_drops(fd);
    s->drops_seen = drops > 0 ? drops : 0;
    if (idx == c->nsubs)
        c->nsubs++;
    arm(r, (uint32_t)idx);   /* or IDLE: armed by the next reap */
    c->st.subscriptions++;
    return (int64_t)idx;
}

/* Read whatever is still queued on a subscription's socket (no RECV of ours is in flight):
 * the events of a namespace going away are kept, not dropped with the socket. */
static void drain_socket(struct xtcp_ring *r, struct sub *s)
{
    uint8_t buf[XTCP_CLOSES_RECV_LEN];
    for (int i = 0; i < (1 << 20); i++) {
        ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            r->cl->st.recvs++;
            s->datagrams++;
            s->bytes += (uint64_t)n;
            keep(r, s, buf, (size_t)n);
        } else if (n < 0 && errno == ENOBUFS) {
            count_lost(r->cl, s);
        } else {
            break;   /* EAGAIN: empty; anything else: nothing more to read */
        }
    }
}

int xtcp_ring_close_remove(xtcp_ring_t *r, uint32_t idx)
{
    struct closes *c = r->cl;
    if (!c || idx >= c->nsubs || c->subs[idx].state == SUB_FREE || c->subs[idx].state >= SUB_REMOVED)
        return -ENOENT;
    struct sub *s = &c->subs[idx];
    c->st.subscriptions--;
    s->state = SUB_DRAINING;   /* no re-arm from here on; an IDLE one leaves the idle hint stale */
    if (s->armed) {
        struct io_uring_sqe *sqe = xtcp_ring_reserve(r, 1) == 0
            ? xtcp_ring_sqe(r, XTCP_RING_OP_CLOSE_CANCEL, idx, s->net_id) : NULL;
        if (sqe) {
            uint64_t ud = sqe->user_data;
            io_uring_prep_cancel64(sqe, xtcp_ring_pack(XTCP_RING_OP_CLOSE, idx, s->net_id), 0);
            sqe->user_data = ud;
        }
        /* Submitted and waited for while the fd is still open (the caller closes it after we
         * return); what the RECV still delivers before its end is kept. Other completions met
         * meanwhile (a poll's, other subscriptions') are handled as a reap would, and their
         * follow-up SQEs submitted; the eventfd stays signalled for the caller's next reap. */
        xtcp_ring_flush(r);
        uint64_t start = now_ns();
        while (s->armed && now_ns() - start < REMOVE_WAIT_NS) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
            struct io_uring_cqe *cqe;
            io_uring_wait_cqe_timeout(&r->uring, &cqe, &ts);
            xtcp_ring_process(r);
            xtcp_ring_flush(r);
        }
        if (s->armed) {
            /* Never expected: the slot waits for the RECV's end, what it brings is dropped. */
            s->state = SUB_REMOVED;
            c->st.remove_timeouts++;
            xtcp_buf_free(s->recs);
            s->recs = NULL;
            s->nrecs = s->cap = 0;
            return -ETIMEDOUT;
        }
    }
    drain_socket(r, s);
    s->state = SUB_DRAINED;
    xtcp_ring_flush(r);   /* re-arms queued by the CQEs of others handled above */
    return 0;
}

int64_t xtcp_ring_close_ready(xtcp_ring_t *r, uint32_t *ready, size_t max)
{
    struct closes *c = r->cl;
    size_t k = 0;
    while (c && k < max && c->nready) {
        uint32_t idx = c->ready[--c->nready];
        c->subs[idx].ready = 0;
        if (c->subs[idx].state == SUB_ARMED || c->subs[idx].state == SUB_IDLE)
            ready[k++] = idx;
    }
    return (int64_t)k;
}

int xtcp_ring_close_take(xtcp_ring_t *r, uint32_t idx, struct xtcp_closes_output *out)
{
    memset(out, 0, sizeof *out);
    struct closes *c = r->cl;
    if (!c || idx >= c->nsubs || c->subs[idx].state == SUB_FREE || c->subs[idx].state == SUB_REMOVED ||
        c->subs[idx].state == SUB_DRAINING)
        return -ENOENT;
    struct sub *s = &c->subs[idx];
    out->records = s->nrecs ? s->recs : NULL;
    out->count = s->nrecs;
    if (s->nrecs) {
        s->recs = NULL;
        s->nrecs = s->cap = 0;
    }
    out->lost = s->lost;
    out->overflow = s->overflow;
    out->datagrams = s->datagrams;
    out->bytes = s->bytes;
    out->decode_ns = s->decode_ns;
    out->error = s->error;
    out->stats = s->dstats;
    s->lost = s->overflow = s->datagrams = s->bytes = s->decode_ns = 0;
    s->error = 0;
    memset(&s->dstats, 0, sizeof s->dstats);
    if (s->state == SUB_DRAINED)
        release(s);   /* removed: this was its last take */
    return 0;
}

uint64_t xtcp_ring_close_pending(const xtcp_ring_t *r)
{
    uint64_t n = 0;
    for (size_t i = 0; r->cl && i < r->cl->nsubs; i++)
        n += r->cl->subs[i].nrecs;
    return n;
}

void xtcp_ring_close_stats(const xtcp_ring_t *r, struct xtcp_closes_stats *out)
{
    if (r->cl)
        *out = r->cl->st;
    else
        memset(out, 0, sizeof *out);
}

void xtcp_close_cancel_all(struct xtcp_ring *r)
{
    /* Teardown, after the jobs' reset: whatever is still in flight is a subscription's
     * (or a poisoned ring's leftovers): cancel it all, and re-arm nothing that ends. */
    r->cl->closing = 1;
    if (xtcp_ring_reserve(r, 1) < 0)
        return;
    struct io_uring_sqe *sqe = xtcp_ring_sqe(r, XTCP_RING_OP_CLOSE_CANCEL, 0, 0);
    if (sqe) {
        uint64_t ud = sqe->user_data;
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        sqe->user_data = ud;
    }
}

int xtcp_close_free(struct xtcp_ring *r)
{
    struct closes *c = r->cl;
    int leaked = r->close_inflight != 0;
    if (!leaked)
        free_buffers(r, c);   /* else the kernel may still write there: never free them */
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].state != SUB_FREE)
            xtcp_buf_free(c->subs[i].recs);
    free(c->subs);
    free(c->ready);
    free(c);
    r->cl = NULL;
    return leaked;
}
