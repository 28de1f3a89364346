/*
 * The chunk path of the io_uring ring (see ring.c for the jobs, ring.h for the API): what a
 * received chunk means (does it end the dump; its records, decoded and maybe encoded) and the
 * decode thread that does the decoding off the ring's thread.
 *
 * The decode thread (XTCP_RING_DECODE_THREAD): the ring's reap hands it each received chunk and
 * goes straight back to the kernel for the next one, so the kernel builds chunk n+1 inline
 * while this thread decodes chunk n on another core. It sleeps when it has nothing to do.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "bufpool.h"
#include "nl.h"
#include "ring_internal.h"

/* Does this chunk end the job's dump? Messages of another seq (the rest of an abandoned dump,
 * or anything else not ours) never do: the decoder drops and counts them. */
void xtcp_chunk_scan(struct job *j, const uint8_t *p, size_t len)
{
    int32_t error;
    if (xtcp_nl_scan(p, len, j->seq, &error) == XTCP_NL_SCAN_MORE)
        return;
    j->finished = 1;
    if (error && !j->error)
        j->error = error;
}

/* Make room for `need` more elements of `size` bytes in a pooled buffer that keeps growing. */
static int reserve_buf(void **p, size_t *cap, size_t used, size_t need, size_t size, int kind)
{
    if (*cap - used >= need)
        return 0;
    size_t want = *cap * 2;
    if (want < used + need)
        want = used + need;
    void *q = xtcp_buf_grow(*p, want * size, kind);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = xtcp_buf_cap(q) / size;
    return 0;
}

/* Decode one received chunk into the job's records and, if asked, encode those records. */
int xtcp_chunk_consume(struct xtcp_ring *r, struct job *j, const uint8_t *p, size_t len)
{
    uint64_t t0 = now_ns();
    /* Room for as many sockets as the chunk could hold (a socket message is at least a header
     * and an inet_diag_msg): no counting pass, and untouched room costs no memory. */
    size_t most = len / (XTCP_NL_HDR_LEN + XTCP_INET_DIAG_MSG_LEN) + 1;
    if (reserve_buf((void **)&j->recs, &j->recs_cap, j->nrecs, most, sizeof *j->recs, XTCP_BUF_RECORDS) < 0)
        return -ENOMEM;
    int64_t k = xtcp_decode(p, len, j->recs + j->nrecs, j->recs_cap - j->nrecs, r->layout, j->seq,
                            &j->dstats);
    if (k < 0)
        return (int)k;   /* -ENOSPC: count_socket_messages undercounted; never expected */
    uint64_t t1 = now_ns();
    j->decode_ns += t1 - t0;
    if (r->framing != XTCP_RING_NO_ENCODE && k > 0) {
        /* Room for the largest possible encoding of each, so one pass writes them all. */
        size_t worst = (size_t)k * (2 + 2 + j->label_len + XTCP_RECORD_MAX_ENCODED);
        if (reserve_buf((void **)&j->out, &j->out_cap, j->out_len, worst, 1, XTCP_BUF_ENCODED) < 0)
            return -ENOMEM;
        size_t done = 0;
        int64_t w = xtcp_encode(j->recs + j->nrecs, (size_t)k, j->label, j->label_len, r->framing,
                                j->out + j->out_len, j->out_cap - j->out_len, &done);
        if (w < 0)
            return (int)w;
        if (done != (size_t)k)
            return -ENOSPC;
        j->out_len += (size_t)w;
        j->encode_ns += now_ns() - t1;
    }
    j->nrecs += (size_t)k;
    return 0;
}

/* Decode the oldest queued chunk; called with d->lock held, returns with it held. One chunk at
 * a time (d->busy), by the decode thread or by the ring's own thread when it is waiting for the
 * queue to drain, so the chunks of a job are decoded in order and never concurrently. */
static void decode_one(struct xtcp_ring *r)
{
    struct decoder *d = r->dec;
    struct work w = d->q[d->head];
    d->head = (d->head + 1) % WORK_SLOTS;
    d->count--;
    d->busy = 1;
    struct job *j = &r->jobs[w.job];   /* jobs is never reallocated while work is queued */
    pthread_mutex_unlock(&d->lock);

    int rc = xtcp_chunk_consume(r, j, w.buf, w.len);
    if (rc < 0 && !j->decode_error)
        j->decode_error = -rc;

    pthread_mutex_lock(&d->lock);
    put_buffer_locked(r, w.buf);
    d->busy = 0;
    pthread_cond_broadcast(&d->space);
    if (d->sleeping && d->count)
        pthread_cond_signal(&d->work_ready);   /* the ring's thread decoded this one */
    atomic_fetch_add(&j->consumed, 1);   /* publishes the records written above */
}

static void *decoder_main(void *arg)
{
    struct xtcp_ring *r = arg;
    struct decoder *d = r->dec;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        if (!d->count || d->busy) {
            if (d->stop && !d->count && !d->busy)
                break;
            d->sleeping = 1;
            pthread_cond_wait(&d->work_ready, &d->lock);
            d->sleeping = 0;
            continue;
        }
        decode_one(r);
        /* A job the ring is waiting for may just have drained: wake its event loop. Paired
         * with report_or_defer (both sides update, then read the other's counter). */
        if (!d->count && atomic_load(&r->awaiting)) {
            uint64_t one = 1;
            ssize_t n = write(r->efd, &one, sizeof one);
            (void)n;   /* EAGAIN: the counter is already nonzero, the loop will wake */
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* Hand a received chunk to the decode thread (waits while WORK_SLOTS chunks are queued). */
void xtcp_decoder_push(struct xtcp_ring *r, uint32_t idx, uint8_t *buf, size_t len)
{
    struct decoder *d = r->dec;
    pthread_mutex_lock(&d->lock);
    while (d->count == WORK_SLOTS)
        pthread_cond_wait(&d->space, &d->lock);
    d->q[(d->head + d->count) % WORK_SLOTS] = (struct work){idx, (uint32_t)len, buf};
    d->count++;
    r->jobs[idx].pushed++;
    if (d->sleeping)
        pthread_cond_signal(&d->work_ready);
    pthread_mutex_unlock(&d->lock);
}

/* Until everything handed to the decode thread is decoded: decode queued chunks here when the
 * thread is not at it (it may be waiting for a CPU), else wait for its chunk in hand. */
void xtcp_decoder_drain(struct xtcp_ring *r)
{
    struct decoder *d = r->dec;
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    while (d->count || d->busy) {
        if (!d->busy)
            decode_one(r);
        else
            pthread_cond_wait(&d->space, &d->lock);
    }
    pthread_mutex_unlock(&d->lock);
}

int xtcp_decoder_start(struct xtcp_ring *r)
{
    struct decoder *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->work_ready, NULL);
    pthread_cond_init(&d->space, NULL);
    r->dec = d;
    /* Signals stay with the threads that handle them (Python's main thread). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&d->thread, NULL, decoder_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        r->dec = NULL;
        free(d);
        return -rc;
    }
    return 0;
}

void xtcp_decoder_stop(struct xtcp_ring *r)
{
    struct decoder *d = r->dec;
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_signal(&d->work_ready);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->work_ready);
    pthread_cond_destroy(&d->space);
    r->dec = NULL;
    free(d);
}
