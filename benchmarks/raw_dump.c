/* raw_dump: the floor for the benchmark. For each namespace and family, one inet_diag dump
 * (inet_diag_req_v2, idiag_ext 0xff, states 0x1ffe), recv into a 64 KiB buffer until
 * NLMSG_DONE, count the socket messages, discard everything else.
 *
 *   raw_dump [--serve] [--families 4,6] [--ext 0xff] [--states 0x1ffe] NSFILE...
 *
 * NSFILE is a namespace file (/var/run/netns/NAME, /proc/PID/ns/net) or "-" for our own.
 * One SOCK_DIAG socket is opened per namespace first (setns in, socket, setns back: a socket
 * stays in the namespace it was opened in), so only the dumps are timed, as for a poller that
 * keeps its namespace fds. Sockets are opened and walked as the library does (csrc/nl.h:
 * connected to the kernel, one bounds-checked header walk). Without --serve: one dump round, one JSON line. With --serve: one
 * round and one JSON line per line read on stdin, until EOF (the harness alternates tools).
 *
 * Build: gcc -O2 -Wall -o raw_dump raw_dump.c ../csrc/netns.c (the harness does it into
 * benchmarks/build/; it includes ../csrc/nl.h and ../csrc/netns.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../csrc/netns.h"
#include "../csrc/nl.h"

#define BUF_SIZE (64 * 1024) /* one recv is one skb of <= ~32 KiB; smaller buffers truncate */

struct ns {
    const char *path;
    int fd;
};

static uint64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The library's own way in and out of a namespace (csrc/netns.c), then made blocking: the
 * library waits in io_uring, this baseline waits in recv. */
static int open_diag(const char *path)
{
    int nsfd = -1;
    if (strcmp(path, "-") != 0) {
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
            return -1;
    }
    uint32_t drained = 0;
    int fd = xtcp_open_diag_socket_in(nsfd, &drained);
    if (nsfd >= 0)
        close(nsfd);
    if (fd == -ENOTRECOVERABLE) {
        fprintf(stderr, "setns back home failed\n");
        exit(2);
    }
    if (fd < 0) {
        errno = -fd;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* One dump; returns sockets counted, or -errno. */
static long dump(int fd, int family, uint8_t ext, uint32_t states, uint32_t seq, char *buf,
                 uint64_t *bytes, uint64_t *recvs)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    long count = 0;

    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.nlh.nlmsg_seq = seq;
    msg.req.sdiag_family = family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_ext = ext;
    msg.req.idiag_states = states;
    msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (send(fd, &msg, sizeof(msg), 0) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(fd, buf, BUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ECONNRESET;
        *bytes += n;
        *recvs += 1;
        struct xtcp_nl_walk w = xtcp_nl_walk((const uint8_t *)buf, (size_t)n);
        struct xtcp_nl_msg m;
        enum xtcp_nl_step step;
        while ((step = xtcp_nl_next(&w, &m)) == XTCP_NL_NEXT) {
            if (m.seq != seq)
                continue;
            if (m.type == NLMSG_DONE)
                return count;
            if (m.type == NLMSG_ERROR) {
                int32_t err = xtcp_nl_msg_errno(&m);
                return err ? -err : -EPROTO;
            }
            if (m.type == SOCK_DIAG_BY_FAMILY)
                count++;
        }
        if (step == XTCP_NL_BAD)
            return -EBADMSG;
    }
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static void round_once(struct ns *nss, int nns, const int *families, int nfam, uint8_t ext,
                       uint32_t states, char *buf, uint32_t *seq)
{
    uint64_t bytes = 0, recvs = 0, c0 = cpu_ns(), t0 = now_ns(CLOCK_MONOTONIC);
    long sockets = 0;
    int errors = 0, first_err = 0;
    for (int i = 0; i < nns; i++) {
        for (int f = 0; f < nfam; f++) {
            long got = dump(nss[i].fd, families[f], ext, states, ++*seq, buf, &bytes, &recvs);
            if (got < 0) {
                errors++;
                if (!first_err)
                    first_err = (int)-got;
            } else {
                sockets += got;
            }
        }
    }
    uint64_t t1 = now_ns(CLOCK_MONOTONIC), c1 = cpu_ns();
    printf("{\"sockets\": %ld, \"namespaces\": %d, \"wall_ns\": %llu, \"cpu_ns\": %llu, "
           "\"bytes\": %llu, \"recvs\": %llu, \"errors\": %d, \"first_error\": \"%s\"}\n",
           sockets, nns, (unsigned long long)(t1 - t0), (unsigned long long)(c1 - c0),
           (unsigned long long)bytes, (unsigned long long)recvs, errors,
           first_err ? strerror(first_err) : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int serve = 0, families[2] = {AF_INET, AF_INET6}, nfam = 2;
    uint8_t ext = 0xff;
    uint32_t states = 0x1ffe, seq = 0;
    int i = 1;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--serve") == 0) {
            serve = 1;
        } else if (strcmp(argv[i], "--families") == 0 && i + 1 < argc) {
            const char *s = argv[++i];
            nfam = 0;
            if (strchr(s, '4'))
                families[nfam++] = AF_INET;
            if (strchr(s, '6'))
                families[nfam++] = AF_INET6;
        } else if (strcmp(argv[i], "--ext") == 0 && i + 1 < argc) {
            ext = (uint8_t)strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--states") == 0 && i + 1 < argc) {
            states = (uint32_t)strtoul(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "usage: %s [--serve] [--families 4,6] [--ext 0xff] [--states 0x1ffe] NSFILE...\n",
                    argv[0]);
            return 2;
        }
    }
    int nns = argc - i;
    if (nns <= 0 || nfam == 0) {
        fprintf(stderr, "%s: no namespace file (use - for this namespace) or no family\n", argv[0]);
        return 2;
    }
    struct ns *nss = calloc(nns, sizeof(*nss));
    char *buf = malloc(BUF_SIZE);
    if (!nss || !buf) {
        perror("malloc");
        return 2;
    }
    for (int k = 0; k < nns; k++) {
        nss[k].path = argv[i + k];
        nss[k].fd = open_diag(nss[k].path);
        if (nss[k].fd < 0) {
            fprintf(stderr, "%s: %s\n", nss[k].path, strerror(errno));
            return 1;
        }
    }
    if (!serve) {
        round_once(nss, nns, families, nfam, ext, states, buf, &seq);
        return 0;
    }
    char line[256];
    while (fgets(line, sizeof(line), stdin))
        round_once(nss, nns, families, nfam, ext, states, buf, &seq);
    return 0;
}
