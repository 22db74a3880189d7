/*
 * testserver.c - a small, plain HTTP/1.0-ish test server with several
 * classic server designs ("models"), selected with --model:
 *
 *   iterative  blocking listener; accept(), handle, close, loop
 *   threads    blocking listener; N threads each blocked in accept()
 *   prefork    master binds/listens, forks N workers that accept()
 *   epoll      single thread, non-blocking listener, level-triggered epoll
 *   accept4    like iterative, but accept4(..., SOCK_CLOEXEC)
 *
 * Every reply is
 *   HTTP/1.0 200 OK\r\n
 *   Content-Type: text/plain\r\n
 *   Connection: close\r\n
 *   Content-Length: <len>\r\n
 *   \r\n
 *   pid=<pid> tag=<tag> path=<path>\n
 *
 * GET /slow?ms=N delays the reply by N milliseconds (N <= 60000).
 *
 * --notify-after MS sends READY=1 to $NOTIFY_SOCKET (sd_notify) MS milliseconds after listening, from a
 * thread, while the server already accepts. The word "exitafter=MS" in the --mode-file makes an iterative,
 * accept4 or epoll server exit with status 1 MS milliseconds after listening, with no request in flight;
 * "killafter=MS" makes it SIGKILL itself instead (a crash). --start-delay MS sleeps before binding (a slow
 * start-up).
 *
 * --reset-on-stop makes the stop signal (SIGTERM, SIGINT) reset every TCP connection the process holds
 * (SO_LINGER 0, then close: the client gets a RST instead of its reply) before it exits: a server that
 * loses connections when it is stopped during a drain, for testing tools that must catch that.
 *
 * Build:
 *   gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -pthread \
 *       -o build/testserver examples/testserver.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 8192        /* maximum request size we read */
#define SLOW_MAX_MS 60000   /* upper bound for /slow?ms=N */
#define MAX_WORKERS 1024

enum model { M_ITERATIVE, M_THREADS, M_PREFORK, M_EPOLL, M_ACCEPT4 };
enum mode { MODE_SERVE, MODE_EXIT1, MODE_NOBIND, MODE_IGNORETERM, MODE_CRASH, MODE_EXITAFTER };

static const char *g_tag = "v1";
static int g_crash;        /* abort() after the first served request */
static int g_ignoreterm;   /* SIGTERM (and SIGINT) ignored */
static long g_exit_after_ms;             /* exitafter=MS and killafter=MS modes */
static int g_exit_by_kill;               /* killafter: SIGKILL itself instead of exit(1) */
static volatile sig_atomic_t g_exit_now; /* set by SIGALRM in exitafter mode */
static int g_reset_on_stop;              /* --reset-on-stop */

/* ------------------------------------------------------------------ */
/* small helpers                                                        */
/* ------------------------------------------------------------------ */

static void die(const char *what)
{
    fprintf(stderr, "testserver: fatal: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "testserver: fatal: out of memory\n");
        exit(1);
    }
    return p;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec req, rem;
    req.tv_sec = ms / 1000;
    req.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}

static void on_term_exit(int sig)
{
    (void)sig;
    _exit(0);
}

/* --reset-on-stop: every connected TCP socket is closed with SO_LINGER 0 (a RST), then _exit(0).
 * Only system calls: async-signal-safe. */
static void on_term_reset(int sig)
{
    (void)sig;
    for (int fd = 3; fd < 4096; fd++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            continue;
        sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
            continue;                       /* a listener */
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    _exit(0);
}

static void set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(sig, &sa, NULL) != 0)
        die("sigaction");
}

/* SIGTERM/SIGINT => _exit(0), or ignored in ignoreterm mode. */
static void install_exit_handlers(void)
{
    if (g_ignoreterm) {
        set_handler(SIGTERM, SIG_IGN);
        set_handler(SIGINT, SIG_IGN);
    } else {
        set_handler(SIGTERM, g_reset_on_stop ? on_term_reset : on_term_exit);
        set_handler(SIGINT, g_reset_on_stop ? on_term_reset : on_term_exit);
    }
}

