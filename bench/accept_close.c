/* accept_close: the shim's cost on the calls it wraps, in one process and without a network load
 * generator in the way. Each iteration: a client connect()s (non-blocking), the server accept()s,
 * writes one byte, and both close(); also two close()s of untracked descriptors (a pipe). Prints
 * nanoseconds per iteration (best of --rounds). Under build/hotrestart it also listens for real, so
 * the launcher counts it ready; plain, it just runs.
 *   accept_close [--iterations N] [--rounds R] */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long iterations = 20000;
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--iterations") == 0) iterations = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1024) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0) {
        perror("accept_close: listener");
        return 1;
    }
    double best = 0;
    for (int r = 0; r < rounds; ++r) {
        double t0 = now_ns();
        for (long i = 0; i < iterations; ++i) {
            int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (connect(c, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
                perror("accept_close: connect");
                return 1;
            }
            /* Wait for the handshake so the connection is queued when accept() runs, as it is on a
             * loaded server; an idle server's accept() instead waits (and the shim's emulated wait
             * costs a poll() there, which is latency, not throughput). */
            struct pollfd pc = {c, POLLOUT, 0};
            poll(&pc, 1, 1000);
            int s = accept(l, NULL, NULL);
            if (s < 0) {
                perror("accept_close: accept");
                return 1;
            }
            if (write(s, "x", 1) != 1) return 1;
            close(s);
            close(c);
            int p[2];
            if (pipe(p) == 0) {
                close(p[0]);
                close(p[1]);
            }
        }
        double ns = (now_ns() - t0) / iterations;
        if (r == 0 || ns < best) best = ns;
    }
    printf("%.0f\n", best);
    return 0;
}
