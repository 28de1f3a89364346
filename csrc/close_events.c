/*
 * Close-event subscriptions on a ring of their own (see close_events.h for why).
 *
 * A subscription: (net id, fd, the records decoded and not yet taken). Its life: ARMED (one
 * multishot RECV in flight, picking buffers from the ring's provided-buffer ring) -> each CQE
 * carries one datagram in one buffer, decoded into close records at once and the buffer given
 * back -> a CQE without IORING_CQE_F_MORE ends the multishot (ENOBUFS: overrun or our buffers
 * ran out; anything else) and the RECV is armed again -> REMOVED (a cancel by user_data was
 * queued; records freed) -> FREE once the RECV's last CQE (no F_MORE) came. Buffers belong to
 * the ring, not to a subscription: a CQE of a removed subscription still gives its buffer back.
 *
 * Over ~450 lines on purpose: one state machine (a subscription across CQEs, removal and
 * teardown) reads best whole; the socket side lives in close_socket.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "bufpool.h"
#include "close_events.h"
#include "nl.h"
#include "ring.h"

#define BGID 1                /* our one buffer group */
#define NBUFS 512             /* provided buffers (power of two): 4 MiB; datagrams the ring can
                                 hold between two reaps before a multishot RECV pauses (ENOBUFS,
                                 nothing lost: the rest waits in the socket's receive queue) */


/* DRAINING: being removed, its RECV cancelled, what still completes is kept; DRAINED: removed,
 * its last records waiting for the one xtcp_closes_take that frees the slot; REMOVED: the
 * cancel did not complete in time, so the slot waits for the RECV's last CQE (dropped). */
enum sub_state { SUB_FREE, SUB_ARMED, SUB_IDLE, SUB_REMOVED, SUB_DRAINING, SUB_DRAINED };
#define REMOVE_WAIT_NS 200000000ull   /* a cancelled netlink RECV completes in microseconds */

struct sub {
    uint32_t net_id;
    int fd;
    uint8_t state;
    uint8_t armed;          /* a RECV (or its cancel target) is in flight */
    uint8_t ready;          /* already listed in this reap's ready[] */
    struct xtcp_record *recs;
    size_t nrecs, cap;
    int64_t drops_seen;     /* sk_drops at the last ENOBUFS (or at add) */
    uint64_t lost, overflow, datagrams, bytes, decode_ns, starved;
    int32_t error;
    struct xtcp_decode_stats dstats;
};

struct xtcp_closes {
    struct io_uring uring;
    int efd;
    int layout;
    struct sub *subs;
    size_t nsubs, cap;      /* slots used (FREE ones are reused), allocated */
    uint32_t *ready;        /* subscriptions with something to take, across reaps */
    size_t nready;
    uint8_t *bufs;          /* NBUFS x XTCP_CLOSES_RECV_LEN, registered as buffer group BGID */
    struct io_uring_buf_ring *br;
    int single;             /* multishot RECV refused (before 6.0): one buffer-select RECV each */
    struct xtcp_closes_stats st;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void mark_ready(struct xtcp_closes *c, uint32_t idx)
{
    struct sub *s = &c->subs[idx];
    if (s->ready)
        return;
    s->ready = 1;
    c->ready[c->nready++] = idx;   /* ready has room for every slot */
}

static int arm(struct xtcp_closes *c, uint32_t idx)
{
    struct sub *s = &c->subs[idx];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);
    if (!sqe) {
        io_uring_submit(&c->uring);
        sqe = io_uring_get_sqe(&c->uring);
    }
    if (!sqe)
        return -EBUSY;
    if (c->single)
        io_uring_prep_recv(sqe, s->fd, NULL, XTCP_CLOSES_RECV_LEN, 0);
    else
        io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    sqe->user_data = xtcp_ring_pack(XTCP_RING_OP_CLOSE, idx, s->net_id);
    s->armed = 1;
    s->state = SUB_ARMED;
    return 0;
}

static void keep(struct xtcp_closes *c, struct sub *s, const uint8_t *p, size_t len)
{
    uint64_t t0 = mono_ns();
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
    int64_t k = xtcp_closes_decode(p, len, s->recs + s->nrecs, s->cap - s->nrecs, c->layout,
                                   real_ns(), &s->dstats);
    if (k > 0) {
        s->nrecs += (size_t)k;
        c->st.records += (uint64_t)k;
    }
    s->decode_ns += mono_ns() - t0;
}

static void give_back(struct xtcp_closes *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_BUFFER))
        return;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    io_uring_buf_ring_add(c->br, c->bufs + (size_t)bid * XTCP_CLOSES_RECV_LEN, XTCP_CLOSES_RECV_LEN, bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(c->br, 1);
}

static void release(struct xtcp_closes *c, struct sub *s)
{
    xtcp_buf_free(s->recs);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->state = SUB_FREE;
}

