#define _GNU_SOURCE /* mremap */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bufpool.h"

/* A block is a 16-byte header followed by the caller's bytes. Blocks of at least
 * MAP_THRESHOLD are mappings of their own: growing one is an mremap (no copy), and freeing one
 * gives its pages back to the system at once (a malloc'd one may stay in the heap). */
struct blk {
    size_t cap;
    uint32_t kind;   /* XTCP_BUF_* */
    uint32_t mapped; /* 1: the block is an mmap of cap + sizeof(struct blk) bytes */
};
_Static_assert(sizeof(struct blk) == 16, "keeps the caller's bytes 16-byte aligned");

#define MAP_THRESHOLD (XTCP_POOL_MIN_BLOCK / 2)

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk *pool[XTCP_POOL_MAX_BLOCKS];
static size_t pool_n, pool_bytes, pool_reused, pool_allocated;

static struct blk *hdr(const void *p) { return (struct blk *)p - 1; }

static size_t map_len(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + sizeof(struct blk) + page - 1) / page * page;
}

static void release(struct blk *b)
{
    if (b->mapped)
        munmap(b, b->cap + sizeof *b);
    else
        free(b);
}

/* A kept block of this kind that holds size bytes (the smallest such, or the largest if
 * `largest`), taken out of the pool; NULL if none. */
static struct blk *take(size_t size, int kind, int largest)
{
    size_t best = pool_n;
    for (size_t i = 0; i < pool_n; i++)
        if (pool[i]->cap >= size && pool[i]->kind == (uint32_t)kind &&
            (best == pool_n || (largest ? pool[i]->cap > pool[best]->cap : pool[i]->cap < pool[best]->cap)))
            best = i;
    if (best == pool_n)
        return NULL;
    struct blk *b = pool[best];
    pool[best] = pool[--pool_n];
    pool_bytes -= b->cap;
    return b;
}

static struct blk *from_pool(size_t size, int kind, int largest)
{
    pthread_mutex_lock(&pool_lock);
    struct blk *b = take(size, kind, largest);
    if (b)
        pool_reused++;
    else
        pool_allocated++;
    pthread_mutex_unlock(&pool_lock);
    return b;
}

static void *buf_alloc(size_t size, int kind, int largest)
{
    struct blk *b = NULL;
    if (size >= MAP_THRESHOLD) {
        b = from_pool(size, kind, largest);
        if (!b) {
            size_t len = map_len(size);
            void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED)
                return NULL;
            b = m;
            b->cap = len - sizeof *b;
            b->mapped = 1;
        }
    } else {
        b = malloc(sizeof *b + (size ? size : 1));
        if (!b)
            return NULL;
        b->cap = size ? size : 1;
        b->mapped = 0;
    }
    b->kind = (uint32_t)kind;
    return b + 1;
}

void *xtcp_buf_alloc(size_t size, int kind) { return buf_alloc(size, kind, 0); }

size_t xtcp_buf_cap(const void *p) { return p ? hdr(p)->cap : 0; }

void *xtcp_buf_grow(void *p, size_t size, int kind)
{
    if (!p)
        return buf_alloc(size, kind, 1);
    struct blk *old = hdr(p);
    if (old->cap >= size)
        return p;
    /* A kept block of last poll's size first: its pages are already faulted in. */
    struct blk *b = size >= MAP_THRESHOLD ? from_pool(size, kind, 1) : NULL;
    if (!b && old->mapped) {
        size_t len = map_len(size);
        void *m = mremap(old, old->cap + sizeof *old, len, MREMAP_MAYMOVE);
        if (m == MAP_FAILED)
            return NULL;
        b = m;
        b->cap = len - sizeof *b;
        return b + 1;
    }
    void *q = b ? (void *)(b + 1) : buf_alloc(size, kind, 1);
    if (!q)
        return NULL;
    memcpy(q, p, old->cap);
    release(old);   /* a step of this buffer's growth: smaller than what it needs from now on */
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
            release(pool[small]);
            pool[small] = pool[--pool_n];
        }
        if (pool_n < XTCP_POOL_MAX_BLOCKS && pool_bytes + b->cap <= XTCP_POOL_MAX_BYTES) {
            pool[pool_n++] = b;
            pool_bytes += b->cap;
            b = NULL;
        }
        pthread_mutex_unlock(&pool_lock);
    }
    if (b)
        release(b);
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
        release(pool[--pool_n]);
    pool_bytes = 0;
    pthread_mutex_unlock(&pool_lock);
}
