/*
 * bindserver.c - an HTTP/1.0 test server built with gcc -static that knows nothing of hotrestart: it makes,
 * binds and listens on its socket itself (no LISTEN_FDS, no READY=1), like most static and Go servers.
 * Under `hotrestart --seccomp` its bind() gets the launcher's socket.
 *
 *   bindserver --listen ADDR [--tag TAG] [--prefork N] [--shutdown-at-exit] [--unspec-at-exit] [--own-filter]
 *              [--nonblock] [--gate FIFO] [--accept blocking|epoll] [--linger-ms MS] [--self-connect]
 *
 * ADDR: HOST:PORT (IPv4), [V6]:PORT, unix:PATH or unix:@NAME (abstract). --prefork N: after listen, N worker processes accept
 * (the first process only waits for them). --shutdown-at-exit: every process calls shutdown(SHUT_RDWR) on
 * its listening socket before it exits, as some servers do. --unspec-at-exit: the same with
 * connect(AF_UNSPEC), which disconnects a TCP socket (on a listener: stops the listen). --own-filter: before binding, installs a
 * seccomp filter of its own (sethostname fails with EROFS) and tries to get a user-notification
 * listener of its own too. --nonblock: the socket is made with SOCK_NONBLOCK. --gate FIFO: opens FIFO for
 * reading (blocks until a writer comes) before making its socket. --accept blocking: the accept loop is a
 * plain blocking accept() (no poll), interrupted by signals; --accept epoll: a non-blocking socket, a
 * level-triggered epoll set and accept4() until EAGAIN. Both report the peer's address accept() gave.
 * --linger-ms MS: after SIGTERM the accept loop goes on for MS more (a server slow to stop accepting).
 * --self-connect: once listening, connects a new socket to its own address (an ordinary outgoing connect).
 * --bad-accept4: once listening, calls accept4() with a flag bit that is not SOCK_NONBLOCK or SOCK_CLOEXEC.
 * Every reply (HTTP/1.0 200, Connection: close) has the body
 *   pid=<pid> tag=<tag> ino=<inode of its listening socket> own_filter=<ok|-> own_listener=<errno name|->
 *   peer=<HOST:PORT the accept of this connection gave|-> self_connect=<ok|errno name|->
 *   bad_accept4=<errno name of that accept4()|ok (it took a connection)|->
 * SIGTERM: a graceful stop: it stops accepting, finishes the connection it is serving and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping, linger_over = 1;
static char own_filter[16] = "-", own_listener[16] = "-", peer_text[80] = "-", self_connect[16] = "-",
            bad_accept4[16] = "-";
static long linger_ms;

static void on_term(int sig) {
    (void)sig;
    stopping = 1;
    if (linger_ms > 0 && linger_over) {
        /* Then SIGALRM every 50 ms: one that comes just before a blocking accept() is followed by another. */
        struct itimerval t = {{0, 50000}, {linger_ms / 1000, (linger_ms % 1000) * 1000}};
        linger_over = 0;
        setitimer(ITIMER_REAL, &t, NULL);
    }
}

static void on_alarm(int sig) {
    (void)sig;
    linger_over = 1;
}

static void set_peer(const struct sockaddr_storage *ss, socklen_t len) {
    char host[64] = "?";
    if (len >= sizeof(struct sockaddr_in) && ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(peer_text, sizeof peer_text, "%s:%d", host, ntohs(in->sin_port));
    } else if (len >= sizeof(struct sockaddr_in6) && ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(peer_text, sizeof peer_text, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else {
        snprintf(peer_text, sizeof peer_text, "family%d/len%u", (int)ss->ss_family, (unsigned)len);
    }
}

static void die(const char *what) {
    fprintf(stderr, "bindserver: %s: %s\n", what, strerror(errno));
    exit(1);
}

static socklen_t parse_addr(const char *s, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (strncmp(s, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        un->sun_family = AF_UNIX;
        if (strlen(s + 5) >= sizeof un->sun_path) return 0;
        strcpy(un->sun_path, s + 5);
        if (un->sun_path[0] == '@') { /* abstract: the name is the bytes after the NUL, no terminator */
            un->sun_path[0] = '\0';
            return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s + 5));
        }
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s + 5) + 1);
    }
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return 0;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']') return 0;
        host[n - 1] = '\0';
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 ? sizeof *in6 : 0;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? sizeof *in : 0;
}