/* ------------------------------------------------------------------ */
/* request parsing / reply building (shared by all models)              */
/* ------------------------------------------------------------------ */

static int request_complete(const char *buf, size_t len)
{
    return memmem(buf, len, "\r\n\r\n", 4) != NULL;
}

/*
 * Extract the path (second token of the request line) into a fresh
 * NUL-terminated string.  Returns "" when there is none.
 */
static char *extract_path(const char *buf, size_t len)
{
    size_t i = 0, start, end;

    /* request line ends at the first CR or LF */
    size_t line_end = 0;
    while (line_end < len && buf[line_end] != '\r' && buf[line_end] != '\n')
        line_end++;

    /* skip method */
    while (i < line_end && buf[i] != ' ')
        i++;
    while (i < line_end && buf[i] == ' ')
        i++;
    start = i;
    while (i < line_end && buf[i] != ' ' && buf[i] != '\0')
        i++;
    end = i;

    char *path = xmalloc(end - start + 1);
    memcpy(path, buf + start, end - start);
    path[end - start] = '\0';
    return path;
}

/* Returns the delay for "/slow?ms=N" (clamped to SLOW_MAX_MS), else 0. */
static long slow_delay_ms(const char *path)
{
    if (strncmp(path, "/slow", 5) != 0 || path[5] != '?')
        return 0;
    const char *q = path + 6;
    while (*q) {
        if (strncmp(q, "ms=", 3) == 0) {
            const char *p = q + 3;
            long v = 0;
            if (*p < '0' || *p > '9')
                return 0;
            while (*p >= '0' && *p <= '9') {
                if (v <= SLOW_MAX_MS)
                    v = v * 10 + (*p - '0');
                p++;
            }
            return v > SLOW_MAX_MS ? SLOW_MAX_MS : v;
        }
        const char *amp = strchr(q, '&');
        if (!amp)
            break;
        q = amp + 1;
    }
    return 0;
}

/* Builds the full reply into a malloc()ed buffer. */
static char *build_reply(const char *path, size_t *out_len)
{
    int blen = snprintf(NULL, 0, "pid=%ld tag=%s path=%s\n",
                        (long)getpid(), g_tag, path);
    if (blen < 0) {
        fprintf(stderr, "testserver: fatal: snprintf failed\n");
        exit(1);
    }
    char *body = xmalloc((size_t)blen + 1);
    snprintf(body, (size_t)blen + 1, "pid=%ld tag=%s path=%s\n",
             (long)getpid(), g_tag, path);

    static const char fmt[] =
        "HTTP/1.0 200 OK\r\n"
        "Content-Type: text/plain\r\n"
        "Connection: close\r\n"
        "Content-Length: %d\r\n"
        "\r\n"
        "%s";
    int rlen = snprintf(NULL, 0, fmt, blen, body);
    if (rlen < 0) {
        fprintf(stderr, "testserver: fatal: snprintf failed\n");
        exit(1);
    }
    char *reply = xmalloc((size_t)rlen + 1);
    snprintf(reply, (size_t)rlen + 1, fmt, blen, body);
    free(body);
    *out_len = (size_t)rlen;
    return reply;
}

/* ------------------------------------------------------------------ */
/* blocking connection handling (iterative, accept4, threads, prefork) */
/* ------------------------------------------------------------------ */

static void wait_fd(int fd, short events)
{
    struct pollfd p;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    (void)poll(&p, 1, -1);
}

static void exit_if_due(void)
{
    if (g_exit_now) {
        if (g_exit_by_kill) {
            fprintf(stderr, "testserver: killafter: SIGKILL pid=%ld\n", (long)getpid());
            kill(getpid(), SIGKILL);
        }
        fprintf(stderr, "testserver: exitafter: exiting with status 1 pid=%ld\n", (long)getpid());
        exit(1);
    }
}

