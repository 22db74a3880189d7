/*
 * forkhold.c - a pre-fork server for scale: a master that listens, then forks many workers, each accepting
 * from every listener with its own level-triggered epoll set and holding as many connections as clients keep
 * open.
 *
 *   forkhold --port P [--workers N] [--listeners K] [--exclusive]
 *
 * Listens on 127.0.0.1:P and, with --listeners K (K >= 1, default 1), on K-1 more sockets with the same port
 * on 127.0.1.1, 127.0.1.2, ... (127.0.X.Y, X from 1, Y in 1..250): many fixed addresses that a next generation
 * binds again, with no port to search for. Forks N workers (default 4). Once every worker accepts it logs
 * "forkhold: pid=<pid> <N> workers accepting on <K> sockets at <CLOCK_REALTIME seconds>". Every worker is
 * woken for each new connection (all but one find nothing to accept); --exclusive registers the listeners
 * with EPOLLEXCLUSIVE instead (one worker woken per connection, as nginx does).
 *
 * Each connection: a line "HOLD\n" is answered with "pid=<worker pid>\n" and the connection is kept until the
 * client closes it (then the worker closes it; just before it closes the last one it held, it logs
 * "forkhold: pid=<pid> closes its last connection at <CLOCK_REALTIME seconds>"); anything else is taken as
 * an HTTP request, answered (HTTP/1.0 200, body "pid=<worker pid>\n") and closed. SIGTERM: every process
 * exits (default action).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS 4096
#define MAX_FD 65536

static int listeners[MAX_LISTENERS];
static int nlisteners;
static unsigned exclusive;
static unsigned char holding[MAX_FD]; /* fd -> 1 while it is a held connection */
static int held;

/* The line comes first: once the last connection of a draining generation is closed, the launcher may stop
 * this process at any moment. */
static void closed(int ep, int fd)
{
    if (fd < MAX_FD && holding[fd]) {
        holding[fd] = 0;
        if (--held == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            fprintf(stderr, "forkhold: pid=%ld closes its last connection at %ld.%06ld\n", (long)getpid(),
                    (long)ts.tv_sec, ts.tv_nsec / 1000);
        }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static void die(const char *what)
{
    fprintf(stderr, "forkhold: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int listen_on(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "forkhold: bad address %s\n", host);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "forkhold: bind %s:%d: %s\n", host, port, strerror(errno));
        exit(1);
    }
    if (listen(fd, 4096) < 0)
        die("listen");
    return fd;
}

static void serve(int ep, int fd, const char *pidline, size_t pidlen)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        closed(ep, fd);
        return;
    }
    if (n >= 5 && memcmp(buf, "HOLD\n", 5) == 0) {
        if (fd < MAX_FD && !holding[fd]) {
            holding[fd] = 1;
            held++;
        }
        if (write(fd, pidline, pidlen) < 0)
            closed(ep, fd);
        return;
    }
    char reply[256];
    int len = snprintf(reply, sizeof reply,
                       "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                       "Content-Length: %zu\r\n\r\n%s", pidlen, pidline);
    if (write(fd, reply, (size_t)len) < 0) {
        /* the client went away: nothing to do but close */
    }
    closed(ep, fd);
}

static void worker(int ready_fd)
{
    char pidline[32];
    int pidlen = snprintf(pidline, sizeof pidline, "pid=%ld\n", (long)getpid());
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < nlisteners; i++) {
        /* data.u64 >= 2^32 marks a listener; below, it is a connection's descriptor */
        struct epoll_event ev = {.events = EPOLLIN | exclusive, .data.u64 = (1ULL << 32) | (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev) < 0)
            die("epoll_ctl");
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        die("write ready");
    close(ready_fd);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 >> 32) {
                int l = listeners[evs[i].data.u64 & 0xffffffffu];
                for (;;) {
                    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break; /* EAGAIN (queue empty, or draining), or a transient error */
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (unsigned)c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
                        close(c);
                }
            } else {
                serve(ep, (int)evs[i].data.u64, pidline, (size_t)pidlen);
            }
        }
    }
}

int main(int argc, char **argv)
{
    int port = -1, workers = 4, count = 1;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--exclusive") == 0) {
            exclusive = EPOLLEXCLUSIVE;
            i--;
            continue;
        }
        if (i + 1 == argc)
            port = -1;
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--listeners") == 0)
            count = atoi(argv[i + 1]);
        else
            port = -1; /* unknown option: usage */
    }
    if (port <= 0 || workers < 1 || count < 1 || count > MAX_LISTENERS) {
        fprintf(stderr, "usage: forkhold --port P [--workers N] [--listeners K (1..%d)] [--exclusive]\n", MAX_LISTENERS);
        return 2;
    }
    listeners[nlisteners++] = listen_on("127.0.0.1", port);
    for (int i = 0; i + 1 < count; i++) {
        char host[32];
        snprintf(host, sizeof host, "127.0.%d.%d", 1 + i / 250, 1 + i % 250);
        listeners[nlisteners++] = listen_on(host, port);
    }
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        die("pipe");
    pid_t master = getpid();
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            close(ready[0]);
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the master */
            if (getppid() != master)
                _exit(0);
            worker(ready[1]);
            _exit(0);
        }
    }
    close(ready[1]);
    for (int got = 0; got < workers;) {
        char b[256];
        ssize_t n = read(ready[0], b, sizeof b);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "forkhold: a worker died before it accepted\n");
            return 1;
        }
        got += (int)n;
    }
    close(ready[0]);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "forkhold: pid=%ld %d workers accepting on %d sockets at %ld.%06ld\n", (long)getpid(), workers,
            nlisteners, (long)ts.tv_sec, ts.tv_nsec / 1000);
    /* The master only reaps: a worker that dies is not replaced. */
    for (;;) {
        int status;
        if (wait(&status) < 0 && errno == ECHILD)
            pause();
    }
}
