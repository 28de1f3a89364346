#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"

/* A block is a 16-byte header (its capacity) followed by the caller's bytes. */
struct blk {
    size_t cap;
    size_t pad; /* keeps the caller's bytes 16-byte aligned */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk *pool[XTCP_POOL_MAX_BLOCKS];
static size_t pool_n, pool_bytes, pool_reused, pool_allocated;

static struct blk *hdr(const void *p) { return (struct blk *)p - 1; }

/* A kept block that holds size bytes (the smallest such, or the largest if `largest`), taken
 * out of the pool; NULL if none. */
static struct blk *take(size_t size, int largest)
{
    size_t best = pool_n;
    for (size_t i = 0; i < pool_n; i++)
        if (pool[i]->cap >= size &&
            (best == pool_n || (largest ? pool[i]->cap > pool[best]->cap : pool[i]->cap < pool[best]->cap)))
            best = i;
    if (best == pool_n)
        return NULL;
    struct blk *b = pool[best];
    pool[best] = pool[--pool_n];
    pool_bytes -= b->cap;
    return b;
}

static void *buf_alloc(size_t size, int largest)
{
    struct blk *b = NULL;
    if (size >= XTCP_POOL_MIN_BLOCK / 2) {
        pthread_mutex_lock(&pool_lock);
        b = take(size, largest);
        if (b)
            pool_reused++;
        else
            pool_allocated++;
        pthread_mutex_unlock(&pool_lock);
    }
    if (!b) {
        b = malloc(sizeof *b + (size ? size : 1));
        if (!b)
            return NULL;
        b->cap = size ? size : 1;
    }
    return b + 1;
}

void *xtcp_buf_alloc(size_t size) { return buf_alloc(size, 0); }

size_t xtcp_buf_cap(const void *p) { return p ? hdr(p)->cap : 0; }

void *xtcp_buf_grow(void *p, size_t size)
{
    if (!p)
        return xtcp_buf_alloc(size);
    struct blk *old = hdr(p);
    if (old->cap >= size)
        return p;
    void *q = buf_alloc(size, 1);
    if (!q)
        return NULL;
    memcpy(q, p, old->cap);
    xtcp_buf_free(p);
    return q;
}

void xtcp_buf_free(void *p)
{
    if (!p)
        return;
    struct blk *b = hdr(p);
    if (b->cap >= XTCP_POOL_MIN_BLOCK) {
        pthread_mutex_lock(&pool_lock);
        /* Full: make room by dropping the smallest kept block if this one is bigger. */
        while (pool_n && (pool_n == XTCP_POOL_MAX_BLOCKS || pool_bytes + b->cap > XTCP_POOL_MAX_BYTES)) {
            size_t small = 0;
            for (size_t i = 1; i < pool_n; i++)
                if (pool[i]->cap < pool[small]->cap)
                    small = i;
            if (pool[small]->cap >= b->cap)
                break;
            pool_bytes -= pool[small]->cap;
            free(pool[small]);
            pool[small] = pool[--pool_n];
        }
        if (pool_n < XTCP_POOL_MAX_BLOCKS && pool_bytes + b->cap <= XTCP_POOL_MAX_BYTES) {
            pool[pool_n++] = b;
            pool_bytes += b->cap;
            b = NULL;
        }
        pthread_mutex_unlock(&pool_lock);
    }
    free(b);
}

void xtcp_pool_stats(struct xtcp_pool_stats *out)
{
    pthread_mutex_lock(&pool_lock);
    out->kept_blocks = pool_n;
    out->kept_bytes = pool_bytes;
    out->reused = pool_reused;
    out->allocated = pool_allocated;
    pthread_mutex_unlock(&pool_lock);
}

void xtcp_pool_drain(void)
{
    pthread_mutex_lock(&pool_lock);
    while (pool_n)
        free(pool[--pool_n]);
    pool_bytes = 0;
    pthread_mutex_unlock(&pool_lock);
}