/* Writes all of buf; returns 0 on success, -1 on error (peer gone). */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(fd, POLLOUT);
        } else {
            return -1;
        }
    }
    return 0;
}

/*
 * Handles one connection on a blocking socket and closes it.
 * Returns 1 if a reply was fully sent.
 */
static int handle_blocking(int fd)
{
    char buf[REQ_MAX];
    size_t len = 0;
    int served = 0;

    while (len < sizeof buf) {
        ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
        if (n > 0) {
            len += (size_t)n;
            if (request_complete(buf, len))
                break;
        } else if (n == 0) {
            break;                          /* EOF */
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_fd(fd, POLLIN);
        } else {
            len = 0;                        /* reset etc.: no reply */
            break;
        }
    }

    if (len > 0) {
        char *path = extract_path(buf, len);
        long ms = slow_delay_ms(path);
        if (ms > 0)
            sleep_ms(ms);
        size_t rlen;
        char *reply = build_reply(path, &rlen);
        served = write_all(fd, reply, rlen) == 0;
        free(reply);
        free(path);
    }

    close(fd);
    return served;
}

/*
 * Blocking accept; returns a connection fd.  Transient errors are
 * retried; errors meaning "this is not a usable listener" are fatal.
 */
static int accept_blocking(int lfd, int use_accept4)
{
    for (;;) {
        int fd = use_accept4 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC)
                             : accept(lfd, NULL, NULL);
        if (fd >= 0)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED)
            exit_if_due();
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ETIMEDOUT:
            continue;
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            wait_fd(lfd, POLLIN);
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            fprintf(stderr, "testserver: accept: %s (retrying)\n",
                    strerror(errno));
            sleep_ms(100);
            continue;
        default:
            die(use_accept4 ? "accept4" : "accept");
        }
    }
}

static void serve_blocking_loop(int lfd, int use_accept4)
{
    for (;;) {
        int fd = accept_blocking(lfd, use_accept4);
        if (handle_blocking(fd) && g_crash)
            abort();
        exit_if_due();
    }
}

/* ------------------------------------------------------------------ */
/* threads model                                                        */
/* ------------------------------------------------------------------ */

static void *thread_main(void *arg)
{
    int lfd = *(int *)arg;
    serve_blocking_loop(lfd, 0);
    return NULL;
}

