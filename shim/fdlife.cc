// Descriptor lifetime: close, dup*, fcntl, ioctl(FIONBIO), close_range, closefrom. These keep the fd table
// true (a dup of a connection is one more live reference; dup2 over a tracked fd closes it), hide the
// shim's private descriptors from programs that close everything they do not know (PITFALLS 7), and keep
// each process's view of O_NONBLOCK on shared listeners (PITFALLS 2).
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

namespace hr {
namespace {

// The program's descriptor fd is gone (closed, or replaced by dup2). prev is the state it had.
void forget(uint8_t prev) {
    if ((prev & kKindMask) == FD_CONN && g.active.load(std::memory_order_acquire) && g.acct.release()) send_idle();
}

// A new descriptor nfd now refers to the same file as ofd (dup family): it inherits ofd's state.
void duplicated(int ofd, int nfd) {
    uint8_t st = fd_state(ofd);
    uint8_t kind = st & kKindMask;
    uint8_t nst = (kind == FD_CONN || kind == FD_LISTENER || kind == FD_DGRAM) ? st : uint8_t(FD_NONE);
    if (kind == FD_CONN && g.active.load(std::memory_order_acquire)) g.acct.add_dup();
    forget(g.table.exchange(nfd, nst));
}

} // namespace

void policy_duplicated(int ofd, int nfd) {
    ErrnoGuard keep;
    if (owner()) duplicated(ofd, nfd);
}

int policy_close(int fd) {
    uint8_t st = fd_state(fd);
    // A vfork()ed child shares our memory but its descriptors are its own: closing its copy of a shared
    // or private socket must not change our state. For a connection (the hot path) the getpid() is
    // skipped: such a close only releases the count early, which the launcher's kernel check covers.
    if ((st & kKindMask) != FD_CONN && !owner()) return real_close(fd);
    if ((st & kKindMask) == FD_PRIVATE) return 0; // the program does not know it: pretend it is closed
    const bool shared = (st & kKindMask) == FD_LISTENER || (st & kKindMask) == FD_DGRAM;
    sockaddr_storage name;
    socklen_t namelen = 0;
    if (shared) {
        ErrnoGuard keep;
        epoll_forget_fd(fd);
        // A listener that this process registered, closed while the generation serves, may be closed for
        // good (a probe socket): the launcher, told its address, asks the kernel whether a process of the
        // generation still holds it. Forked children closing their copies (before an exec) say nothing,
        // nor does a process that is exiting (its sockets all close with it).
        namelen = sizeof name;
        if ((st & kKindMask) != FD_LISTENER || !g.active.load(std::memory_order_acquire) || g.acct.draining() ||
            g.acct.leaving() ||
            real_getsockname(fd, reinterpret_cast<sockaddr *>(&name), &namelen) < 0 ||
            !registered_here(reinterpret_cast<sockaddr *>(&name), namelen))
            namelen = 0;
    }
    uint8_t prev = g.table.exchange(fd, FD_NONE);
    int r = real_close(fd);
    // Threads of this process waiting on it in accept()/recv() learn that it is gone (EBADF).
    if (shared) wake_local();
    ErrnoGuard keep;
    if (namelen) send_msg(MSG_CLOSED, 0, 0, reinterpret_cast<sockaddr *>(&name), namelen, -1);
    forget(prev);
    return r;
}

namespace {

int policy_dup2(int ofd, int nfd, int flags, bool three) {
    if ((fd_state(nfd) != FD_NONE || fd_state(ofd) != FD_NONE) && !owner())
        return three ? real_dup3(ofd, nfd, flags) : real_dup2(ofd, nfd);
    // Only prepare nfd for replacement if the call can succeed (a bad source fails with EBADF and must
    // leave nfd, and its epoll registrations, as they were).
    if (fd_state(nfd) != FD_NONE && ofd != nfd && real_fcntl(ofd, F_GETFD, nullptr) >= 0) {
        ErrnoGuard keep;
        move_private_away(nfd);
        uint8_t k = g.table.kind(nfd);
        if (k == FD_LISTENER || k == FD_DGRAM) epoll_forget_fd(nfd);
    }
    int r = three ? real_dup3(ofd, nfd, flags) : real_dup2(ofd, nfd);
    if (r >= 0 && ofd != nfd) {
        ErrnoGuard keep;
        duplicated(ofd, r);
    }
    return r;
}

// Records whether the program wants fd non-blocking; the shared socket itself stays O_NONBLOCK.
void set_wish(int fd, bool nonblock) {
    uint8_t st = g.table.get(fd);
    g.table.set(fd, uint8_t(nonblock ? (st | kWantNonblock) : (st & ~kWantNonblock)));
}

// What F_GETFL should say for a shared listener: the real flags with the program's O_NONBLOCK.
int visible_flags(int real, uint8_t st) {
    return (st & kWantNonblock) ? (real | O_NONBLOCK) : (real & ~O_NONBLOCK);
}

int policy_fcntl(int fd, int cmd, void *arg) {
    if (cmd == F_SETLK || cmd == F_OFD_SETLK) return policy_setlk(fd, cmd, arg); // guards.cc
    uint8_t st = fd_state(fd);
    if (st == FD_NONE || !owner()) return real_fcntl(fd, cmd, arg);
    uint8_t kind = st & kKindMask;
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = real_fcntl(fd, cmd, arg);
        if (r >= 0) {
            ErrnoGuard keep;
            duplicated(fd, r);
        }
        return r;
    }
    case F_GETFL:
        if (kind == FD_LISTENER || kind == FD_DGRAM) {
            int r = real_fcntl(fd, cmd, arg);
            return r < 0 ? r : visible_flags(r, st);
        }
        break;
    case F_SETFL:
        if (kind == FD_LISTENER || kind == FD_DGRAM) {
            long want = reinterpret_cast<long>(arg);
            int r = real_fcntl(fd, cmd, reinterpret_cast<void *>(want | O_NONBLOCK));
            if (r == 0) set_wish(fd, want & O_NONBLOCK);
            return r;
        }
        break;
    default: break;
    }
    return real_fcntl(fd, cmd, arg);
}

