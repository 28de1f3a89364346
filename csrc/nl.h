/*
 * Netlink, once: the constants we use, how we open a SOCK_DIAG socket, and the one
 * bounds-checked walk over the nlmsghdrs of a received buffer. The ring (ring.c), the decoder
 * (nl_decode.c), the plain-socket backend (through xtcp_nl_scan) and benchmarks/raw_dump.c use
 * these and nothing else.
 *
 * The rule for every netlink socket we open, now and later: only the kernel may feed it.
 *   1. It is connect()ed to the kernel (nl_pid 0) as soon as it exists, before its fd leaves
 *      C. A connected netlink socket takes unicasts from its peer only: the kernel refuses
 *      everyone else's with ECONNREFUSED (netlink_getsockbyportid). Without it, anyone with
 *      CAP_NET_ADMIN in the namespace's user namespace (any user, in a namespace of their own)
 *      can unicast to our port id.
 *   2. Whoever receives checks the sender where it can (the plain-socket backend: nl_pid 0),
 *      and every dump carries a random nlmsg_seq: a message of another seq is dropped and
 *      counted, never decoded (the rest of an abandoned dump, or something forged).
 *   3. Every length is checked before it is followed (xtcp_nl_next): a lying nlmsg_len ends
 *      the walk of that buffer, counted as malformed.
 * Host byte order throughout (netlink is).
 */
#ifndef XTCP_NL_H
#define XTCP_NL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#define XTCP_NL_HDR_LEN sizeof(struct nlmsghdr)          /* 16, already 4-aligned */
#define XTCP_NL_ALIGN(n) (((n) + 3u) & ~(size_t)3u)     /* NLMSG_ALIGN / RTA_ALIGN */
#define XTCP_NL_ATTR_HDR_LEN sizeof(struct nlattr)       /* rtattr and nlattr: u16 len, u16 type */
#define XTCP_NL_ERRNO_MAX 4095                           /* MAX_ERRNO: a status beyond is no errno */
#define XTCP_INET_DIAG_MSG_LEN 72      /* struct inet_diag_msg: every socket message has one */

_Static_assert(sizeof(struct nlmsghdr) == 16, "nlmsghdr is 16 bytes on every Linux");
_Static_assert(sizeof(struct nlattr) == 4, "nlattr/rtattr header is 4 bytes");

static inline uint16_t xtcp_nl_ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t xtcp_nl_ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Open a NETLINK_SOCK_DIAG socket in the calling thread's namespace, connected to the kernel
 * (rule 1), close-on-exec; extra_type adds SOCK_NONBLOCK or nothing. Anything queued in the
 * instant between connect()'s autobind and the socket turning connected is discarded, and
 * counted in *drained. Returns the fd or -errno. */