static void run_threads(int lfd, int workers)
{
    static int lfd_store;
    lfd_store = lfd;
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)workers);
    for (int i = 0; i < workers; i++) {
        int rc = pthread_create(&tids[i], NULL, thread_main, &lfd_store);
        if (rc != 0) {
            errno = rc;
            die("pthread_create");
        }
    }
    for (int i = 0; i < workers; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

/* ------------------------------------------------------------------ */
/* prefork model                                                        */
/* ------------------------------------------------------------------ */

static sigset_t g_master_set, g_master_oldset;

/*
 * Called before the listener is created: the master handles SIGTERM,
 * SIGINT and SIGCHLD synchronously with sigwaitinfo(), so they are
 * blocked from the start (a SIGTERM arriving during start-up is then
 * handled as a normal shutdown).
 */
static void prefork_prepare_signals(void)
{
    sigemptyset(&g_master_set);
    sigaddset(&g_master_set, SIGCHLD);
    if (g_ignoreterm) {
        set_handler(SIGTERM, SIG_IGN);
        set_handler(SIGINT, SIG_IGN);
    } else {
        sigaddset(&g_master_set, SIGTERM);
        sigaddset(&g_master_set, SIGINT);
    }
    if (sigprocmask(SIG_BLOCK, &g_master_set, &g_master_oldset) != 0)
        die("sigprocmask");
}

static void run_prefork(int lfd, int workers)
{
    const sigset_t *set = &g_master_set;
    const sigset_t *oldset = &g_master_oldset;
    pid_t *pids = xmalloc(sizeof(pid_t) * (size_t)workers);
    int alive = 0;
    pid_t master = getpid();

    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            /* worker */
            free(pids);
            if (g_ignoreterm) {
                set_handler(SIGTERM, SIG_IGN);
                set_handler(SIGINT, SIG_IGN);
            } else {
                set_handler(SIGTERM, g_reset_on_stop ? on_term_reset : SIG_DFL);
                set_handler(SIGINT, SIG_IGN);  /* the master coordinates */
            }
            set_handler(SIGCHLD, SIG_DFL);
            sigprocmask(SIG_SETMASK, oldset, NULL);
            /* do not outlive the master (e.g. if it is SIGKILLed) */
            prctl(PR_SET_PDEATHSIG, g_ignoreterm ? SIGKILL : SIGTERM);
            if (getppid() != master)
                _exit(0);
            serve_blocking_loop(lfd, 0);
            _exit(0);
        }
        pids[i] = pid;
        alive++;
    }

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            die("sigwaitinfo");
        }
        if (sig == SIGTERM || sig == SIGINT)
            break;
        /* SIGCHLD: reap whatever exited */
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            for (int i = 0; i < workers; i++) {
                if (pids[i] == pid) {
                    pids[i] = 0;
                    alive--;
                    break;
                }
            }
            if (WIFSIGNALED(status))
                fprintf(stderr, "testserver: worker pid=%ld killed by signal %d"
                        " (not respawned, %d left)\n",
                        (long)pid, WTERMSIG(status), alive);
            else
                fprintf(stderr, "testserver: worker pid=%ld exited with status %d"
                        " (not respawned, %d left)\n",
                        (long)pid, WEXITSTATUS(status), alive);
        }
    }

    /* shutdown: SIGTERM every live worker, then wait for all of them */
    for (int i = 0; i < workers; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = 0; i < workers; i++) {
        if (pids[i] <= 0)
            continue;
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
            ;
        pids[i] = 0;
    }
    free(pids);
    exit(0);
}

/* ------------------------------------------------------------------ */
/* epoll model                                                          */
/* ------------------------------------------------------------------ */

enum cstate { C_READ, C_SLEEP, C_WRITE };

struct conn {
    int fd;
    enum cstate state;
    int registered;             /* fd currently in the epoll set */
    size_t len;
    char in[REQ_MAX];
    char *out;
    size_t out_len, out_off;
    int64_t deadline;           /* C_SLEEP: when to reply (monotonic ns) */
    struct conn *next_sleep;
};

static int g_ep = -1;
static struct conn *g_sleepers;

static void ep_ctl(int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = ptr;
    if (epoll_ctl(g_ep, op, fd, &ev) != 0)
        die("epoll_ctl");
}

static int g_epoll_live;   /* connections the epoll model holds */

static void conn_close(struct conn *c, int served)
{
    g_epoll_live--;
    if (c->registered)
        ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
    close(c->fd);
    free(c->out);
    free(c);
    if (served && g_crash)
        abort();
}

static void conn_write(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->registered) {
                ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
            } else {
                ep_ctl(EPOLL_CTL_ADD, c->fd, EPOLLOUT, c);
                c->registered = 1;
            }
            return;
        } else {
            conn_close(c, 0);
            return;
        }
    }
    conn_close(c, 1);
}

static void conn_request_done(struct conn *c)
{
    char *path = extract_path(c->in, c->len);
    long ms = slow_delay_ms(path);
    c->out = build_reply(path, &c->out_len);
    c->out_off = 0;
    free(path);

    if (ms > 0) {
        /* Park the connection outside the epoll set until the deadline. */
        ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
        c->registered = 0;
        c->state = C_SLEEP;
        c->deadline = now_ns() + (int64_t)ms * 1000000LL;
        c->next_sleep = g_sleepers;
        g_sleepers = c;
        return;
    }
    c->state = C_WRITE;
    conn_write(c);
}

