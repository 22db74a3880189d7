/*
 * shutdown_acceptors.c - N threads blocked in accept(); SIGTERM wakes them the way many servers do, by
 * stopping the listener itself (PITFALLS 3): shutdown(lfd, SHUT_RDWR), or connect(lfd, {AF_UNSPEC}).
 *
 *   shutdown_acceptors --port P [--host 127.0.0.1] [--threads 4] [--how shutdown|unspec]
 *                      [--backlog 100] [--relisten N] [--opts-file PATH]
 *
 * --opts-file: more options of the same form, read from PATH at start (absent file: none).
 * --relisten N: after bind() and listen(lfd, backlog), call listen(lfd, N) again (memcached's throttle
 *               does listen(fd, 0) to stop accepting).
 *
 * The SIGTERM handler sets a flag and stops the listener; every acceptor leaves its loop when accept()
 * fails with the flag set; main joins them, prints
 *   shutdown_acceptors: pid=<pid> joined <n> threads in <ms> ms
 * and exits 0. accept() failing for another reason while the flag is down (the listener was shut down
 * under us) is fatal: "shutdown_acceptors: fatal: accept: ..." and exit 2.
 * Replies (HTTP/1.0 200): "pid=<pid>\n".
 *
 * gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -pthread -o build/shutdown_acceptors shutdown_acceptors.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_lfd = -1;
static int g_unspec;
static volatile sig_atomic_t g_stop;
static struct timespec g_stop_at;

static void on_term(int sig)
{
    (void)sig;
    if (g_stop)
        return;
    clock_gettime(CLOCK_MONOTONIC, &g_stop_at);
    g_stop = 1;
    int e = errno;
    if (g_unspec) {
        struct sockaddr sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_family = AF_UNSPEC;
        connect(g_lfd, &sa, sizeof sa);
    } else {
        shutdown(g_lfd, SHUT_RDWR);
    }
    errno = e;
}

static void handle(int fd)
{
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[4096];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                break;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (len > 0) {
        char body[64], reply[256];
        int bl = snprintf(body, sizeof body, "pid=%ld\n", (long)getpid());
        int rl = snprintf(reply, sizeof reply,
                          "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                          "Content-Length: %d\r\n\r\n%s", bl, body);
        size_t off = 0;
        while (off < (size_t)rl) {
            ssize_t n = send(fd, reply + off, (size_t)rl - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno == EINTR)
                continue;
            else
                break;
        }
    }
    close(fd);
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(g_lfd, NULL, NULL);
        if (fd >= 0) {
            handle(fd);
            continue;
        }
        if (g_stop)
            return NULL;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        fprintf(stderr, "shutdown_acceptors: fatal: accept: %s (pid %ld, listener stopped under us)\n",
                strerror(errno), (long)getpid());
        exit(2);
    }
}

/* argv plus the words of the options file */
static char **with_opts_file(int *argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i + 1 < *argc; i++)
        if (!strcmp(argv[i], "--opts-file"))
            path = argv[i + 1];
    if (!path)
        return argv;
    FILE *f = fopen(path, "r");
    if (!f)
        return argv;
    char **out = calloc((size_t)*argc + 65, sizeof *out);
    memcpy(out, argv, sizeof *out * (size_t)*argc);
    char w[256];
    while (*argc < 64 && fscanf(f, "%255s", w) == 1)
        out[(*argc)++] = strdup(w);
    fclose(f);
    return out;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = -1, threads = 4, backlog = 100, relisten = -1;
    argv = with_opts_file(&argc, argv);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--how"))
            g_unspec = !strcmp(argv[i + 1], "unspec");
        else if (!strcmp(argv[i], "--backlog"))
            backlog = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--relisten"))
            relisten = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--opts-file")) {
            fprintf(stderr, "shutdown_acceptors: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port < 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: shutdown_acceptors --port P [--threads N] [--how shutdown|unspec]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    g_lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (bind(g_lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(g_lfd, backlog) < 0) {
        fprintf(stderr, "shutdown_acceptors: fatal: unable to bind %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    if (relisten >= 0 && listen(g_lfd, relisten) < 0)
        fprintf(stderr, "shutdown_acceptors: listen(%d) again: %s\n", relisten, strerror(errno));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    fprintf(stderr, "shutdown_acceptors: pid=%ld listening on %s:%d backlog=%d relisten=%d how=%s\n",
            (long)getpid(), host, port, backlog, relisten, g_unspec ? "unspec" : "shutdown");
    pthread_t tids[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, acceptor, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ms = (t.tv_sec - g_stop_at.tv_sec) * 1000 + (t.tv_nsec - g_stop_at.tv_nsec) / 1000000;
    fprintf(stderr, "shutdown_acceptors: pid=%ld joined %d threads in %ld ms\n", (long)getpid(), threads, ms);
    return 0;
}