/* A filter of the program's own, as a sandboxing server installs one: sethostname fails with EROFS,
 * everything else is allowed. Then a second one asking for a notification listener, which the kernel
 * refuses (EBUSY) when one is already in the chain: hotrestart's. */
static void install_own_filter(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sethostname, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EROFS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) die("seccomp");
    if (sethostname("x", 1) < 0 && errno == EROFS) strcpy(own_filter, "ok");
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd >= 0) {
        strcpy(own_listener, "ok");
        close((int)fd);
    } else {
        strcpy(own_listener, errno == EBUSY ? "EBUSY" : "other");
    }
}

/* --shutdown-at-exit and --unspec-at-exit: what the process does to its listening socket as it exits. */
static void at_exit(int s, int shut, int unspec) {
    if (shut) shutdown(s, SHUT_RDWR);
    if (unspec) {
        struct sockaddr sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_family = AF_UNSPEC;
        connect(s, &sa, sizeof sa);
    }
}

static void serve(int c, const char *tag, unsigned long ino) {
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
    char body[384], reply[640];
    int bl = snprintf(body, sizeof body, "pid=%d tag=%s ino=%lu own_filter=%s own_listener=%s peer=%s "
                      "self_connect=%s bad_accept4=%s\n", (int)getpid(), tag, ino, own_filter, own_listener, peer_text,
                      self_connect, bad_accept4);
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

static int accept_loop(int s, const char *tag, unsigned long ino, const sigset_t *none, const sigset_t *term) {
    struct pollfd p = {s, POLLIN, 0};
    while (!stopping) {
        /* SIGTERM is let in only while waiting: a connection accepted is always served. */
        int r = ppoll(&p, 1, NULL, none);
        if (r < 0) {
            if (errno == EINTR) continue;
            perror("bindserver: ppoll");
            return 1;
        }
        sigprocmask(SIG_SETMASK, none, NULL);
        if (stopping) break;
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        int e = errno;
        sigprocmask(SIG_BLOCK, term, NULL);
        if (c >= 0) serve(c, tag, ino);
        else if (e != EINTR && e != EAGAIN && e != ECONNABORTED) {
            if (e == EINVAL) return 0; /* no longer listening */
            errno = e;
            perror("bindserver: accept");
            return 1;
        }
    }
    return 0;
}

/* --accept blocking: accept() waits in the kernel; SIGTERM and SIGALRM (no SA_RESTART) interrupt it. */
static int blocking_loop(int s, const char *tag, unsigned long ino, const sigset_t *none, const sigset_t *term) {
    while (!(stopping && linger_over)) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        sigprocmask(SIG_SETMASK, none, NULL);
        int c = accept(s, (struct sockaddr *)&peer, &pl);
        int e = errno;
        sigprocmask(SIG_BLOCK, term, NULL);
        if (c >= 0) {
            set_peer(&peer, pl);
            serve(c, tag, ino);
        } else if (e == EINVAL) {
            return 0; /* no longer listening */
        } else if (e != EINTR && e != ECONNABORTED) {
            errno = e;
            perror("bindserver: accept");
            return 1;
        }
    }
    return 0;
}

/* --accept epoll: a level-triggered epoll set on the non-blocking socket, accept4() until EAGAIN. */
static int epoll_loop(int s, const char *tag, unsigned long ino, const sigset_t *none) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = s}};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll");
    while (!(stopping && linger_over)) {
        if (epoll_pwait(ep, &ev, 1, -1, none) < 0) {
            if (errno == EINTR) continue;
            die("epoll_pwait");
        }
        for (;;) {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            int c = accept4(s, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EINVAL) return 0;
                die("accept4");
            }
            set_peer(&peer, pl);
            serve(c, tag, ino);
        }
    }
    close(ep);
    return 0;
}