static void conn_read(struct conn *c)
{
    for (;;) {
        if (c->len == sizeof c->in) {
            conn_request_done(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->len, sizeof c->in - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            if (request_complete(c->in, c->len)) {
                conn_request_done(c);
                return;
            }
        } else if (n == 0) {
            if (c->len == 0)
                conn_close(c, 0);
            else
                conn_request_done(c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;                     /* wait for more */
        } else {
            conn_close(c, 0);
            return;
        }
    }
}

static void run_epoll(int lfd)
{
    int listener_active = 1;
    int64_t listener_resume = 0;    /* after EMFILE & co. */

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    ep_ctl(EPOLL_CTL_ADD, lfd, EPOLLIN, NULL);   /* NULL ptr = listener */

    for (;;) {
        /* compute the timeout from the nearest deadline */
        int64_t next = -1;
        for (struct conn *s = g_sleepers; s; s = s->next_sleep)
            if (next < 0 || s->deadline < next)
                next = s->deadline;
        if (!listener_active && (next < 0 || listener_resume < next))
            next = listener_resume;
        int timeout = -1;
        if (next >= 0) {
            int64_t d = next - now_ns();
            if (d <= 0)
                timeout = 0;
            else {
                int64_t ms = (d + 999999) / 1000000;
                timeout = ms > INT_MAX ? INT_MAX : (int)ms;
            }
        }

        /* exitafter: stop accepting, finish what is in flight, then exit */
        if (g_exit_now) {
            if (listener_active)
                ep_ctl(EPOLL_CTL_DEL, lfd, 0, NULL);
            listener_active = 0;
            listener_resume = INT64_MAX;
            if (g_epoll_live == 0)
                exit_if_due();
        }

        struct epoll_event evs[64];
        int n = epoll_wait(g_ep, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }

        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                /* listener readable: accept a batch */
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                            break;
                        if (errno == EINTR || errno == ECONNABORTED ||
                            errno == EPROTO)
                            continue;
                        if (errno == EMFILE || errno == ENFILE ||
                            errno == ENOBUFS || errno == ENOMEM) {
                            fprintf(stderr, "testserver: accept: %s "
                                    "(pausing accepts)\n", strerror(errno));
                            ep_ctl(EPOLL_CTL_DEL, lfd, 0, NULL);
                            listener_active = 0;
                            listener_resume = now_ns() + 100000000LL;
                            break;
                        }
                        die("accept4");
                    }
                    struct conn *nc = xmalloc(sizeof *nc);
                    g_epoll_live++;
                    nc->fd = fd;
                    nc->state = C_READ;
                    nc->len = 0;
                    nc->out = NULL;
                    nc->out_len = nc->out_off = 0;
                    nc->deadline = 0;
                    nc->next_sleep = NULL;
                    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, nc);
                    nc->registered = 1;
                }
                continue;
            }
            if (c->state == C_READ)
                conn_read(c);
            else if (c->state == C_WRITE)
                conn_write(c);
        }

        /* wake up sleepers whose deadline has passed */
        int64_t t = now_ns();
        struct conn **pp = &g_sleepers;
        while (*pp) {
            struct conn *s = *pp;
            if (s->deadline <= t) {
                *pp = s->next_sleep;
                s->next_sleep = NULL;
                s->state = C_WRITE;
                conn_write(s);
            } else {
                pp = &s->next_sleep;
            }
        }

        if (!listener_active && listener_resume <= t) {
            ep_ctl(EPOLL_CTL_ADD, lfd, EPOLLIN, NULL);
            listener_active = 1;
        }
    }
}

/* ------------------------------------------------------------------ */
/* start-up                                                             */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: testserver --port P [--host ADDR] [--backlog N]\n"
        "                  [--model iterative|threads|prefork|epoll|accept4]\n"
        "                  [--workers N] [--tag STR] [--mode-file PATH]\n"
        "                  [--notify-after MS] [--start-delay MS] [--reset-on-stop]\n");
}

