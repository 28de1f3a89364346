/*
 * Open and close loopback TCP connections at a set rate in the current namespace (the
 * `closes` benchmark's load; benchmarks/closes.py runs one per namespace).
 *
 *   close_churn RATE SECONDS [START]  ->  prints the socket ends closed (2 per connection + the
 *   listener) and the seconds it took; START (epoch seconds, CLOCK_REALTIME) waits until then, so
 *   the caller's clock can start without the cost of starting us.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: %s RATE SECONDS\n", argv[0]), 64;
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    if (argc > 3) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = atof(argv[3]) - (ts.tv_sec + ts.tv_nsec / 1e9);
        if (wait > 0) {
            struct timespec w = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&w, NULL);
        }
    }
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(srv, (void *)&a, sizeof a) < 0 || listen(srv, 1024) < 0)
        return perror("listen"), 1;
    getsockname(srv, (void *)&a, &al);
    long n = 0, total = (long)(rate * seconds);
    double t0 = now();
    while (n < total) {
        double due = t0 + n / rate, t = now();
        if (due > t) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)((due - t) * 1e9)};
            nanosleep(&ts, NULL);
        }
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a) < 0)
            return perror("connect"), 1;
        int s = accept(srv, NULL, NULL);
        close(c);
        close(s);
        n++;
    }
    close(srv);
    printf("%ld %.3f\n", 2 * n + 1, now() - t0);
    return 0;
}
