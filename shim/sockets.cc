// bind() and listen(): where a new generation takes over the old generation's listening sockets, and
// where a first generation's listeners become known to the launcher.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>

namespace hr {
namespace {

// Marks a socket the launcher shares as really non-blocking, remembering what the program believes in the
// table instead (PITFALLS 2: O_NONBLOCK lives on the shared open file description). Blocking accept() is
// then emulated per process, which also lets a drain wake it.
void take_listener(int fd, int prog_flags) {
    uint8_t want = (prog_flags & O_NONBLOCK) ? kWantNonblock : 0;
    int shared_flags = real_fcntl(fd, F_GETFL, nullptr);
    if (shared_flags >= 0 && !(shared_flags & O_NONBLOCK))
        real_fcntl(fd, F_SETFL, reinterpret_cast<void *>(long(shared_flags | O_NONBLOCK)));
    g.table.set(fd, uint8_t(FD_LISTENER | want));
}

// Finds and claims the first unclaimed inherited socket with this identity (SO_REUSEPORT groups hold
// several: they are handed out in registry order). Returns its index or -1.
int claim_inherited(const SockKey &key) {
    for (int i = 0; i < g.ninherited; ++i) {
        Inherited &in = g.inherited[i];
        if (in.claimed.load(std::memory_order_acquire) || !key_match(in.key, key)) continue;
        int expected = 0;
        if (in.claimed.compare_exchange_strong(expected, 1)) return i;
    }
    return -1;
}

// Puts inherited socket i onto the program's descriptor fd in place of the socket it made, keeping the
// program's close-on-exec flag and its idea of O_NONBLOCK. Returns false if the program's fd stays as it was.
bool adopt(int i, int fd) {
    Inherited &in = g.inherited[i];
    int fdflags = real_fcntl(fd, F_GETFD, nullptr);
    int flflags = real_fcntl(fd, F_GETFL, nullptr);
    int src = in.fd.load();
    if (fdflags < 0 || flflags < 0 || src < 0) return false;
    // dup3 atomically replaces the program's fresh socket with the shared one: there is no moment where
    // fd is closed and another thread's open() could take the number.
    if (real_dup3(src, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) return false;
    if (in.key.type == SOCK_DGRAM) g.table.set(fd, FD_DGRAM);
    else take_listener(fd, flflags);
    in.prog_fd.store(fd);
    in.fd.store(-1);
    g.table.set(src, FD_NONE);
    real_close(src);
    return true;
}

int policy_bind(int fd, const sockaddr *addr, socklen_t len) {
    if (!g.active.load(std::memory_order_acquire) || !g.table.in_range(fd) || fd_state(fd) != FD_NONE)
        return real_bind(fd, addr, len);
    ErrnoGuard keep;
    int type = 0, domain = 0, v6only = 0;
    socklen_t l = sizeof type;
    SockKey key;
    bool candidate = addr != nullptr && real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0;
    l = sizeof domain;
    candidate = candidate && real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) == 0 &&
                len >= sizeof(sa_family_t) && domain == addr->sa_family;
    if (candidate && domain == AF_INET6) {
        l = sizeof v6only;
        candidate = real_getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) == 0;
    }
    candidate = candidate && key_from_sockaddr(addr, len, type, v6only, &key);
    if (candidate && type != SOCK_DGRAM) {
        int i = claim_inherited(key);
        if (i >= 0) {
            if (adopt(i, fd)) {
                HR_DEBUG("bind(%d): took over inherited socket %d", fd, i);
                return 0;
            }
            g.inherited[i].claimed.store(0);
        }
    }
    int r = real_bind(fd, addr, len);
    if (r < 0) {
        keep.saved = errno;
        // Only the launcher can put this in context ("port in use" while starting generation N).
        if (candidate) send_msg(MSG_BINDFAIL, 0, errno, addr, len, -1);
    }
    return r;
}

int policy_listen(int fd, int backlog) {
    if (!g.active.load(std::memory_order_acquire) || !g.table.in_range(fd)) return real_listen(fd, backlog);
    uint8_t kind = g.table.kind(fd);
    if (kind == FD_LISTENER) {
        // Already listening and shared: a second listen() would change the backlog under every holder
        // (PITFALLS 3), so it is a no-op. The first listen() on an adopted socket reports the claim.
        for (int i = 0; i < g.ninherited; ++i) {
            Inherited &in = g.inherited[i];
            if (in.prog_fd.load() != fd) continue;
            int expected = 0;
            if (in.reported.compare_exchange_strong(expected, 1)) send_msg(MSG_CLAIMED, i, 0, nullptr, 0, -1);
        }
        return 0;
    }
    if (kind != FD_NONE) return real_listen(fd, backlog);
    int r = real_listen(fd, backlog);
    if (r < 0) return r;
    ErrnoGuard keep;
    // A socket this generation bound itself: from now on it is shared with the launcher.
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    SockKey key;
    int type = 0;
    socklen_t tl = sizeof type;
    if (real_getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl) < 0 ||
        real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        !key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, type, 0, &key))
        return r; // unnamed: nothing a later generation could bind to again
    int flflags = real_fcntl(fd, F_GETFL, nullptr);
    if (flflags < 0) return r;
    take_listener(fd, flflags);
    send_msg(MSG_REGISTER, 0, 0, nullptr, 0, fd);
    HR_DEBUG("listen(%d): registered with the launcher", fd);
    return r;
}

} // namespace
} // namespace hr

HR_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) { return hr::policy_bind(fd, addr, len); }
HR_EXPORT int listen(int fd, int backlog) { return hr::policy_listen(fd, backlog); }
