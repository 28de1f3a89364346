/*
 * Receiving TCP destroy events through io_uring: re-armed RECVs vs one multishot RECV with a
 * provided-buffer ring. Decides csrc/close_events.c's design (see close_events.h).
 *
 *   cc -O2 -o /tmp/close_recv benchmarks/close_recv.c -luring
 *   /tmp/close_recv rearm|multishot CONNECTIONS [RCVBUF]
 *
 * A child process opens and closes CONNECTIONS loopback connections as fast as it can (two
 * destroy events each); the parent, subscribed to both TCP destroy groups in the same
 * namespace, receives them through the ring until the child is done and the socket is quiet.
 * Prints one line: mode, events received, events lost (sk_drops), ENOBUFS completions,
 * CQEs, io_uring_enter calls, the receiver's CPU (user+sys) in ms and per 1,000 events.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#define BUF_LEN 8192
#define NBUFS 256
#define BGID 7

static long cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1000000L +
           ru.ru_stime.tv_usec;
}

static unsigned drops(int fd)
{
    unsigned mem[SK_MEMINFO_VARS] = {0};
    socklen_t len = sizeof mem;
    getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len);
    return mem[SK_MEMINFO_DROPS];
}

static int count_messages(const unsigned char *p, int len)
{
    int n = 0;
    while (len >= (int)sizeof(struct nlmsghdr)) {
        const struct nlmsghdr *h = (const void *)p;
        if (h->nlmsg_len < sizeof *h || (int)h->nlmsg_len > len)
            break;
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
            n++;
        int step = NLMSG_ALIGN(h->nlmsg_len);
        p += step;
        len -= step;
    }
    return n;
}

static void churn(int n)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(srv, (void *)&a, sizeof a);
    listen(srv, 1024);
    getsockname(srv, (void *)&a, &al);
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a) < 0)
            _exit(2);
        int s = accept(srv, NULL, NULL);
        close(c);
        close(s);
    }
    close(srv);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: %s rearm|multishot CONNECTIONS [RCVBUF]\n", argv[0]), 64;
    int multishot = strcmp(argv[1], "multishot") == 0;
    int conns = atoi(argv[2]);
    int rcvbuf = argc > 3 ? atoi(argv[3]) : 4 << 20;

    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    connect(fd, (void *)&k, sizeof k);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    int g1 = SKNLGRP_INET_TCP_DESTROY, g2 = SKNLGRP_INET6_TCP_DESTROY;
    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g1, sizeof g1);
    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g2, sizeof g2);

    struct io_uring ring;
    if (io_uring_queue_init(64, &ring, 0) < 0)
        return perror("io_uring"), 1;
    unsigned char *bufs = malloc((size_t)NBUFS * BUF_LEN);
    struct io_uring_buf_ring *br = NULL;
    if (multishot) {
        size_t sz = NBUFS * sizeof(struct io_uring_buf);
        br = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUFS, .bgid = BGID};
        if (io_uring_register_buf_ring(&ring, &reg, 0) < 0)
            return fprintf(stderr, "buf ring refused\n"), 1;
        io_uring_buf_ring_init(br);
        for (int i = 0; i < NBUFS; i++)
            io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_LEN, BUF_LEN, i, io_uring_buf_ring_mask(NBUFS), i);
        io_uring_buf_ring_advance(br, NBUFS);
    }
    unsigned drops0 = drops(fd);
    long t0 = cpu_us();

    pid_t child = fork();
    if (child == 0)
        churn(conns);

    long events = 0, enobufs = 0, cqes = 0, enters = 0, starved = 0;
    int armed = 0, child_done = 0;
    for (;;) {
        if (!armed) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (multishot) {
                io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
                sqe->flags |= IOSQE_BUFFER_SELECT;
                sqe->buf_group = BGID;
            } else {
                io_uring_prep_recv(sqe, fd, bufs, BUF_LEN, 0);
            }
            armed = 1;
        }
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
        struct io_uring_cqe *cqe;
        enters++;
        int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (rc == -ETIME) {
            if (child_done)
                break;
            if (waitpid(child, NULL, WNOHANG) == child)
                child_done = 1;
            continue;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            cqes++;
            int res = cqe->res;
            if (res > 0) {
                unsigned char *p = bufs;
                if (multishot)
                    p = bufs + (size_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) * BUF_LEN;
                events += count_messages(p, res);
                if (multishot) {
                    int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                    io_uring_buf_ring_add(br, p, BUF_LEN, bid, io_uring_buf_ring_mask(NBUFS), 0);
                    io_uring_buf_ring_advance(br, 1);
                }
            } else if (res == -ENOBUFS) {
                enobufs++;   /* multishot: overrun OR our buffers ran out: not distinguishable */
            } else if (res < 0) {
                starved++;
            }
            if (!multishot || !(cqe->flags & IORING_CQE_F_MORE))
                armed = 0;
        }
        io_uring_cq_advance(&ring, seen);
        if (!child_done && waitpid(child, NULL, WNOHANG) == child)
            child_done = 1;
    }
    long cpu = cpu_us() - t0;
    unsigned lost = drops(fd) - drops0;
    printf("%s conns=%d events=%ld lost=%u enobufs=%ld other_errors=%ld cqes=%ld enters=%ld cpu_ms=%.1f "
           "cpu_us_per_1000=%.0f\n", argv[1], conns, events, lost, enobufs, starved, cqes, enters, cpu / 1000.0,
           events ? cpu * 1000.0 / events : 0.0);
    return 0;
}
