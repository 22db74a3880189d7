/*
 * staticserver.c - an HTTP/1.0 test server built with gcc -static: no ELF interpreter, so the hotrestart
 * shim can never run in it. It binds nothing: it takes its listening sockets by convention, as Go and
 * other static servers do, and says when it is ready itself.
 *
 *   staticserver [--starter] [--ignore-term] [--tag TAG] [ANY OTHER ARGUMENT IS IGNORED]
 *
 * Sockets: LISTEN_FDS descriptors from 3 up, used only when LISTEN_PID is its own pid (systemd's rule);
 * with --starter, the descriptors SERVER_STARTER_PORT names instead ("127.0.0.1:8080=3;[::1]:8080=4").
 * With neither it prints "staticserver: no sockets given" and exits 2.
 * Once it has them it sends READY=1 to $NOTIFY_SOCKET (if set; "@name" is an abstract socket).
 * Every reply (HTTP/1.0 200, Connection: close) has the body
 *   pid=<pid> tag=<tag> uid=<uid> via=<listen_fds|starter> fds=<n>
 * SIGTERM: a graceful stop: it stops accepting, finishes the connection it is serving and exits 0 (the
 * connections still queued are the next generation's: the listening socket is shared). --ignore-term: it
 * ignores SIGTERM (a server that never stops by itself).
 *
 * gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -static -o build/staticserver staticserver.c
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 64

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
    (void)sig;
    stopping = 1;
}

static int parse_fd(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > 1 << 20) return 0;
    *out = (int)v;
    return 1;
}

static int fds_from_listen(int *fds) {
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
    int p, count;
    if (!pid || !n || !parse_fd(pid, &p) || p != (int)getpid() || !parse_fd(n, &count)) return 0;
    if (count > MAX_FDS) count = MAX_FDS;
    for (int i = 0; i < count; ++i) fds[i] = 3 + i;
    return count;
}

static int fds_from_starter(int *fds) {
    const char *v = getenv("SERVER_STARTER_PORT");
    int count = 0;
    if (!v) return 0;
    for (const char *p = v; *p && count < MAX_FDS;) {
        const char *semi = strchr(p, ';');
        const char *end = semi ? semi : p + strlen(p);
        const char *eq = NULL;
        for (const char *q = p; q < end; ++q)
            if (*q == '=') eq = q;
        if (eq && parse_fd(eq + 1, &fds[count])) ++count;
        p = semi ? semi + 1 : end;
    }
    return count;
}

static void notify_ready(void) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0] || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return;
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, strlen(path));
    if (un.sun_path[0] == '@') un.sun_path[0] = '\0';
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(s, "READY=1", 7, 0, (struct sockaddr *)&un, len) < 0) perror("staticserver: READY=1");
    close(s);
}

static void serve(int c, const char *tag, const char *via, int nfds) {
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t r = read(c, req + got, sizeof req - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    char body[256], reply[512];
    int bl = snprintf(body, sizeof body, "pid=%d tag=%s uid=%d via=%s fds=%d\n", (int)getpid(), tag, (int)getuid(),
                      via, nfds);
    int rl = snprintf(reply, sizeof reply,
                      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                      bl, body);
    for (int off = 0; off < rl;) {
        ssize_t w = write(c, reply + off, (size_t)(rl - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (int)w;
    }
    close(c);
}

int main(int argc, char **argv) {
    const char *tag = "static";
    int starter = 0, ignore_term = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--starter") == 0) starter = 1;
        else if (strcmp(argv[i], "--ignore-term") == 0) ignore_term = 1;
        else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc) tag = argv[++i];
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore_term ? SIG_IGN : on_term;
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: a blocked accept() returns EINTR */
    sigset_t term, none;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &none);
    sigdelset(&none, SIGTERM);

    int fds[MAX_FDS];
    int n = starter ? fds_from_starter(fds) : fds_from_listen(fds);
    if (n == 0) {
        fprintf(stderr, "staticserver: no sockets given\n");
        return 2;
    }
    struct pollfd p[MAX_FDS];
    int np = 0;
    for (int i = 0; i < n; ++i) {
        int type = 0, acc = 0;
        socklen_t l = sizeof type;
        if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_STREAM) continue;
        l = sizeof acc;
        if (getsockopt(fds[i], SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || !acc) continue;
        p[np].fd = fds[i];
        p[np].events = POLLIN;
        ++np;
    }
    notify_ready();
    const char *via = starter ? "starter" : "listen_fds";
    while (!stopping) {
        /* SIGTERM is let in only while waiting: a connection accepted is always served. */
        int r = ppoll(p, (nfds_t)np, NULL, &none);
        if (r < 0) {
            if (errno == EINTR) continue;
            perror("staticserver: ppoll");
            return 1;
        }
        for (int i = 0; i < np && !stopping; ++i) {
            /* Any event, POLLHUP included (the launcher shut the socket down when it stops): accept()
             * says what it is. SIGTERM is let in there too: ppoll() returns ready descriptors without
             * delivering a signal that is pending. */
            if (!p[i].revents) continue;
            /* Another process (the other generation) may take the connection first: a blocking accept()
             * then waits for the next one, interruptible by SIGTERM. */
            sigprocmask(SIG_SETMASK, &none, NULL);
            if (stopping) break;
            int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            int e = errno;
            sigprocmask(SIG_BLOCK, &term, NULL);
            errno = e;
            if (c >= 0) serve(c, tag, via, n);
            else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                if (errno == EINVAL) return 0; /* the launcher stopped the socket from listening */
                perror("staticserver: accept");
            }
        }
    }
    return 0;
}