static void handle(struct xtcp_closes *c, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    uint32_t idx = xtcp_ring_unpack_request(ud);
    c->st.cqes++;
    if (xtcp_ring_unpack_op(ud) == XTCP_RING_OP_CANCEL)
        return;
    if (xtcp_ring_unpack_op(ud) != XTCP_RING_OP_CLOSE || idx >= c->nsubs ||
        c->subs[idx].net_id != xtcp_ring_unpack_net(ud) || !c->subs[idx].armed) {
        c->st.unknown_completions++;
        return;
    }
    struct sub *s = &c->subs[idx];
    int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more)
        s->armed = 0;
    if (s->state == SUB_REMOVED) {
        give_back(c, cqe);
        if (!more)
            release(c, s);   /* its RECV is over: nothing names the slot any more */
        return;
    }
    int res = cqe->res;
    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        c->st.recvs++;
        s->datagrams++;
        s->bytes += (uint64_t)res;
        keep(c, s, c->bufs + (size_t)bid * XTCP_CLOSES_RECV_LEN, (size_t)res);
        give_back(c, cqe);   /* decoded: the kernel may fill it again */
        mark_ready(c, idx);
    } else if (res == -ENOBUFS) {
        /* Either the kernel dropped events (the socket overran: sk_drops grew by that many) or
         * our provided buffers ran out (nothing lost, the datagrams wait in the socket). */
        c->st.enobufs++;
        int64_t drops = xtcp_socket_drops(s->fd);
        uint64_t lost = 0;
        if (drops >= 0) {
            lost = drops > s->drops_seen ? (uint64_t)(drops - s->drops_seen) : 0;
            s->drops_seen = drops;
        } else {
            lost = 1;   /* no drop counter (< 4.6): at least one */
        }
        if (lost) {
            s->lost += lost;
            c->st.lost += lost;
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
    }
    if (!more && s->state != SUB_DRAINING && arm(c, idx) < 0) {
        s->state = SUB_IDLE;   /* re-armed by the next reap */
        c->st.rearm_errors++;
    }
}

static int setup_buffers(struct xtcp_closes *c)
{
    size_t ring_len = NBUFS * sizeof(struct io_uring_buf);
    c->bufs = malloc((size_t)NBUFS * XTCP_CLOSES_RECV_LEN);
    void *br = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (!c->bufs || br == MAP_FAILED)
        return -ENOMEM;
    c->br = br;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = NBUFS;
    reg.bgid = BGID;
    int rc = io_uring_register_buf_ring(&c->uring, &reg, 0);   /* 5.19+ */
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(c->br);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(c->br, c->bufs + (size_t)i * XTCP_CLOSES_RECV_LEN, XTCP_CLOSES_RECV_LEN, i,
                              io_uring_buf_ring_mask(NBUFS), i);
    io_uring_buf_ring_advance(c->br, NBUFS);
    return 0;
}

static void free_buffers(struct xtcp_closes *c)
{
    if (c->br)
        munmap(c->br, NBUFS * sizeof(struct io_uring_buf));
    free(c->bufs);
    c->br = NULL;
    c->bufs = NULL;
}

xtcp_closes_t *xtcp_closes_new(unsigned entries, int layout, int *err)
{
    struct xtcp_closes *c = calloc(1, sizeof *c);
    if (!c) {
        *err = ENOMEM;
        return NULL;
    }
    c->layout = layout;
    /* Cooperative task work (5.19+): the kernel moves each datagram into a provided buffer when
     * our thread next enters the kernel anyway, not by interrupting it once per event. Not
     * DEFER_TASKRUN: measured on 6.18, after an overrun (ENOBUFS) its re-armed multishot RECV
     * never completed again and every later event was lost unseen (benchmarks/README.md). */
    static const unsigned setups[] = {IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof setups / sizeof *setups && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | setups[i];
        p.cq_entries = entries * 4 < 4096 ? 4096 : entries * 4;
        rc = io_uring_queue_init_params(entries ? entries : 256, &c->uring, &p);
    }
    if (rc < 0) {
        free(c);
        *err = -rc;
        return NULL;
    }
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0 || (rc = io_uring_register_eventfd(&c->uring, c->efd)) < 0 || (rc = setup_buffers(c)) < 0) {
        *err = c->efd < 0 ? errno : -rc;
        if (c->efd >= 0)
            close(c->efd);
        io_uring_queue_exit(&c->uring);
        free_buffers(c);
        free(c);
        return NULL;
    }
    *err = 0;
    return c;
}

int xtcp_closes_eventfd(const xtcp_closes_t *c) { return c->efd; }

int64_t xtcp_closes_add(xtcp_closes_t *c, uint32_t net_id, int fd)
{
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
    int rc = arm(c, (uint32_t)idx);
    if (rc < 0) {
        s->state = SUB_IDLE;
        c->st.rearm_errors++;
    }
    c->st.subscriptions++;
    io_uring_submit(&c->uring);
    return (int64_t)idx;
}

