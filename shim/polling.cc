// poll()/ppoll()/select()/pselect() in a draining generation: a shared listener stays readable for as
// long as the *new* generation has connections queued, so a draining event loop would wake for nothing
// and spin, or (blocking listener) go on to block in accept() (PITFALLS 4). Once the drain flag is up
// these calls no longer watch listeners, exactly as if they were idle. Before a drain the only cost is
// one atomic load of the drain flag.
#include "core.h"

#include <alloca.h>
#include "libc.h"

#include <errno.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

namespace hr {
namespace {

inline bool draining_now() { return g.acct.shared && g.acct.draining(); }
// Shared sockets a draining process must no longer watch: listeners and datagram sockets.
inline bool is_listener(int fd) {
    uint8_t k = g.table.kind(fd);
    return k == FD_LISTENER || k == FD_DGRAM;
}

constexpr short kReadBits = POLLIN | POLLRDNORM | POLLRDBAND | POLLPRI;
// Before the set-up is known to be done: does this wait watch a shared socket for reading?
void note_if_watching(const pollfd *fds, nfds_t n) {
    if (g.accepting.load(std::memory_order_relaxed)) {
        note_accepting(); // cheap: only acts on released sockets
        return;
    }
    for (nfds_t i = 0; i < n; ++i)
        if (fds[i].fd >= 0 && (fds[i].events & kReadBits) && is_listener(fds[i].fd)) {
            note_accepting();
            return;
        }
}

// A draining process no longer reads from shared sockets: their read interest is taken out of the array
// for the call (writing, e.g. a UDP reply, still works) and put back after. Hidden holds what was removed:
// room for as many entries as the array has shared sockets with read interest, on the caller's stack
// (alloca: a few bytes for a usual wait, not a table sized for a thousand listeners in every thread).
struct Hidden {
    uint32_t *index;
    short *events;
    int n;
};

int count_reads(const pollfd *fds, nfds_t n) {
    int c = 0;
    for (nfds_t i = 0; i < n; ++i)
        if (fds[i].fd >= 0 && (fds[i].events & kReadBits) && is_listener(fds[i].fd)) ++c;
    return c;
}

void hide_reads(pollfd *fds, nfds_t n, Hidden *h, int room) {
    for (nfds_t i = 0; i < n && h->n < room; ++i) {
        if (fds[i].fd < 0 || !(fds[i].events & kReadBits) || !is_listener(fds[i].fd)) continue;
        h->index[h->n] = uint32_t(i);
        h->events[h->n++] = fds[i].events;
        fds[i].events &= short(~kReadBits);
    }
}

void show_reads(pollfd *fds, const Hidden &h) {
    for (int k = 0; k < h.n; ++k) fds[h.index[k]].events = h.events[k];
}

// Drops read readiness of shared sockets that a drain made meaningless; returns the new count.
int drop_listener_events(pollfd *fds, nfds_t n, int r) {
    for (nfds_t i = 0; i < n; ++i) {
        if (!fds[i].revents || fds[i].fd < 0 || !is_listener(fds[i].fd)) continue;
        fds[i].revents &= short(~kReadBits);
        if (!fds[i].revents) --r;
    }
    return r;
}

// One poll-style wait with the shared sockets' read interest hidden once draining. call(timeout_ms) runs
// the real function on fds; a negative timeout means forever.
template <class Call>
int poll_like(pollfd *fds, nfds_t n, int timeout, Call call) {
    const Remaining remaining(timeout);
    note_if_watching(fds, n);
    int room = -1; // entries of saved_*: set the first time the wait is a draining one
    uint32_t *saved_index = nullptr;
    short *saved_events = nullptr;
    for (;;) {
        const int left = remaining.left();
        if (draining_now()) {
            const bool standby = g.acct.standby();
            if (room < 0) { // once per call (alloca lasts until the function returns: never in a loop)
                room = count_reads(fds, n);
                if (room > 2 * kMaxInherited) room = 2 * kMaxInherited;
                saved_index = static_cast<uint32_t *>(alloca(sizeof(uint32_t) * size_t(room) + 1));
                saved_events = static_cast<short *>(alloca(sizeof(short) * size_t(room) + 1));
            }
            Hidden h{saved_index, saved_events, 0};
            hide_reads(fds, n, &h, room);
            int r = call(drain_slice(left));
            ErrnoGuard keep;
            show_reads(fds, h);
            // Standing by, a slice that passed is not the program's timeout: wait on (with the listeners
            // watched again if the generation resumed meanwhile). Some servers (nginx) take a wait without
            // timeout that returns nothing for an error.
            if (r == 0 && standby && left != 0 && remaining.left() != 0) continue;
            return r;
        }
        int r = call(left);
        if (r <= 0 || !draining_now()) return r;
        // The drain began while we waited: what woke us may have been only a listener.
        ErrnoGuard keep;
        r = drop_listener_events(fds, n, r);
        if (r > 0 || left == 0) return r;
    }
}

int policy_poll(pollfd *fds, nfds_t n, int timeout) {
    return poll_like(fds, n, timeout, [&](int t) { return real_poll(fds, n, t); });
}

int ts_to_ms(const timespec *ts) {
    if (!ts) return -1;
    int64_t ms = int64_t(ts->tv_sec) * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ms > 0x7fffffff ? 0x7fffffff : int(ms);
}

int policy_ppoll(pollfd *fds, nfds_t n, const timespec *ts, const sigset_t *mask) {
    return poll_like(fds, n, ts_to_ms(ts), [&](int t) {
        timespec left{t / 1000, (t % 1000) * 1000000L};
        return real_ppoll(fds, n, t < 0 ? nullptr : &left, mask);
    });
}

// select() family: listener bits are cleared from the read set when draining; if a drain begins during
// the call and only listeners were ready, the wait resumes with the caller's original sets.
template <class Call>
int select_like(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout, Call call) {
    if (!rd || nfds <= 0 || nfds > FD_SETSIZE) return call(rd, wr, ex, timeout);
    const Remaining remaining(timeout);
    fd_set r0 = *rd, w0, e0;
    if (wr) w0 = *wr;
    if (ex) e0 = *ex;
    for (;;) {
        const int left = remaining.left();
        bool hide = draining_now();
        if (hide)
            for (int fd = 0; fd < nfds; ++fd)
                if (FD_ISSET(fd, rd) && is_listener(fd)) FD_CLR(fd, rd);
        if (!hide && !g.accepting.load(std::memory_order_relaxed))
            for (int fd = 0; fd < nfds; ++fd)
                if (FD_ISSET(fd, rd) && is_listener(fd)) note_accepting();
        const bool standby = hide && g.acct.standby();
        int r = call(rd, wr, ex, hide ? drain_slice(left) : left);
        if (r == 0 && standby && left != 0 && remaining.left() != 0) { // see poll_like()
            *rd = r0;
            if (wr) *wr = w0;
            if (ex) *ex = e0;
            continue;
        }
        if (r <= 0 || hide || !draining_now()) return r;
        ErrnoGuard keep;
        for (int fd = 0; fd < nfds; ++fd) {
            if (FD_ISSET(fd, rd) && is_listener(fd)) {
                FD_CLR(fd, rd);
                --r;
            }
        }
        if (r > 0 || left == 0) return r;
        *rd = r0;
        if (wr) *wr = w0;
        if (ex) *ex = e0;
    }
}

int tv_to_ms(const timeval *tv) {
    if (!tv) return -1;
    int64_t ms = int64_t(tv->tv_sec) * 1000 + (tv->tv_usec + 999) / 1000;
    return ms > 0x7fffffff ? 0x7fffffff : int(ms);
}

} // namespace
} // namespace hr