int main(int argc, char **argv) {
    const char *tag = "bind", *addr = NULL, *gate = NULL, *mode = NULL;
    int prefork = 0, shut = 0, unspec = 0, own = 0, nonblock = 0, selfconn = 0, badflags = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) addr = argv[++i];
        else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc) tag = argv[++i];
        else if (strcmp(argv[i], "--prefork") == 0 && i + 1 < argc) prefork = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gate") == 0 && i + 1 < argc) gate = argv[++i];
        else if (strcmp(argv[i], "--accept") == 0 && i + 1 < argc) mode = argv[++i];
        else if (strcmp(argv[i], "--linger-ms") == 0 && i + 1 < argc) linger_ms = atol(argv[++i]);
        else if (strcmp(argv[i], "--shutdown-at-exit") == 0) shut = 1;
        else if (strcmp(argv[i], "--unspec-at-exit") == 0) unspec = 1;
        else if (strcmp(argv[i], "--self-connect") == 0) selfconn = 1;
        else if (strcmp(argv[i], "--bad-accept4") == 0) badflags = 1;
        else if (strcmp(argv[i], "--own-filter") == 0) own = 1;
        else if (strcmp(argv[i], "--nonblock") == 0) nonblock = 1;
        else {
            fprintf(stderr, "bindserver: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    struct sockaddr_storage ss;
    socklen_t len = addr ? parse_addr(addr, &ss) : 0;
    if (!len) {
        fprintf(stderr, "bindserver: --listen HOST:PORT, [V6]:PORT or unix:PATH needed\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: a blocked accept() returns EINTR */
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    if (mode && strcmp(mode, "epoll") == 0) nonblock = 1;
    else if (mode && strcmp(mode, "blocking") != 0) {
        fprintf(stderr, "bindserver: --accept blocking|epoll\n");
        return 2;
    }
    sigset_t term, none;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGALRM);
    sigprocmask(SIG_BLOCK, &term, &none);
    sigdelset(&none, SIGTERM);

    if (gate) {
        int g = open(gate, O_RDONLY | O_CLOEXEC);
        if (g < 0) die("gate");
        close(g);
    }
    if (own) install_own_filter();
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (s < 0) die("socket");
    int one = 1;
    if (ss.ss_family != AF_UNIX) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&ss, len) < 0) die("bind");
    if (listen(s, 128) < 0) die("listen");
    struct stat st;
    if (fstat(s, &st) < 0) die("fstat");
    unsigned long ino = (unsigned long)st.st_ino;
    if (selfconn) {
        int c = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0)
            snprintf(self_connect, sizeof self_connect, "%s", strerrorname_np(errno));
        else
            strcpy(self_connect, "ok");
        if (c >= 0) close(c);
    }
    if (badflags) {
        int c = accept4(s, NULL, NULL, 0x40000000);
        if (c < 0)
            snprintf(bad_accept4, sizeof bad_accept4, "%s", strerrorname_np(errno));
        else {
            strcpy(bad_accept4, "ok");
            close(c);
        }
    }

    int rc = 0;
    if (prefork > 0) {
        for (int i = 0; i < prefork; ++i) {
            pid_t w = fork();
            if (w < 0) die("fork");
            if (w == 0) {
                rc = accept_loop(s, tag, ino, &none, &term);
                at_exit(s, shut, unspec);
                _exit(rc);
            }
        }
        /* The first process only waits for its workers (SIGTERM reaches them through the process group). */
        int status;
        for (;;) {
            pid_t w = waitpid(-1, &status, 0);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) break;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
        }
    } else if (mode && strcmp(mode, "blocking") == 0) {
        rc = blocking_loop(s, tag, ino, &none, &term);
    } else if (mode) {
        rc = epoll_loop(s, tag, ino, &none);
    } else {
        rc = accept_loop(s, tag, ino, &none, &term);
    }
    at_exit(s, shut, unspec);
    close(s);
    return rc;
}
