// accept() and accept4() on shared listeners: connection accounting and the per-process blocking mode.
//
// The shared socket is always O_NONBLOCK. For a program that believes it is blocking, the shim waits in
// poll() on the listener and the generation's wake eventfd, then accepts without blocking. That gives
// each process the blocking behaviour it asked for (PITFALLS 2) and lets a drain wake every thread blocked
// in accept() (PITFALLS 5); once draining, a blocking accept() keeps blocking, as it would on an idle socket,
// until a signal handler runs (then ECONNABORTED, see below).
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

namespace hr {
namespace {

// poll() is never restarted after a signal handler, accept() is when the handler has SA_RESTART. We cannot
// tell which signal interrupted us, so report EINTR if any installed handler lacks SA_RESTART (a program
// with such a handler copes with EINTR from accept() already); otherwise resume waiting, as accept would.
bool interrupted_for_program() {
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa;
        if (sigaction(sig, nullptr, &sa) < 0) continue;
        if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
        if (!(sa.sa_flags & SA_RESTART)) return true;
    }
    return false;
}

// SO_RCVTIMEO applies to accept(); honour it in the emulated wait. -1: no timeout.
int receive_timeout_ms(int fd) {
    timeval tv{};
    socklen_t l = sizeof tv;
    if (real_getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) < 0) return -1;
    if (tv.tv_sec == 0 && tv.tv_usec == 0) return -1;
    long ms = tv.tv_sec * 1000L + (tv.tv_usec + 999) / 1000;
    return ms > 0x7fffffff ? 0x7fffffff : int(ms);
}

enum Wait { W_READY, W_TIMEOUT, W_EINTR };

Wait wait_for_connection(int fd, bool draining) {
    int timeout = receive_timeout_ms(fd);
    pollfd p[2] = {{fd, POLLIN, 0}, {g.wake.load(std::memory_order_acquire), POLLIN, 0}};
    // Draining: nothing will ever come for this process; wait like an accept() on an idle socket.
    nfds_t n = draining ? 0 : 2;
    int r = real_poll(draining ? nullptr : p, n, timeout);
    if (r > 0) return W_READY;
    if (r == 0) return W_TIMEOUT;
    return errno == EINTR ? W_EINTR : W_READY;
}

int policy_accept(int fd, sockaddr *addr, socklen_t *len, int flags, bool four) {
    uint8_t st = fd_state(fd);
    if ((st & kKindMask) != FD_LISTENER || !g.active.load(std::memory_order_acquire))
        return four ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
    const bool nonblocking = st & kWantNonblock;
    const int saved_errno = errno;
    for (;;) {
        bool idle = false;
        if (!g.acct.reserve(&idle)) {
            if (idle) send_idle();
            if (nonblocking) {
                errno = EAGAIN;
                return -1;
            }
            Wait w = wait_for_connection(fd, true);
            if (w == W_TIMEOUT) {
                errno = EAGAIN;
                return -1;
            }
            if (w == W_EINTR) {
                // A signal handler ran while this process drains (typically its stop signal). Programs
                // that stop by setting a flag and waiting for their accept loop to notice (Python's
                // socketserver retries EINTR itself) would wait forever: fail with ECONNABORTED, the
                // transient accept() error every server already handles, so the loop comes round.
                errno = ECONNABORTED;
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
        Wait w = wait_for_connection(fd, false);
        if (w == W_TIMEOUT) {
            errno = EAGAIN;
            return -1;
        }
        if (w == W_EINTR && interrupted_for_program()) {
            errno = EINTR;
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