static enum mode read_mode_file(const char *path)
{
    if (!path)
        return MODE_SERVE;
    FILE *f = fopen(path, "r");
    if (!f)
        return MODE_SERVE;
    char word[64] = "";
    int rc = fscanf(f, "%63s", word);
    fclose(f);
    if (rc != 1 || word[0] == '\0' || strcmp(word, "serve") == 0)
        return MODE_SERVE;
    if (strcmp(word, "exit1") == 0)
        return MODE_EXIT1;
    if (strcmp(word, "nobind") == 0)
        return MODE_NOBIND;
    if (strcmp(word, "ignoreterm") == 0)
        return MODE_IGNORETERM;
    if (strcmp(word, "crash") == 0)
        return MODE_CRASH;
    if (strncmp(word, "exitafter=", 10) == 0 || strncmp(word, "killafter=", 10) == 0) {
        g_exit_after_ms = atol(word + 10);
        g_exit_by_kill = word[0] == 'k';
        return MODE_EXITAFTER;
    }
    fprintf(stderr, "testserver: unknown mode '%s' in %s, serving normally\n",
            word, path);
    return MODE_SERVE;
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "testserver: invalid value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static void bind_fail(const char *host, const char *port, const char *why)
{
    fprintf(stderr, "testserver: fatal: unable to bind %s:%s: %s\n",
            host, port, why);
    exit(1);
}

/* socket() + SO_REUSEADDR + bind() + listen(); exits on failure. */
static int make_listener(const char *host, const char *port, int backlog,
                         int nonblock, int *bound_port)
{
    char hbuf[256];
    const char *h = host;
    size_t hl = strlen(host);

    /* accept "[::1]" as well as "::1" */
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof hbuf) {
        memcpy(hbuf, host + 1, hl - 2);
        hbuf[hl - 2] = '\0';
        h = hbuf;
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = strchr(h, ':') ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(h, port, &hints, &res);
    if (gai != 0)
        bind_fail(host, port, gai == EAI_SYSTEM ? strerror(errno)
                                                : gai_strerror(gai));

    int fd = socket(res->ai_family,
                    SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        bind_fail(host, port, strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        bind_fail(host, port, strerror(errno));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
        bind_fail(host, port, strerror(errno));
    if (listen(fd, backlog) != 0)
        bind_fail(host, port, strerror(errno));
    freeaddrinfo(res);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound_port = atoi(port);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static void on_alarm(int sig)
{
    (void)sig;
    g_exit_now = 1;
}

static long g_notify_after_ms = -1;
static long g_start_delay_ms;

/* sd_notify's READY=1, by hand: a datagram to $NOTIFY_SOCKET ("@name" is abstract). */
static void *notify_thread(void *arg)
{
    (void)arg;
    sleep_ms(g_notify_after_ms);
    const char *where = getenv("NOTIFY_SOCKET");
    if (!where || !*where)
        return NULL;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(where);
    if (n >= sizeof a.sun_path)
        return NULL;
    memcpy(a.sun_path, where, n);
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    static const char msg[] = "READY=1\nSTATUS=serving";
    /* Said before it is sent: a line written after would race with the launcher's "ready" line. */
    fprintf(stderr, "testserver: sending READY=1 pid=%ld\n", (long)getpid());
    if (fd < 0 || sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&a,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
        fprintf(stderr, "testserver: READY=1 not sent: %s\n", strerror(errno));
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *port = NULL;
    const char *model_name = "iterative";
    const char *mode_file = NULL;
    long backlog = 128;
    long workers = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--reset-on-stop") == 0) {
            g_reset_on_stop = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "testserver: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        const char *eq = strchr(a, '=');
        if (eq) {
            size_t nl = (size_t)(eq - a);
            if (nl >= sizeof name)
                nl = sizeof name - 1;
            memcpy(name, a, nl);
            name[nl] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc) {
                fprintf(stderr, "testserver: option %s needs a value\n", a);
                usage(stderr);
                return 2;
            }
            val = argv[++i];
        }

        if (strcmp(name, "--host") == 0)
            host = val;
        else if (strcmp(name, "--port") == 0) {
            parse_long("--port", val, 0, 65535);
            port = val;
        } else if (strcmp(name, "--backlog") == 0)
            backlog = parse_long("--backlog", val, 1, INT_MAX);
        else if (strcmp(name, "--model") == 0)
            model_name = val;
        else if (strcmp(name, "--workers") == 0)
            workers = parse_long("--workers", val, 1, MAX_WORKERS);
        else if (strcmp(name, "--tag") == 0)
            g_tag = val;
        else if (strcmp(name, "--start-delay") == 0)
            g_start_delay_ms = parse_long("--start-delay", val, 0, 600000);
        else if (strcmp(name, "--notify-after") == 0)
            g_notify_after_ms = parse_long("--notify-after", val, 0, 600000);
        else if (strcmp(name, "--mode-file") == 0)
            mode_file = val;
        else {
            fprintf(stderr, "testserver: unknown option '%s'\n", name);
            usage(stderr);
            return 2;
        }
    }

    if (!port) {
        fprintf(stderr, "testserver: --port is required\n");
        usage(stderr);
        return 2;
    }

    enum model model;
    if (strcmp(model_name, "iterative") == 0)
        model = M_ITERATIVE;
    else if (strcmp(model_name, "threads") == 0)
        model = M_THREADS;
    else if (strcmp(model_name, "prefork") == 0)
        model = M_PREFORK;
    else if (strcmp(model_name, "epoll") == 0)
        model = M_EPOLL;
    else if (strcmp(model_name, "accept4") == 0)
        model = M_ACCEPT4;
    else {
        fprintf(stderr, "testserver: unknown model '%s'\n", model_name);
        usage(stderr);
        return 2;
    }
    if (workers < 0)
        workers = model == M_PREFORK ? 3 : 4;

    enum mode mode = read_mode_file(mode_file);
    switch (mode) {
    case MODE_EXIT1:
        fprintf(stderr, "testserver: mode exit1, exiting\n");
        exit(1);
    case MODE_NOBIND:
        set_handler(SIGTERM, on_term_exit);
        set_handler(SIGINT, on_term_exit);
        fprintf(stderr, "testserver: mode nobind, not listening pid=%ld\n",
                (long)getpid());
        for (;;)
            pause();
    case MODE_IGNORETERM:
        g_ignoreterm = 1;
        break;
    case MODE_CRASH:
        g_crash = 1;
        break;
    case MODE_EXITAFTER:
    case MODE_SERVE:
        break;
    }

    set_handler(SIGPIPE, SIG_IGN);
    if (model == M_PREFORK)
        prefork_prepare_signals();
    else
        install_exit_handlers();

    if (g_start_delay_ms > 0)
        sleep_ms(g_start_delay_ms);
    int bound_port;
    int lfd = make_listener(host, port, (int)backlog, model == M_EPOLL,
                            &bound_port);
    fprintf(stderr, "testserver: model=%s listening on %s:%d pid=%ld tag=%s\n",
            model_name, host, bound_port, (long)getpid(), g_tag);
    if (mode == MODE_EXITAFTER) {
        set_handler(SIGALRM, on_alarm);
        struct itimerval it;
        memset(&it, 0, sizeof it);
        it.it_value.tv_sec = g_exit_after_ms / 1000;
        it.it_value.tv_usec = (g_exit_after_ms % 1000) * 1000;
        if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
            it.it_value.tv_usec = 1;
        setitimer(ITIMER_REAL, &it, NULL);
    }
    if (g_notify_after_ms >= 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, notify_thread, NULL) == 0)
            pthread_detach(t);
    }

    switch (model) {
    case M_ITERATIVE:
        serve_blocking_loop(lfd, 0);
        break;
    case M_ACCEPT4:
        serve_blocking_loop(lfd, 1);
        break;
    case M_THREADS:
        run_threads(lfd, (int)workers);
        break;
    case M_PREFORK:
        run_prefork(lfd, (int)workers);
        break;
    case M_EPOLL:
        run_epoll(lfd);
        break;
    }
    return 0;
}
