#include "rendezvous.h"

#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace hr {

int rendezvous_open(std::string *err) {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = std::string("unable to create the rendezvous socket: ") + strerror(errno);
        return -1;
    }
    sockaddr_un a;
    socklen_t len = rendezvous_address(int(getpid()), &a);
    if (bind(fd, reinterpret_cast<sockaddr *>(&a), len) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        std::string name(a.sun_path + 1, len - offsetof(sockaddr_un, sun_path) - 1);
        if (e == EADDRINUSE)
            *err = "the rendezvous name @" + name + " is taken by another process (it must be this launcher's): "
                   "find it with `ss -xlp | grep " + name + "` and stop it, or start the launcher again";
        else
            *err = "unable to listen on the rendezvous @" + name + ": " + strerror(e);
        return -1;
    }
    return fd;
}

int rendezvous_accept(int lfd, pid_t *peer) {
    *peer = 0;
    int c;
    do {
        c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (c < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (c < 0) return -1;
    ucred cr{};
    socklen_t l = sizeof cr;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0) *peer = cr.pid;
    return c;
}

bool rendezvous_answer(int conn, const Config &cfg, int ctl, int wake, int shm) {
    char text[kExecStateLen];
    int n = config_encode(cfg, text, sizeof text);
    if (n <= 0) {
        errno = EMSGSIZE;
        return false;
    }
    iovec iov{text, size_t(n)};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    const int fds[3] = {ctl, wake, shm};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)];
    memset(cbuf, 0, sizeof cbuf);
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    ssize_t w;
    do {
        w = sendmsg(conn, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (w < 0 && errno == EINTR);
    if (w == n) return true;
    if (w >= 0) errno = EMSGSIZE;
    return false;
}

void RefusalLog::refused(pid_t peer, const char *why) {
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
    if (suppressed_) {
        logf("warning: %d more refusals at the rendezvous not logged", suppressed_);
        suppressed_ = 0;
    }
    ++shown_;
    logf("warning: refused the private descriptors to pid %d at the rendezvous: %s%s", int(peer), why,
         shown_ == kShown ? " (more refusals in the next minute are only counted)" : "");
}

} // namespace hr