static inline int xtcp_nl_open_diag(int extra_type, uint32_t *drained)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | extra_type, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;   /* nl_pid 0: the kernel; nl_groups 0: no multicast */
    if (connect(fd, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    /* A datagram is at least one skb of the receive buffer: this ends long before the limit. */
    uint8_t byte;
    for (int i = 0; i < 100000 && recv(fd, &byte, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0; i++)
        (*drained)++;
    return fd;
}

/* The errno an NLMSG_ERROR / NLMSG_DONE status carries, as a positive number: 0 (none, or an
 * ACK) or 1..4095. A status no kernel sends (positive, or below -4095, INT32_MIN included: its
 * negation is undefined) reads as EPROTO. */
static inline int32_t xtcp_nl_status_errno(int32_t status)
{
    if (status == 0)
        return 0;
    if (status < 0 && status >= -XTCP_NL_ERRNO_MAX)
        return -status;
    return EPROTO;
}

/* One message of a buffer, as xtcp_nl_next found it: its header fields, and where it is. */
struct xtcp_nl_msg {
    const uint8_t *hdr;     /* the nlmsghdr; its payload is hdr + XTCP_NL_HDR_LEN */
    size_t off;             /* offset of hdr in the buffer */
    uint32_t len;           /* nlmsg_len: header included, never past the buffer's end */
    uint16_t type;
    uint16_t flags;
    uint32_t seq;
};

struct xtcp_nl_walk {
    const uint8_t *buf;
    size_t len;
    size_t off;             /* next message; off <= len always */
};

enum xtcp_nl_step {
    XTCP_NL_END = 0,        /* the buffer is used up: every message was whole */
    XTCP_NL_NEXT = 1,       /* *m is the next message */
    XTCP_NL_BAD = -1,       /* malformed at w->off: nlmsg_len below the header or past the
                               end, or trailing bytes too short for a header; stop there */
};

static inline struct xtcp_nl_walk xtcp_nl_walk(const uint8_t *buf, size_t len)
{
    struct xtcp_nl_walk w = {buf, len, 0};
    return w;
}

/* The next message of the walk. Messages start 4-aligned; the last one may lack its padding
 * (the step is clamped to the end, so off never passes len and len - off never wraps). */
static inline enum xtcp_nl_step xtcp_nl_next(struct xtcp_nl_walk *w, struct xtcp_nl_msg *m)
{
    size_t left = w->len - w->off;
    if (left == 0)
        return XTCP_NL_END;
    if (left < XTCP_NL_HDR_LEN)
        return XTCP_NL_BAD;
    const uint8_t *h = w->buf + w->off;
    uint32_t mlen = xtcp_nl_ld32(h);
    if (mlen < XTCP_NL_HDR_LEN || mlen > left)
        return XTCP_NL_BAD;
    m->hdr = h;
    m->off = w->off;
    m->len = mlen;
    m->type = xtcp_nl_ld16(h + 4);
    m->flags = xtcp_nl_ld16(h + 6);
    m->seq = xtcp_nl_ld32(h + 8);
    size_t step = XTCP_NL_ALIGN((size_t)mlen);
    w->off += step < left ? step : left;
    return XTCP_NL_NEXT;
}

/* The status of an NLMSG_ERROR / NLMSG_DONE message, as xtcp_nl_status_errno reads it. DONE
 * may come without one (older kernels: len 16); an ERROR without one is malformed. */
static inline int32_t xtcp_nl_msg_errno(const struct xtcp_nl_msg *m)
{
    if (m->len < XTCP_NL_HDR_LEN + 4)
        return m->type == NLMSG_ERROR ? EBADMSG : 0;
    return xtcp_nl_status_errno((int32_t)xtcp_nl_ld32(m->hdr + XTCP_NL_HDR_LEN));
}

/* What one received buffer means for the dump whose request had nlmsg_seq `seq`. */
#define XTCP_NL_SCAN_MORE 0        /* the dump goes on */
#define XTCP_NL_SCAN_DONE 1        /* NLMSG_DONE of seq: *error = errno it carried, 0 if whole */
#define XTCP_NL_SCAN_REFUSED 2     /* NLMSG_ERROR of seq: *error = errno of the request (0: ACK) */
#define XTCP_NL_SCAN_MALFORMED 3   /* a header lies about its length: *error = EBADMSG */

/* Scan the headers of one received buffer (one datagram) for the end of the dump `seq`:
 * messages of another seq are skipped (the decoder drops and counts them). Returns an
 * XTCP_NL_SCAN_* value and sets *error. */
static inline int xtcp_nl_scan(const uint8_t *buf, size_t len, uint32_t seq, int32_t *error)
{
    struct xtcp_nl_walk w = xtcp_nl_walk(buf, len);
    struct xtcp_nl_msg m;
    enum xtcp_nl_step step;
    *error = 0;
    while ((step = xtcp_nl_next(&w, &m)) == XTCP_NL_NEXT) {
        if (m.seq != seq || (m.type != NLMSG_DONE && m.type != NLMSG_ERROR))
            continue;
        *error = xtcp_nl_msg_errno(&m);
        return m.type == NLMSG_DONE ? XTCP_NL_SCAN_DONE : XTCP_NL_SCAN_REFUSED;
    }
    if (step == XTCP_NL_BAD) {
        *error = EBADMSG;
        return XTCP_NL_SCAN_MALFORMED;
    }
    return XTCP_NL_SCAN_MORE;
}


/* BEGIN CDEF */
int xtcp_nl_scan(const uint8_t *buf, size_t len, uint32_t seq, int32_t *error);
/* END CDEF */

#endif
