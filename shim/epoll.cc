// epoll in a draining generation. epoll watches the open file description, not the fd number, so a
// listener registered in an epoll set stays there, readable whenever the new generation has connections
// queued (PITFALLS 4): a level-triggered loop would spin on accept() returning EAGAIN. The shim remembers
// which (epoll set, listener) registrations the program made; once draining, each epoll_wait() first takes
// the listeners out of its set (EPOLL_CTL_DEL) and drops events already fetched for them. The program's own
// later EPOLL_CTL_DEL/MOD of those registrations succeed as if nothing happened. Closing or dup2-ing over a
// listener also removes its registrations first, so they cannot outlive the program's descriptor.
// A drain can be called off (the launcher's rollback window: the newer generation failed): the next
// epoll_wait() on a set whose registrations the shim took out puts them back as the program made them.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>

namespace hr {
namespace {

struct EpReg {
    std::atomic<int> epfd{-1}; // -1: free
    std::atomic<int> fd{-1};
    std::atomic<uint64_t> data{0};
    std::atomic<uint32_t> events{0};
    std::atomic<int> owner{0};   // the process that registered it
    std::atomic<int> removed{0}; // taken out of the set by the shim (or its read interest, see detach)
};
constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDNORM | EPOLLRDBAND | EPOLLPRI;
constexpr uint32_t kWriteEvents = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
constexpr int kMaxRegs = 256;
EpReg regs[kMaxRegs];
// Registrations of this process currently taken out by the shim: while zero, a wait outside a drain
// costs one relaxed load more.
std::atomic<int> detached{0};

inline bool shared_kind(int fd) {
    uint8_t k = g.table.kind(fd);
    return k == FD_LISTENER || k == FD_DGRAM;
}

EpReg *find(int epfd, int fd) {
    for (auto &r : regs)
        if (r.epfd.load(std::memory_order_acquire) == epfd && r.fd.load(std::memory_order_acquire) == fd) return &r;
    return nullptr;
}

void remember(int epfd, int fd, uint64_t data, uint32_t events) {
    EpReg *r = find(epfd, fd);
    if (!r) {
        for (auto &e : regs) {
            int expected = -1;
            if (e.epfd.compare_exchange_strong(expected, -2)) { // reserve, then publish
                e.fd.store(fd);
                e.removed.store(0);
                e.data.store(data);
                e.events.store(events);
                e.owner.store(int(getpid()));
                e.epfd.store(epfd, std::memory_order_release);
                return;
            }
        }
        return; // table full: that registration is simply not drained (logged in verbose mode)
    }
    r->data.store(data);
    r->events.store(events);
    if (r->removed.exchange(0)) detached.fetch_sub(1);
}

void forget(EpReg *r) {
    if (r->removed.exchange(0)) detached.fetch_sub(1);
    r->fd.store(-1);
    r->epfd.store(-1, std::memory_order_release);
}

// Takes the shared sockets' read interest out of epoll set epfd (once): a registration that also waits
// for writing (a UDP server's reply) keeps that part, the others are removed.
void detach(int epfd) {
    for (auto &r : regs) {
        if (r.epfd.load(std::memory_order_acquire) != epfd || r.removed.load()) continue;
        int expected = 0;
        if (!r.removed.compare_exchange_strong(expected, 1)) continue;
        detached.fetch_add(1);
        epoll_event ev{};
        uint32_t events = r.events.load();
        if (events & kWriteEvents) {
            ev.events = events & ~kReadEvents;
            ev.data.u64 = r.data.load();
            real_epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd.load(), &ev);
        } else {
            real_epoll_ctl(epfd, EPOLL_CTL_DEL, r.fd.load(), &ev);
        }
    }
}

// The drain was called off: puts back what detach() took out of epoll set epfd.
void reattach(int epfd) {
    for (auto &r : regs) {
        if (r.epfd.load(std::memory_order_acquire) != epfd) continue;
        int expected = 1;
        if (!r.removed.compare_exchange_strong(expected, 0)) continue;
        detached.fetch_sub(1);
        epoll_event ev{};
        uint32_t events = r.events.load();
        ev.events = events;
        ev.data.u64 = r.data.load();
        // What detach() modified is still in the set; what it deleted must be added again (the program may
        // have changed the registration meanwhile, so ask the kernel rather than guess).
        if (real_epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd.load(), &ev) < 0 && errno == ENOENT)
            real_epoll_ctl(epfd, EPOLL_CTL_ADD, r.fd.load(), &ev);
    }
}

