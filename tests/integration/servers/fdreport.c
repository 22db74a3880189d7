/* fdreport.c - a server that runs a child which reports what it inherited; built with `gcc -static`
 * (build/fdreport-static), so the shim never runs in it.
 *
 *   fdreport-static
 *
 * Forks a child that writes to stderr, one line each, every descriptor it holds with what it refers to
 * ("fdreport: fd N TARGET", from /proc/self/fd), every variable of its environment ("fdreport: env
 * NAME=VALUE"), then "fdreport: done pid=PID", and exits. The parent waits for it, then waits for SIGTERM
 * (exit 0), at most 60 s. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        fprintf(stderr, "fdreport: cannot list /proc/self/fd\n");
        exit(1);
    }
    int skip = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == skip) continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = '\0';
        fprintf(stderr, "fdreport: fd %d %s\n", fd, target);
    }
    closedir(d);
    for (char **v = environ; *v; ++v) fprintf(stderr, "fdreport: env %s\n", *v);
    fprintf(stderr, "fdreport: done pid=%d\n", (int)getpid());
}

int main(void) {
    setvbuf(stderr, NULL, _IOLBF, 0);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        report();
        fflush(stderr);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    alarm(60);
    int sig;
    sigwait(&set, &sig);
    return 0;
}
