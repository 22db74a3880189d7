/*
 * closeall.c - an iterative HTTP/1.0 server that, once it listens, closes every other descriptor it has
 * with the raw close system call (an inline syscall instruction: no libc, so no shim can see or stop it),
 * as daemons' "close everything" loops written in assembly or in other runtimes do. The shim's own
 * descriptors go with them, so the launcher's end of the generation's control socket hangs up.
 *
 *   closeall --port P
 *
 * Replies: "pid=<pid>". SIGTERM/SIGINT: _exit(0).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static long raw_close(long fd)
{
    long ret;
#if defined(__x86_64__)
    __asm__ volatile("syscall" : "=a"(ret) : "a"(3L), "D"(fd) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = 57;
    register long x0 __asm__("x0") = fd;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8) : "memory");
    ret = x0;
#else
#error "raw close: add this architecture"
#endif
    return ret;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--port") != 0) {
        fprintf(stderr, "usage: closeall --port P\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 128) != 0) {
        perror("closeall: fatal: unable to listen");
        return 1;
    }
    int fds[4096], n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.')
            fds[n++] = atoi(e->d_name);
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++)
        if (fds[i] > 2 && fds[i] != lfd)
            raw_close(fds[i]);
    fprintf(stderr, "closeall: pid=%d listening, closed %d descriptors\n", (int)getpid(), n);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        ssize_t r = recv(c, buf, sizeof buf, 0);
        (void)r;
        char body[64], reply[256];
        int bl = snprintf(body, sizeof body, "pid=%d\n", (int)getpid());
        int rl = snprintf(reply, sizeof reply,
                          "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", bl, body);
        ssize_t w = send(c, reply, (size_t)rl, MSG_NOSIGNAL);
        (void)w;
        close(c);
    }
}