namespace {
inline bool shim_watching() { return hr::g.acct.shared != nullptr && hr::g.active.load(std::memory_order_relaxed); }
} // namespace

HR_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
    if (!shim_watching()) return hr::real_poll(fds, n, timeout);
    return hr::policy_poll(fds, n, timeout);
}
// _FORTIFY_SOURCE builds call this instead of poll().
HR_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
    if (fdslen / sizeof(*fds) < n) __builtin_trap();
    return poll(fds, n, timeout);
}
HR_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
    if (!shim_watching()) return hr::real_ppoll(fds, n, ts, mask);
    return hr::policy_ppoll(fds, n, ts, mask);
}
HR_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                          size_t fdslen) {
    if (fdslen / sizeof(*fds) < n) __builtin_trap();
    return ppoll(fds, n, ts, mask);
}
HR_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
    if (!shim_watching()) return hr::real_select(nfds, rd, wr, ex, tv);
    // Linux updates *tv with the time left; our resumed waits keep the caller's overall deadline instead.
    return hr::select_like(nfds, rd, wr, ex, hr::tv_to_ms(tv), [&](fd_set *r, fd_set *w, fd_set *e, int t) {
        if (t < 0) return hr::real_select(nfds, r, w, e, nullptr);
        timeval left{t / 1000, (t % 1000) * 1000L};
        int rc = hr::real_select(nfds, r, w, e, &left);
        if (tv) *tv = left;
        return rc;
    });
}
HR_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts, const sigset_t *mask) {
    if (!shim_watching()) return hr::real_pselect(nfds, rd, wr, ex, ts, mask);
    return hr::select_like(nfds, rd, wr, ex, hr::ts_to_ms(ts), [&](fd_set *r, fd_set *w, fd_set *e, int t) {
        timespec left{t / 1000, (t % 1000) * 1000000L};
        return hr::real_pselect(nfds, r, w, e, t < 0 ? nullptr : &left, mask);
    });
}
