/*
 * Close events, the socket side (see close_events.h): opening a destroy-group subscription in
 * a namespace, the kernel's drop counter of a socket, and decoding one received datagram into
 * close records. Used by the ring's subscriptions (close_events.c) and the plain-socket reader (closes.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "close_events.h"
#include "nl.h"

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

_Static_assert(XTCP_CLOSES_GROUP_TCP == SKNLGRP_INET_TCP_DESTROY, "uapi group number");
_Static_assert(XTCP_CLOSES_GROUP_TCP6 == SKNLGRP_INET6_TCP_DESTROY, "uapi group number");

static int subscribe(int fd, int rcvbuf)
{
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
        return -errno;
    static const int groups[] = {XTCP_CLOSES_GROUP_TCP, XTCP_CLOSES_GROUP_TCP6};
    for (size_t i = 0; i < 2; i++)
        if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof groups[i]) < 0)
            return -errno;
    return 0;
}

int xtcp_open_close_socket_in(int nsfd, int rcvbuf, uint32_t *drained)
{
    *drained = 0;
    int home = -1;
    if (nsfd >= 0) {
        /* thread-self: setns moved this thread only, and this thread is who goes back. */
        home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home < 0)
            return -errno;
        if (setns(nsfd, CLONE_NEWNET) < 0) {
            int err = errno;
            close(home);
            return -err;
        }
    }
    /* Connected to the kernel before it joins any group: a unicast from anyone else is then
     * refused (ECONNREFUSED), while the kernel's multicast still arrives (checked by
     * tests/integration/test_close_events.py). */
    int fd = xtcp_nl_open_diag(SOCK_NONBLOCK, drained);
    if (fd >= 0) {
        int rc = subscribe(fd, rcvbuf);
        if (rc < 0) {
            close(fd);
            fd = rc;
        }
    }
    if (home >= 0) {
        if (setns(home, CLONE_NEWNET) < 0) {
            if (fd >= 0)
                close(fd);
            fd = -ENOTRECOVERABLE;
        }
        close(home);
    }
    return fd;
}

int64_t xtcp_socket_drops(int fd)
{
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    memset(mem, 0, sizeof mem);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0)
        return -errno;
    if (len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t))
        return -ENOPROTOOPT;   /* before 4.6: no drop counter */
    return mem[SK_MEMINFO_DROPS];
}

int64_t xtcp_closes_decode(const uint8_t *buf, size_t len, struct xtcp_record *out, size_t cap,
                           int layout, int64_t event_time_ns, struct xtcp_decode_stats *st)
{
    /* The kernel broadcasts with nlmsg_seq 0 (and nl_pid 0): anything else is not a destroy
     * event, dropped and counted by the decoder like a foreign dump reply. */
    int64_t k = xtcp_decode(buf, len, out, cap, layout, 0, st);
    for (int64_t i = 0; i < k; i++) {
        out[i].event = XTCP_CLOSES_EVENT_CLOSE;
        out[i].event_time_ns = event_time_ns;
    }
    return k;
}
