/* See netns.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"

#ifndef NETLINK_SOCK_DIAG
#define NETLINK_SOCK_DIAG 4
#endif

static int open_diag_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG);
    return fd < 0 ? -errno : fd;
}

int xtcp_open_diag_socket_in(int nsfd)
{
    if (nsfd < 0)
        return open_diag_socket();

    /* thread-self, not self: setns moved this thread only, and this thread is who goes back. */
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return -errno;

    int ret;
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        ret = -errno;
        close(home);
        return ret;
    }
    ret = open_diag_socket();
    if (setns(home, CLONE_NEWNET) < 0) {
        if (ret >= 0)
            close(ret);
        ret = -ENOTRECOVERABLE;
    }
    close(home);
    return ret;
}

int xtcp_netns_cookie(int fd, uint64_t *out)
{
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (getsockopt(fd, SOL_SOCKET, XTCP_SO_NETNS_COOKIE, &cookie, &len) < 0)
        return -errno;
    if (len != sizeof(cookie))
        return -EINVAL;
    *out = cookie;
    return 0;
}
