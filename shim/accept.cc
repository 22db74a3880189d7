// accept() and accept4() on shared listeners: connection accounting and the per-process blocking mode.
//
// The shared socket is always O_NONBLOCK. For a program that believes it is blocking, the shim waits in
// poll() on the listener and the generation's wake eventfd, then accepts without blocking. That gives
// each process the blocking behaviour it asked for (PITFALLS 2) and lets a drain wake every thread blocked
// in accept() (PITFALLS 5); once draining, a blocking accept() keeps blocking, as it would on an idle socket,
// until a signal handler runs (then ECONNABORTED, see below). A process that has begun to exit (exit()'s
// destructors ran, or _exit() was called in another thread) is refused the same way: a connection it took
// in that window would be reset when the exit completes.
#include "core.h"
#include "libc.h"

#include <errno.h>

namespace hr {
namespace {

int policy_accept(int fd, sockaddr *addr, socklen_t *len, int flags, bool four) {
    uint8_t st = fd_state(fd);
    if ((st & kKindMask) != FD_LISTENER || !g.active.load(std::memory_order_acquire))
        return four ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
    if (st & kShut) { // this process shut it down: what the kernel says of a socket that stopped listening
        errno = EINVAL;
        return -1;
    }
    const bool nonblocking = st & kWantNonblock;
    const int saved_errno = errno;
    note_accepting();
    for (;;) {
        bool idle = false;
        if (!g.acct.reserve(&idle)) {
            // Undoing a refused reservation can only make the count zero if it was zero a moment ago;
            // tell the launcher once (in case it read the count just then), not on every refused call.
            if (idle && !g.idle_hinted.exchange(true)) send_idle();
            if (nonblocking) {
                errno = EAGAIN;
                return -1;
            }
            // A signal handler that runs while this process drains (typically its stop signal) makes the
            // call fail with ECONNABORTED: programs that stop by setting a flag and waiting for their
            // accept loop to notice (Python's socketserver retries EINTR itself) would otherwise wait
            // forever, and ECONNABORTED is the transient accept() error every server already handles.
            if (int e = wait_outcome(wait_readable(fd, true), fd, true)) {
                errno = e;
                return -1;
            }
            continue;
        }
        int c = four ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
        if (c >= 0) {
            if (g.table.in_range(c)) {
                g.table.set(c, FD_CONN);
                g.acct.commit();
            } else if (g.acct.unreserve()) {
                send_idle();
            }
            errno = saved_errno;
            return c;
        }
        int e = errno;
        if (g.acct.unreserve()) send_idle();
        if ((e != EAGAIN && e != EWOULDBLOCK) || nonblocking) {
            errno = e;
            return -1;
        }
        if (int e2 = wait_outcome(wait_readable(fd, false), fd, false)) {
            errno = e2;
            return -1;
        }
    }
}

} // namespace
} // namespace hr

HR_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    return hr::policy_accept(fd, addr, len, 0, false);
}
HR_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return hr::policy_accept(fd, addr, len, flags, true);
}