int policy_ioctl(int fd, unsigned long req, void *arg) {
    uint8_t st = fd_state(fd);
    uint8_t kind = st & kKindMask;
    if (req == FIONBIO && (kind == FD_LISTENER || kind == FD_DGRAM) && arg != nullptr) {
        // Validate the descriptor as the kernel would, then record the program's wish only.
        int r = real_fcntl(fd, F_GETFL, nullptr);
        if (r < 0) return r;
        set_wish(fd, *static_cast<int *>(arg) != 0);
        return 0;
    }
    return real_ioctl(fd, req, arg);
}

} // namespace

// close_range() without CLOSE_RANGE_CLOEXEC: closes [first, last] except the shim's private descriptors,
// in as few calls as there are gaps, then forgets what was closed.
int policy_close_range(unsigned first, unsigned last, int flags) {
    if (!g.active.load(std::memory_order_acquire) || (flags & CLOSE_RANGE_CLOEXEC) || first > last || !owner())
        return real_close_range(first, last, flags);
    const unsigned size = unsigned(g.table.size);
    unsigned lo = first;
    unsigned tracked_end = last < size ? last + 1 : size;
    {
        ErrnoGuard keep;
        for (unsigned fd = first; fd < tracked_end; ++fd) {
            uint8_t k = g.table.kind(int(fd));
            if (k == FD_LISTENER || k == FD_DGRAM) epoll_forget_fd(int(fd));
        }
    }
    for (unsigned fd = first; fd < tracked_end; ++fd) {
        if (g.table.kind(int(fd)) != FD_PRIVATE) continue;
        if (fd > lo) {
            int r = real_close_range(lo, fd - 1, flags);
            if (r < 0) return r;
        }
        lo = fd + 1;
    }
    int r = 0;
    if (lo <= last) r = real_close_range(lo, last, flags);
    if (r < 0) return r;
    ErrnoGuard keep;
    for (unsigned fd = first; fd < tracked_end; ++fd) {
        uint8_t st = g.table.get(int(fd));
        if (st == FD_NONE || (st & kKindMask) == FD_PRIVATE) continue;
        forget(g.table.exchange(int(fd), FD_NONE));
    }
    return r;
}

} // namespace hr

using hr::fd_state;

HR_EXPORT int close(int fd) {
    if (fd_state(fd) == hr::FD_NONE) return hr::real_close(fd);
    return hr::policy_close(fd);
}
HR_EXPORT int dup(int fd) {
    int r = hr::real_dup(fd);
    if (r >= 0 && fd_state(fd) != hr::FD_NONE) hr::policy_duplicated(fd, r);
    return r;
}
HR_EXPORT int dup2(int ofd, int nfd) { return hr::policy_dup2(ofd, nfd, 0, false); }
HR_EXPORT int dup3(int ofd, int nfd, int flags) { return hr::policy_dup2(ofd, nfd, flags, true); }
HR_EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return hr::policy_fcntl(fd, cmd, arg);
}
HR_EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return hr::policy_fcntl(fd, cmd, arg);
}
HR_EXPORT int ioctl(int fd, unsigned long req, ...) {
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return hr::policy_ioctl(fd, req, arg);
}
HR_EXPORT int close_range(unsigned first, unsigned last, int flags) {
    return hr::policy_close_range(first, last, flags);
}
// libuv (node) closes with syscall(SYS_close, fd): route the descriptor calls the shim cares about.
HR_EXPORT long syscall(long n, ...) {
    va_list ap;
    va_start(ap, n);
    long a[6];
    for (long &x : a) x = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_close) {
        int fd = int(a[0]);
        return fd_state(fd) == hr::FD_NONE ? hr::real_close(fd) : hr::policy_close(fd);
    }
    if (n == SYS_close_range) return hr::policy_close_range(unsigned(a[0]), unsigned(a[1]), int(a[2]));
    return hr::real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

HR_EXPORT void closefrom(int lowfd) {
    if (!hr::g.active.load(std::memory_order_acquire) || !hr::owner()) return hr::real_closefrom(lowfd);
    hr::ErrnoGuard keep;
    if (lowfd < 0) lowfd = 0;
    if (hr::policy_close_range(unsigned(lowfd), ~0U, 0) == 0) return;
    // No close_range() in this kernel: close what the table tracks one by one (sparing private fds),
    // and leave the rest to libc above the table.
    int size = int(hr::g.table.size);
    for (int fd = lowfd; fd < size; ++fd) close(fd);
    hr::real_closefrom(lowfd > size ? lowfd : size);
}
