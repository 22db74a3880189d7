// Receiving on a shared datagram socket (memcached's UDP port, a DNS-style server). There are no
// connections to count: a draining generation simply stops receiving, so every datagram sent after the
// new generation is ready goes to it, and datagrams queued before are taken by whichever is receiving.
// The shared socket is O_NONBLOCK (PITFALLS 2); each process gets the blocking behaviour it asked for.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <sys/socket.h>

namespace hr {
namespace {

inline bool is_dgram(int fd) { return g.table.kind(fd) == FD_DGRAM && g.active.load(std::memory_order_acquire); }

// attempt(flags) performs one non-blocking receive. Returns what the program's call returns.
template <class Attempt>
ssize_t receive(int fd, int flags, Attempt attempt) {
    const bool nonblocking = (g.table.get(fd) & kWantNonblock) || (flags & MSG_DONTWAIT);
    const int saved_errno = errno;
    note_accepting();
    for (;;) {
        // An exiting process receives nothing more either: a datagram taken now would be lost with it.
        const bool draining = g.acct.draining() || g.acct.leaving();
        if (!draining) {
            ssize_t r = attempt(flags | MSG_DONTWAIT);
            if (r >= 0) errno = saved_errno;
            if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || nonblocking) return r;
        } else if (nonblocking) {
            errno = EAGAIN;
            return -1;
        }
        if (int e = wait_outcome(wait_readable(fd, draining), fd, false)) {
            errno = e;
            return -1;
        }
    }
}

} // namespace
} // namespace hr

HR_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags) {
    if (!hr::is_dgram(fd)) return hr::real_recv(fd, buf, n, flags);
    return hr::receive(fd, flags, [&](int f) { return hr::real_recv(fd, buf, n, f); });
}
HR_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags) {
    if (n > buflen) __builtin_trap();
    return recv(fd, buf, n, flags);
}
HR_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len) {
    if (!hr::is_dgram(fd)) return hr::real_recvfrom(fd, buf, n, flags, addr, len);
    return hr::receive(fd, flags, [&](int f) { return hr::real_recvfrom(fd, buf, n, f, addr, len); });
}
HR_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
                                 socklen_t *len) {
    if (n > buflen) __builtin_trap();
    return recvfrom(fd, buf, n, flags, addr, len);
}
HR_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    if (!hr::is_dgram(fd)) return hr::real_recvmsg(fd, msg, flags);
    return hr::receive(fd, flags, [&](int f) { return hr::real_recvmsg(fd, msg, f); });
}
HR_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned n, int flags, struct timespec *timeout) {
    if (!hr::is_dgram(fd)) return hr::real_recvmmsg(fd, vec, n, flags, timeout);
    // The first datagram is waited for as recv() would; the rest are taken only if already queued.
    return int(hr::receive(fd, flags, [&](int f) { return ssize_t(hr::real_recvmmsg(fd, vec, n, f, nullptr)); }));
}
HR_EXPORT ssize_t read(int fd, void *buf, size_t n) {
    if (!hr::is_dgram(fd)) return hr::real_read(fd, buf, n);
    return hr::receive(fd, 0, [&](int f) { return hr::real_recv(fd, buf, n, f); });
}
HR_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen) {
    if (n > buflen) __builtin_trap();
    return read(fd, buf, n);
}
