/* See netns.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"
#include "nl.h"

int xtcp_open_diag_socket_in(int nsfd, uint32_t *drained)
{
    *drained = 0;
    if (nsfd < 0)
        return xtcp_nl_open_diag(SOCK_NONBLOCK, drained);

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
    ret = xtcp_nl_open_diag(SOCK_NONBLOCK, drained);
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
