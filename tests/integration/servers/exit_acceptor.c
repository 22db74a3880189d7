/*
 * exit_acceptor.c - a thread that calls accept() while another thread of the process is exiting: the
 * window in which a stop signal's handler (_exit) or exit() has begun but the process still runs. A
 * connection taken then is reset when the exit completes.
 *
 *   exit_acceptor --port P [--host 127.0.0.1]
 *
 * It binds and listens (under the launcher: takes over the shared socket), and is ready by the launcher's
 * listen rule once a thread has looked at the listener (a poll() with no wait). It never accepts until:
 *   SIGUSR1: the main thread calls exit(0). A buffered line, "exit_acceptor: exiting pid=<pid>", is
 *            written to stderr by exit()'s final flush of stdio, which comes after every destructor (the
 *            shim's among them), and then exit() blocks for good: the next stream it flushes is a full
 *            pipe nobody reads. The process stays alive, inside exit(), until it is killed.
 *   SIGUSR2: the acceptor thread calls accept() once on the listener (set O_NONBLOCK, so that the call
 *            says at once what it did), after a ppoll() by raw syscall that waits (5 s at most) until a
 *            connection is queued, and prints one line:
 *              exit_acceptor: accept: took a connection (fd <n>)
 *              exit_acceptor: accept: <strerror>
 * Both lines are written with one write(2) each.
 *
 * gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -pthread -o build/exit_acceptor exit_acceptor.c
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int g_lfd = -1;

static void say(const char *line)
{
    ssize_t w = write(2, line, strlen(line));
    (void)w;
}

static void fatal(const char *what)
{
    char buf[256];
    snprintf(buf, sizeof buf, "exit_acceptor: fatal: %s: %s\n", what, strerror(errno));
    say(buf);
    _exit(2);
}

/* Waits for SIGUSR2, then accepts once (see the header). */
static void *acceptor(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
        fatal("sigwait");
    /* The kernel's answer, not the shim's: is a connection queued on the shared socket? */
    struct pollfd p = { g_lfd, POLLIN, 0 };
    struct timespec ts = { 5, 0 };
    long n = syscall(SYS_ppoll, &p, 1, &ts, NULL, (size_t)8);
    if (n != 1)
        say("exit_acceptor: no connection queued after 5 s\n");
    int c = accept(g_lfd, NULL, NULL);
    char buf[128];
    if (c >= 0)
        snprintf(buf, sizeof buf, "exit_acceptor: accept: took a connection (fd %d)\n", c);
    else
        snprintf(buf, sizeof buf, "exit_acceptor: accept: %s\n", strerror(errno));
    say(buf);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
    }
    if (port < 0) {
        say("usage: exit_acceptor --port P [--host 127.0.0.1]\n");
        return 2;
    }
    /* Signals are taken by sigwait() only (blocked before any thread starts, so every thread has them
     * blocked). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    /* The stream exit() blocks on: a full pipe, with one byte more in its buffer. Opened before the
     * marker stream: exit() flushes the most recently opened stream first. */
    int pfd[2];
    if (pipe2(pfd, O_NONBLOCK) != 0)
        fatal("pipe2");
    static char junk[4096];
    while (write(pfd[1], junk, sizeof junk) > 0) {
    }
    if (errno != EAGAIN)
        fatal("filling the pipe");
    if (fcntl(pfd[1], F_SETFL, 0) != 0)
        fatal("fcntl");
    FILE *stuck = fdopen(pfd[1], "w");
    if (!stuck || setvbuf(stuck, NULL, _IOFBF, 4096) != 0)
        fatal("fdopen");
    fputc('x', stuck);
    /* The marker: written to stderr when exit() flushes its streams, after the destructors. */
    int efd = dup(2);
    FILE *marker = efd < 0 ? NULL : fdopen(efd, "w");
    if (!marker || setvbuf(marker, NULL, _IOFBF, 4096) != 0)
        fatal("fdopen");
    fprintf(marker, "exit_acceptor: exiting pid=%ld\n", (long)getpid());

    g_lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (g_lfd < 0)
        fatal("socket");
    int one = 1;
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        fatal("inet_pton");
    if (bind(g_lfd, (struct sockaddr *)&a, sizeof a) != 0)
        fatal("bind");
    if (listen(g_lfd, 16) != 0)
        fatal("listen");
    if (fcntl(g_lfd, F_SETFL, O_NONBLOCK) != 0)
        fatal("fcntl");
    /* Looks at the listener once: the launcher's listen rule counts it as ready. */
    struct pollfd p = { g_lfd, POLLIN, 0 };
    (void)poll(&p, 1, 0);

    pthread_t t;
    if (pthread_create(&t, NULL, acceptor, NULL) != 0)
        fatal("pthread_create");
    sigset_t one_sig;
    sigemptyset(&one_sig);
    sigaddset(&one_sig, SIGUSR1);
    int sig = 0;
    if (sigwait(&one_sig, &sig) != 0)
        fatal("sigwait");
    exit(0);
}
