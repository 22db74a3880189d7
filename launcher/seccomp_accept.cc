#include "seccomp_accept.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

namespace hr {
namespace {

int answer(int notif, uint64_t id, int error, uint32_t flags) {
    seccomp_notif_resp r{};
    r.id = id;
    r.error = error;
    r.flags = flags;
    return ioctl(notif, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

bool pending(int notif, uint64_t id) {
    uint64_t v = id;
    return ioctl(notif, SECCOMP_IOCTL_NOTIF_ID_VALID, &v) == 0;
}

// A socket the launcher stopped (shutdown at its own stop) no longer listens: accept's answer is the
// kernel's (EINVAL), for every generation.
bool listening(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || v;
}

bool nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

// One connection from the shared socket fd without ever waiting: O_NONBLOCK lives in the open file every
// generation shares, so it is set around the call when the programs made it blocking (their accepts are
// all trapped: none of them waits in the kernel meanwhile).
int accept_now(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    int e = errno;
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl);
    errno = e;
    return c;
}

} // namespace

SeccompAccepts::~SeccompAccepts() {
    for (auto &r : ready_) close(r.second);
}

void SeccompAccepts::on_accept(int gen, int notif, const seccomp_notif &req, const Listener &l, bool may_take) {
    Held h{gen, notif, req.id, pid_t(req.pid), l.id, req.data.args[1], req.data.args[2],
           req.data.nr == __NR_accept4 ? int(req.data.args[3]) : 0};
    if (!h.addr) h.addrlen = 0;
    // The kernel checks accept4's flags before anything else: a bit beyond these fails with EINVAL at once.
    if (!listening(l.fd) || (h.flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))) {
        answer(notif, req.id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
        return;
    }
    if (nonblocking(l.fd)) {
        if (!may_take) {
            answer(notif, req.id, -EAGAIN, 0);
            return;
        }
        for (size_t i = 0; i < ready_.size(); ++i) {
            if (ready_[i].first != l.id) continue;
            int c = ready_[i].second;
            ready_.erase(ready_.begin() + long(i));
            if (!deliver(h, c)) ready_.insert(ready_.begin(), {l.id, c});
            return;
        }
        answer(notif, req.id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE); // returns at once: no waiting in the kernel
        return;
    }
    held_.push_back(h); // blocking: answered with a connection by pump(), or EINTR by interrupt()
}

int SeccompAccepts::deliver(const Held &h, int conn) {
    if (!pending(h.notif, h.id)) return 0;
    int want = h.flags & SOCK_NONBLOCK ? O_NONBLOCK : 0;
    int fl = fcntl(conn, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) != want) fcntl(conn, F_SETFL, (fl & ~O_NONBLOCK) | want);
    if (h.addr) {
        // As accept() does: the peer's address, cut to the caller's length, and its full length.
        int room = 0;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        iovec local{&room, sizeof room}, remote{reinterpret_cast<void *>(uintptr_t(h.addrlen)), sizeof room};
        if (getpeername(conn, reinterpret_cast<sockaddr *>(&ss), &len) < 0) len = 0;
        if (process_vm_readv(h.tid, &local, 1, &remote, 1, 0) != ssize_t(sizeof room) || room < 0) {
            if (pending(h.notif, h.id)) answer(h.notif, h.id, room < 0 ? -EINVAL : -EFAULT, 0);
            return 0; // the call is answered; the connection goes to the next one
        }
        size_t n = std::min(size_t(room), size_t(len));
        iovec out_local[2] = {{&ss, n}, {&len, sizeof len}};
        iovec out_remote[2] = {{reinterpret_cast<void *>(uintptr_t(h.addr)), n},
                               {reinterpret_cast<void *>(uintptr_t(h.addrlen)), sizeof len}};
        if (process_vm_writev(h.tid, &out_local[n ? 0 : 1], n ? 2 : 1, &out_remote[n ? 0 : 1], n ? 2 : 1, 0) !=
            ssize_t(n + sizeof len)) {
            if (pending(h.notif, h.id)) answer(h.notif, h.id, -EFAULT, 0);
            return 0;
        }
    }
    seccomp_notif_addfd add{};
    add.id = h.id;
    add.flags = SECCOMP_ADDFD_FLAG_SEND;
    add.srcfd = uint32_t(conn);
    add.newfd_flags = h.flags & SOCK_CLOEXEC ? O_CLOEXEC : 0;
    if (ioctl(h.notif, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0) {
        // ENOENT: interrupted or gone; anything else (EMFILE...) is the caller's answer, as accept's would be.
        if (errno != ENOENT && pending(h.notif, h.id)) answer(h.notif, h.id, -errno, 0);
        return 0;
    }
    close(conn); // the caller has it now
    return 1;
}

void SeccompAccepts::pump(const Registry &reg, const MayTake &may_take) {
    for (size_t i = 0; i < held_.size();) {
        Held h = held_[i];
        const Listener *l = reg.find(h.listener);
        if (!l || !pending(h.notif, h.id) || !listening(l->fd)) {
            // Gone from the registry, or stopped: the call runs, and the kernel answers it.
            if (pending(h.notif, h.id)) answer(h.notif, h.id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
            held_.erase(held_.begin() + long(i));
            continue;
        }
        if (!may_take(h.gen)) {
            ++i;
            continue;
        }
        int conn = -1;
        for (size_t k = 0; k < ready_.size(); ++k)
            if (ready_[k].first == h.listener) {
                conn = ready_[k].second;
                ready_.erase(ready_.begin() + long(k));
                break;
            }
        if (conn < 0) conn = accept_now(l->fd);
        if (conn < 0) {
            if (errno == ECONNABORTED || errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                answer(h.notif, h.id, -errno, 0);
                held_.erase(held_.begin() + long(i));
                continue;
            }
            ++i; // nothing waiting: POLLIN on the socket brings us back
            continue;
        }
        held_.erase(held_.begin() + long(i));
        if (!deliver(h, conn)) ready_.insert(ready_.begin(), {h.listener, conn});
        // i stays: the next held call is at i now
    }
}

void SeccompAccepts::forget(int gen) {
    held_.erase(std::remove_if(held_.begin(), held_.end(), [gen](const Held &h) { return h.gen == gen; }),
                held_.end());
}

void SeccompAccepts::add_pollfds(std::vector<pollfd> *pfds, const Registry &reg, const MayTake &may_take) const {
    std::vector<uint64_t> seen;
    for (const Held &h : held_) {
        if (std::find(seen.begin(), seen.end(), h.listener) != seen.end() || !may_take(h.gen)) continue;
        seen.push_back(h.listener);
        if (const Listener *l = reg.find(h.listener)) pfds->push_back({l->fd, POLLIN, 0});
    }
}

} // namespace hr
