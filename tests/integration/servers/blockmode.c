/*
 * blockmode.c - a threaded HTTP/1.0 test server that is strict about the blocking mode of its listener
 * (PITFALLS 2: O_NONBLOCK lives on the open file description every generation shares).
 *
 *   blockmode --port P [--host 127.0.0.1] [--mode MODE] [--mode-file PATH] [--threads 4]
 *
 * MODE (the first word of --mode-file, when that file exists, wins over --mode):
 *   blocking     plain socket(); after listen() it makes sure the listener is blocking
 *                (fcntl(F_SETFL, flags & ~O_NONBLOCK), as many servers do); N threads sit in a plain
 *                blocking accept(). accept() failing with EAGAIN is impossible on a blocking socket: it
 *                prints "blockmode: fatal: accept returned EAGAIN on a blocking socket" and exits 3.
 *   nonblocking  socket(SOCK_NONBLOCK); N threads: poll(POLLIN) then accept(), EAGAIN is normal.
 *   fcntl        like nonblocking, but O_NONBLOCK is set with fcntl(F_SETFL) after listen()
 *   ioctl        like nonblocking, but O_NONBLOCK is set with ioctl(FIONBIO) after listen()
 * In the three non-blocking modes, an accept() that blocks for more than 2 s (the listener became
 * blocking under it) prints "blockmode: fatal: accept blocked ... on a non-blocking socket" and exits 4.
 *
 * Every reply (HTTP/1.0 200, Connection: close) has the body
 *   pid=<pid> nonblock=<0|1> mode=<mode>
 * where nonblock is fcntl(listener, F_GETFL) & O_NONBLOCK at the time of the reply.
 * SIGTERM/SIGINT: _exit(0).
 *
 * gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -pthread -o build/blockmode blockmode.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_lfd = -1;
static char g_mode[32] = "blocking";
static int g_blocking;

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
        int fl = fcntl(g_lfd, F_GETFL);
        char body[128], reply[512];
        int bl = snprintf(body, sizeof body, "pid=%ld nonblock=%d mode=%s\n", (long)getpid(),
                          fl >= 0 && (fl & O_NONBLOCK) ? 1 : 0, g_mode);
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

static int transient(int e)
{
    return e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
           e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == ENETUNREACH || e == ETIMEDOUT;
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        if (!g_blocking) {
            struct pollfd p = {g_lfd, POLLIN, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                fprintf(stderr, "blockmode: fatal: poll: %s\n", strerror(errno));
                exit(2);
            }
        }
        long long t0 = now_ms();
        int fd = accept(g_lfd, NULL, NULL);
        long long took = now_ms() - t0;
        if (!g_blocking && took > 2000) {
            fprintf(stderr, "blockmode: fatal: accept blocked %lld ms on a non-blocking socket (pid %ld)\n",
                    took, (long)getpid());
            exit(4);
        }
        if (fd >= 0) {
            handle(fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (g_blocking) {
                fprintf(stderr, "blockmode: fatal: accept returned EAGAIN on a blocking socket (pid %ld)\n",
                        (long)getpid());
                exit(3);
            }
            continue;
        }
        if (transient(errno))
            continue;
        fprintf(stderr, "blockmode: fatal: accept: %s (pid %ld)\n", strerror(errno), (long)getpid());
        exit(2);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *mode_file = NULL;
    int port = -1, threads = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            snprintf(g_mode, sizeof g_mode, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--mode-file"))
            mode_file = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "blockmode: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port < 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: blockmode --port P [--mode blocking|nonblocking|fcntl|ioctl] [--mode-file F]\n");
        return 2;
    }
    if (mode_file) {
        FILE *f = fopen(mode_file, "r");
        if (f) {
            char w[32];
            if (fscanf(f, "%31s", w) == 1)
                snprintf(g_mode, sizeof g_mode, "%s", w);
            fclose(f);
        }
    }
    int sock_flags = 0;
    if (!strcmp(g_mode, "blocking"))
        g_blocking = 1;
    else if (!strcmp(g_mode, "nonblocking"))
        sock_flags = SOCK_NONBLOCK;
    else if (strcmp(g_mode, "fcntl") && strcmp(g_mode, "ioctl")) {
        fprintf(stderr, "blockmode: unknown mode %s\n", g_mode);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_lfd = socket(AF_INET, SOCK_STREAM | sock_flags, 0);
    int one = 1;
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (bind(g_lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(g_lfd, 128) < 0) {
        fprintf(stderr, "blockmode: fatal: unable to bind %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    int fl = fcntl(g_lfd, F_GETFL);
    if (g_blocking) {
        fcntl(g_lfd, F_SETFL, fl & ~O_NONBLOCK);
    } else if (!strcmp(g_mode, "fcntl")) {
        fcntl(g_lfd, F_SETFL, fl | O_NONBLOCK);
    } else if (!strcmp(g_mode, "ioctl")) {
        int on = 1;
        ioctl(g_lfd, FIONBIO, &on);
    }
    fl = fcntl(g_lfd, F_GETFL);
    fprintf(stderr, "blockmode: pid=%ld mode=%s listening on %s:%d nonblock=%d\n", (long)getpid(), g_mode, host,
            port, (fl & O_NONBLOCK) ? 1 : 0);

    pthread_t tids[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, acceptor, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
