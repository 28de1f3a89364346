/*
 * Big buffers kept across polls. Every poll needs the same few large blocks (a dump's record
 * array, ~50 MB at 100k sockets, and its encoded bytes, ~28 MB); getting them fresh from the
 * kernel each time cost about a quarter of a poll's CPU in page faults. Freed blocks of at
 * least XTCP_POOL_MIN_BLOCK go to a small pool (bounded by XTCP_POOL_MAX_BYTES) and the next
 * request of the same kind and a size they can hold reuses one; everything else is plain
 * malloc/free. Kinds keep each block in one role: a block that held records has those pages
 * resident, and lending it to encoded bytes would keep them resident for nothing.
 * Thread-safe: cffi runs ffi.gc destructors in whichever thread drops the last reference.
 */
#ifndef XTCP_BUFPOOL_H
#define XTCP_BUFPOOL_H

#include <stddef.h>

#define XTCP_POOL_MIN_BLOCK (1u << 20)
#define XTCP_POOL_MAX_BLOCKS 4
#define XTCP_POOL_MAX_BYTES (192u << 20)
#define XTCP_BUF_OTHER 0
#define XTCP_BUF_RECORDS 1                   /* struct xtcp_record arrays */
#define XTCP_BUF_ENCODED 2                   /* protobuf bytes */

/* BEGIN CDEF */
struct xtcp_pool_stats {
    size_t kept_blocks;
    size_t kept_bytes;
    size_t reused;      /* requests served from the pool */
    size_t allocated;   /* requests that went to malloc */
};

void *xtcp_buf_alloc(size_t size, int kind);
/* realloc semantics (contents kept, p may move; p NULL: allocate), for buffers that keep
 * growing (a dump's records as its chunks arrive): past the pool's floor it takes the largest
 * kept block of that kind, not the smallest that fits, so a big dump reaches last poll's size
 * in one step instead of a chain of doublings. */
void *xtcp_buf_grow(void *p, size_t size, int kind);
size_t xtcp_buf_cap(const void *p);
void xtcp_buf_free(void *p);
void xtcp_pool_stats(struct xtcp_pool_stats *out);
void xtcp_pool_drain(void);                  /* give every kept block back to the system */
/* END CDEF */

#endif
