#include "sentinel.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace hr {
namespace {

struct Record {
    char op; // '+' watch, '-' forget, 'q' the launcher exits cleanly
    int32_t pgid;
} __attribute__((packed));

int64_t mono_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The sentinel's life, in the forked child (the launcher is single-threaded: anything may be called).
[[noreturn]] void run_sentinel(int rfd, pid_t launcher, int stop_signal, double kill_timeout) {
    prctl(PR_SET_NAME, "hr-sentinel");
    setsid(); // not in the launcher's process group: a kill of that group must not take it along
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(s, SIG_IGN);
    // Nothing of the launcher's may stay open here, least of all its listening sockets.
    if (rfd != 3) {
        dup2(rfd, 3);
        close(rfd);
    }
    close_range(4, ~0U, 0);
    std::set<pid_t> groups;
    for (;;) {
        Record r;
        ssize_t n = read(3, &r, sizeof r);
        if (n < 0 && errno == EINTR) continue;
        if (n == sizeof r) {
            if (r.op == 'q') _exit(0);
            if (r.op == '+' && r.pgid > 1) groups.insert(r.pgid);
            if (r.op == '-') groups.erase(r.pgid);
            continue;
        }
        break; // EOF (or an error): the launcher is gone without saying goodbye
    }
    if (groups.empty()) _exit(0);
    fprintf(stderr, "hotrestart-sentinel[%d]: the launcher (pid %d) died: sending %s to its %zu process group%s\n",
            int(getpid()), int(launcher), strsignal(stop_signal), groups.size(), groups.size() == 1 ? "" : "s");
    for (pid_t g : groups) {
        kill(-g, stop_signal);
        kill(-g, SIGCONT); // a stopped group would never act on it
    }
    const int64_t deadline = mono_ms() + int64_t(kill_timeout * 1000);
    while (!groups.empty() && mono_ms() < deadline) {
        for (auto it = groups.begin(); it != groups.end();)
            it = (kill(-*it, 0) < 0 && errno == ESRCH) ? groups.erase(it) : std::next(it);
        poll(nullptr, 0, 50);
    }
    for (pid_t g : groups) {
        fprintf(stderr, "hotrestart-sentinel[%d]: process group %d still there after %g s: sending SIGKILL\n",
                int(getpid()), int(g), kill_timeout);
        kill(-g, SIGKILL);
    }
    _exit(0);
}

} // namespace

Sentinel::~Sentinel() { finish(); }

bool Sentinel::start(int stop_signal, double kill_timeout) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return false;
    const pid_t launcher = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        close(p[1]);
        run_sentinel(p[0], launcher, stop_signal, kill_timeout);
    }
    close(p[0]);
    wfd_ = p[1];
    pid_ = pid;
    return true;
}

void Sentinel::send(char op, pid_t pgid) {
    if (wfd_ < 0) return;
    Record r{op, int32_t(pgid)};
    ssize_t n;
    do {
        n = write(wfd_, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    if (n != ssize_t(sizeof r)) debugf("sentinel: unable to write: %s", n < 0 ? strerror(errno) : "short write");
}

void Sentinel::watch(pid_t pgid) { send('+', pgid); }
void Sentinel::forget(pid_t pgid) { send('-', pgid); }

void Sentinel::lost() {
    if (wfd_ >= 0) close(wfd_);
    wfd_ = -1;
    pid_ = -1;
}

void Sentinel::finish() {
    if (wfd_ < 0) return;
    send('q', 0);
    close(wfd_);
    wfd_ = -1;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

} // namespace hr
