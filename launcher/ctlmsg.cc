#include "ctlmsg.h"

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace hr {

bool ctl_pass_credentials(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0;
}

void CtlRecord::close_fds() {
    for (int i = 0; i < nfds; ++i) close(fds[i]);
    nfds = 0;
}

ssize_t recv_credentialed(int fd, void *buf, size_t len, pid_t *sender, int *fds, int max_fds, int *nfds,
                          bool *truncated) {
    *sender = 0;
    *nfds = 0;
    *truncated = false;
    iovec iov{buf, len};
    // Room for both kinds of ancillary data: the credentials (every datagram, SO_PASSCRED) and descriptors
    // (MSG_REGISTER; sd_notify's FDSTORE). Descriptors beyond the room are closed by the kernel (MSG_CTRUNC).
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * kMaxRecordFds)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n;
    do {
        // Close-on-exec from the start: a generation spawned meanwhile must not inherit what a process sent.
        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
            ucred cr;
            memcpy(&cr, CMSG_DATA(c), sizeof cr);
            *sender = cr.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; ++i) {
                int rfd;
                memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof rfd);
                if (*nfds < max_fds) fds[(*nfds)++] = rfd;
                else close(rfd);
            }
        }
    }
    *truncated = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    return n;
}

CtlRead ctl_read(int fd, CtlRecord *rec) {
    rec->len = 0;
    ssize_t n = recv_credentialed(fd, &rec->m, sizeof rec->m, &rec->sender, rec->fds, kMaxRecordFds, &rec->nfds,
                                  &rec->truncated);
    if (n < 0) return CTL_AGAIN;
    if (n == 0) {
        rec->close_fds();
        return CTL_EMPTY;
    }
    rec->len = size_t(n);
    return CTL_RECORD;
}

Sender classify_sender(pid_t sender, pid_t main_pid) {
    if (sender <= 0 || main_pid <= 0) return SENDER_OUTSIDE;
    if (sender == main_pid) return SENDER_MAIN;
    // The generation's process group is its main pid (spawn.cc); a zombie still has its group.
    pid_t pg = getpgid(sender);
    if (pg < 0) return errno == ESRCH ? SENDER_GONE : SENDER_OUTSIDE;
    return pg == main_pid ? SENDER_MEMBER : SENDER_OUTSIDE;
}

const char *ctl_check(const CtlRecord &r, pid_t main_pid) {
    if (r.sender <= 0) return "no sender credentials";
    switch (classify_sender(r.sender, main_pid)) {
    case SENDER_OUTSIDE: return "the sender is not a process of this generation";
    case SENDER_GONE:
        if (r.len == sizeof(Msg) && r.m.type == MSG_IDLE) break;
        return "the sender exited before it could be checked";
    case SENDER_MEMBER:
        if (r.len >= offsetof(Msg, pid) && r.m.type == MSG_HELLO) return "hello from a process other than the main one";
        break;
    case SENDER_MAIN: break;
    }
    if (r.truncated) return "truncated message";
    return msg_check(&r.m, r.len, r.nfds);
}

void WarnLimit::warn(int gen, const char *fmt, ...) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const int64_t now = int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
    if (window_start_ < 0 || now - window_start_ >= kWindowMs) {
        window_start_ = now;
        shown_ = 0;
    }
    if (shown_ >= kShown) {
        ++suppressed_;
        return;
    }
    flush(gen);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ++shown_;
    if (shown_ < kShown) logf("warning: gen %d: %s", gen, text);
    else logf("warning: gen %d: %s (more warnings of gen %d in the next %lld s are only counted)", gen, text, gen,
              (long long)((window_start_ + kWindowMs - now + 999) / 1000));
}

void WarnLimit::flush(int gen) {
    if (suppressed_ == 0) return;
    logf("warning: gen %d: %d more warning%s not logged", gen, suppressed_, suppressed_ == 1 ? "" : "s");
    suppressed_ = 0;
}

} // namespace hr