bool has_registrations(int epfd) {
    for (auto &r : regs)
        if (r.epfd.load(std::memory_order_acquire) == epfd && (r.events.load() & kReadEvents)) return true;
    return false;
}

// Drops read readiness fetched for shared sockets the shim detached from epfd; returns the new count.
int filter(int epfd, epoll_event *events, int n) {
    int out = 0;
    for (int i = 0; i < n; ++i) {
        for (auto &r : regs) {
            if (r.epfd.load(std::memory_order_acquire) == epfd && r.removed.load() && r.data.load() == events[i].data.u64) {
                events[i].events &= ~kReadEvents;
                break;
            }
        }
        if (events[i].events) events[out++] = events[i];
    }
    return out;
}

template <class Call>
int wait_like(int epfd, epoll_event *events, int timeout, Call call) {
    const Remaining remaining(timeout);
    // Until this process has reported that it accepts, look for a shared socket in this set; after that,
    // only a pending release costs anything (two relaxed loads per call on the hot path).
    if (!g.accepting.load(std::memory_order_relaxed)) {
        if (has_registrations(epfd)) note_accepting();
    } else if (g.acct.shared->released.load(std::memory_order_relaxed) != g.released_done.load(std::memory_order_relaxed)) {
        close_released();
    }
    for (;;) {
        const int left = remaining.left();
        bool was_draining = g.acct.draining();
        if (was_draining) {
            ErrnoGuard keep;
            detach(epfd);
        } else if (detached.load(std::memory_order_relaxed)) {
            ErrnoGuard keep;
            reattach(epfd);
        }
        const bool standby = was_draining && g.acct.standby();
        int r = call(was_draining ? drain_slice(left) : left);
        // Standing by, a slice that passed is not the program's timeout (nginx calls a wait without timeout
        // that returns nothing an error): wait on, re-attaching the listeners if it resumed meanwhile.
        if (r == 0 && standby && left != 0 && remaining.left() != 0) continue;
        if (r <= 0 || (!was_draining && !g.acct.draining())) return r;
        ErrnoGuard keep;
        if (!was_draining) detach(epfd);
        r = filter(epfd, events, r);
        if (r > 0 || left == 0 || was_draining) return r;
    }
}

inline bool watching() { return g.acct.shared != nullptr && g.active.load(std::memory_order_relaxed); }

} // namespace

void epoll_forget_fd(int fd) {
    const int self = int(getpid());
    for (auto &r : regs) {
        if (r.fd.load(std::memory_order_acquire) != fd || r.epfd.load() < 0) continue;
        // Only the process that registered it removes it: a forked child closing its copy of the
        // listener (redis' BGSAVE child) shares the epoll set with its parent but must not empty it.
        if (!r.removed.load() && r.owner.load() == self) {
            epoll_event ev{};
            real_epoll_ctl(r.epfd.load(), EPOLL_CTL_DEL, fd, &ev);
        }
        forget(&r);
    }
}

int policy_epoll_ctl(int epfd, int op, int fd, epoll_event *ev) {
    if (!watching() || !shared_kind(fd)) return real_epoll_ctl(epfd, op, fd, ev);
    EpReg *r = find(epfd, fd);
    if (r && r->removed.load()) {
        // The shim already took it out while draining: keep the program's view consistent.
        if (op == EPOLL_CTL_DEL) {
            forget(r);
            return 0;
        }
        if (op == EPOLL_CTL_MOD) {
            if (ev) {
                r->data.store(ev->data.u64);
                r->events.store(ev->events);
            }
            return 0;
        }
    }
    int rc = real_epoll_ctl(epfd, op, fd, ev);
    if (rc == 0) {
        ErrnoGuard keep;
        if (op == EPOLL_CTL_DEL) {
            if (r) forget(r);
        } else if (ev) {
            remember(epfd, fd, ev->data.u64, ev->events);
        }
    }
    return rc;
}

} // namespace hr

HR_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    return hr::policy_epoll_ctl(epfd, op, fd, ev);
}
HR_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    if (!hr::watching()) return hr::real_epoll_wait(epfd, events, max, timeout);
    return hr::wait_like(epfd, events, timeout, [&](int t) { return hr::real_epoll_wait(epfd, events, max, t); });
}
HR_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask) {
    if (!hr::watching()) return hr::real_epoll_pwait(epfd, events, max, timeout, mask);
    return hr::wait_like(epfd, events, timeout,
                         [&](int t) { return hr::real_epoll_pwait(epfd, events, max, t, mask); });
}