/* Read whatever is still queued on a subscription's socket (no RECV of ours is in flight):
 * the events of a namespace going away are kept, not dropped with the socket. */
static void drain_socket(struct xtcp_closes *c, struct sub *s)
{
    uint8_t buf[XTCP_CLOSES_RECV_LEN];
    for (int i = 0; i < (1 << 20); i++) {
        ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            c->st.recvs++;
            s->datagrams++;
            s->bytes += (uint64_t)n;
            keep(c, s, buf, (size_t)n);
        } else if (n < 0 && errno == ENOBUFS) {
            int64_t drops = xtcp_socket_drops(s->fd);
            uint64_t lost = drops > s->drops_seen ? (uint64_t)(drops - s->drops_seen) : (drops < 0);
            if (drops >= 0)
                s->drops_seen = drops;
            s->lost += lost;
            c->st.lost += lost;
        } else {
            break;   /* EAGAIN: empty; anything else: nothing more to read */
        }
    }
}

static void process_cqes(struct xtcp_closes *c)
{
    struct io_uring_cqe *cqes[128];
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(&c->uring, cqes, 128)) > 0) {
        for (unsigned i = 0; i < n; i++)
            handle(c, cqes[i]);
        io_uring_cq_advance(&c->uring, n);
    }
}

int xtcp_closes_remove(xtcp_closes_t *c, uint32_t idx)
{
    if (idx >= c->nsubs || c->subs[idx].state == SUB_FREE || c->subs[idx].state >= SUB_REMOVED)
        return -ENOENT;
    struct sub *s = &c->subs[idx];
    c->st.subscriptions--;
    s->state = SUB_DRAINING;
    if (s->armed) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);
        if (!sqe) {
            io_uring_submit(&c->uring);
            sqe = io_uring_get_sqe(&c->uring);
        }
        if (sqe) {
            io_uring_prep_cancel64(sqe, xtcp_ring_pack(XTCP_RING_OP_CLOSE, idx, s->net_id), 0);
            sqe->user_data = xtcp_ring_pack(XTCP_RING_OP_CANCEL, idx, s->net_id);
        }
        /* Submitted and waited for while the fd is still open (the caller closes it after we
         * return); what the RECV still delivers before its end is kept. */
        io_uring_submit(&c->uring);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        uint64_t start = (uint64_t)t0.tv_sec * 1000000000ull + (uint64_t)t0.tv_nsec;
        while (s->armed && mono_ns() - start < REMOVE_WAIT_NS) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
            struct io_uring_cqe *cqe;
            io_uring_wait_cqe_timeout(&c->uring, &cqe, &ts);
            process_cqes(c);
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
    drain_socket(c, s);
    s->state = SUB_DRAINED;
    io_uring_submit(&c->uring);   /* re-arms queued by the CQEs of others handled above */
    return 0;
}

int64_t xtcp_closes_reap(xtcp_closes_t *c, uint32_t *ready, size_t max)
{
    uint64_t drained;
    if (read(c->efd, &drained, sizeof drained) < 0 && errno != EAGAIN)
        return -errno;
    do {
        process_cqes(c);
        for (size_t i = 0; i < c->nsubs; i++)
            if (c->subs[i].state == SUB_IDLE && arm(c, (uint32_t)i) < 0)
                break;
        io_uring_submit(&c->uring);
    } while (io_uring_cq_ready(&c->uring));
    size_t k = 0;
    while (k < max && c->nready) {
        uint32_t idx = c->ready[--c->nready];
        c->subs[idx].ready = 0;
        if (c->subs[idx].state == SUB_ARMED || c->subs[idx].state == SUB_IDLE)
            ready[k++] = idx;
    }
    return (int64_t)k;
}

int xtcp_closes_take(xtcp_closes_t *c, uint32_t idx, struct xtcp_closes_output *out)
{
    memset(out, 0, sizeof *out);
    if (idx >= c->nsubs || c->subs[idx].state == SUB_FREE || c->subs[idx].state == SUB_REMOVED ||
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
        release(c, s);   /* removed: this was its last take */
    return 0;
}

uint64_t xtcp_closes_pending(const xtcp_closes_t *c)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->nsubs; i++)
        n += c->subs[i].nrecs;
    return n;
}

void xtcp_closes_stats(const xtcp_closes_t *c, struct xtcp_closes_stats *out) { *out = c->st; }

void xtcp_closes_free(xtcp_closes_t *c)
{
    if (!c)
        return;
    /* Cancel every RECV and wait for the cancels (netlink RECVs cancel in microseconds);
     * io_uring_queue_exit then waits for anything left before the buffers go. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        sqe->user_data = xtcp_ring_pack(XTCP_RING_OP_CANCEL, 0, 0);
        io_uring_submit(&c->uring);
    }
    io_uring_queue_exit(&c->uring);
    close(c->efd);
    free_buffers(c);
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].state != SUB_FREE)
            xtcp_buf_free(c->subs[i].recs);
    free(c->subs);
    free(c->ready);
    free(c);
}
