// epoll in a draining generation. epoll watches the open file description, not the fd number, so a
// listener registered in an epoll set stays there, readable whenever the new generation has connections
// queued (PITFALLS 4): a level-triggered loop would spin on accept() returning EAGAIN. The shim remembers
// which (epoll set, listener) registrations the program made; once draining, each epoll_wait() first takes
// the listeners out of its set (EPOLL_CTL_DEL) and drops events already fetched for them. The program's own
// later EPOLL_CTL_DEL/MOD of those registrations succeed as if nothing happened. Closing or dup2-ing over a
// listener also removes its registrations first, so they cannot outlive the program's descriptor.
// A drain can be called off (the launcher's rollback window: the newer generation failed): the next
// epoll_wait() on a set whose registrations the shim took out puts them back as the program made them.
// EPOLLEXCLUSIVE (nginx's listeners on Linux, accept_mutex off): the kernel wakes one exclusive waiter per
// new connection, the first epoll set on the socket's wait queue with a thread blocked in it. An old
// generation's worker blocked in epoll_wait() without a timeout would take that one wake-up once draining,
// hide it, and leave the connection queued until the next one. So a set that holds an exclusive shared
// registration also holds, hidden, the generation's wake eventfd (level-triggered, not exclusive, data
// kHiddenData). The launcher writes that eventfd before it raises the drain flag: every such set's blocked
// waiter is woken (and leaves the set's wait queue), and the shim re-registers the set's exclusive shared
// sockets without the flag and takes the eventfd out again, before that waiter can block again. A set
// with no exclusive waiter can no longer take an exclusive wake-up. Outside a reload nothing changes in
// the kernel: the flag stays, and the eventfd is never readable. After a called-off drain (the eventfd
// read back) the registrations go back as the program made them, the eventfd with them.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
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
    std::atomic<int> plain{0};   // an exclusive registration the shim holds in the kernel without the flag
};
constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDNORM | EPOLLRDBAND | EPOLLPRI;
constexpr uint32_t kWriteEvents = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
// The data of the hidden registration of the wake eventfd ("hrwake" + 0x5eed): never shown to the program.
constexpr uint64_t kHiddenData = 0x6872'7761'6b65'5eedULL;
// Every inherited socket in two epoll sets. Slots [0, regs_used) may be or have been taken: the scans stop
// there, so they cost what the process registered, not what the table could hold.
constexpr int kMaxRegs = 2 * kMaxInherited;
EpReg regs[kMaxRegs];
std::atomic<int> regs_used{0};
struct InUse {
    EpReg *begin() const { return regs; }
    EpReg *end() const { return regs + regs_used.load(std::memory_order_acquire); }
};
inline InUse in_use() { return {}; }
// Registrations of this process currently taken out by the shim: while zero, a wait outside a drain
// costs one relaxed load more.
std::atomic<int> detached{0};
// Exclusive registrations of this process held without the flag (plain), and whether it ever added the
// hidden wake registration (only then is a wait's answer scanned for it).
std::atomic<int> plained{0};
std::atomic<bool> hidden_used{false};

inline bool exclusive(uint32_t events) { return events & EPOLLEXCLUSIVE; }
// What the kernel holds for registration r (EPOLLEXCLUSIVE cannot be MODified in, nor out).
inline uint32_t kernel_events(const EpReg &r) {
    uint32_t e = r.events.load();
    return r.plain.load() ? e & ~uint32_t(EPOLLEXCLUSIVE) : e;
}

// Adds the hidden wake registration to epfd (EEXIST: it is there already).
void add_hidden(int epfd) {
    int w = g.wake.load(std::memory_order_acquire);
    if (w < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kHiddenData;
    hidden_used.store(true, std::memory_order_relaxed);
    real_epoll_ctl(epfd, EPOLL_CTL_ADD, w, &ev);
}
void del_hidden(int epfd) {
    int w = g.wake.load(std::memory_order_acquire);
    epoll_event ev{};
    if (w >= 0) real_epoll_ctl(epfd, EPOLL_CTL_DEL, w, &ev);
}
// Puts fd's registration in epfd back as `events` says (DEL + ADD: the flag cannot be modified).
void readd(int epfd, int fd, uint64_t data, uint32_t events) {
    epoll_event ev{};
    real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
    ev.events = events;
    ev.data.u64 = data;
    real_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

inline bool shared_kind(int fd) {
    uint8_t k = g.table.kind(fd);
    return k == FD_LISTENER || k == FD_DGRAM;
}

EpReg *find(int epfd, int fd) {
    for (auto &r : in_use())
        if (r.epfd.load(std::memory_order_acquire) == epfd && r.fd.load(std::memory_order_acquire) == fd) return &r;
    return nullptr;
}

// r: find(epfd, fd) as the caller found it (nullptr: none).
void remember(EpReg *r, int epfd, int fd, uint64_t data, uint32_t events) {
    if (!r) {
        for (auto &e : regs) {
            int expected = -1;
            // A plain load first: a thousand registrations must not cost a thousand locked operations each.
            if (e.epfd.load(std::memory_order_relaxed) != -1) continue;
            if (e.epfd.compare_exchange_strong(expected, -2)) { // reserve, then publish
                const int upto = int(&e - regs) + 1;
                int u = regs_used.load();
                while (u < upto && !regs_used.compare_exchange_weak(u, upto)) {
                }
                e.fd.store(fd);
                e.removed.store(0);
                e.plain.store(0);
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
    if (r->plain.exchange(0)) plained.fetch_sub(1);
}

void forget(EpReg *r) {
    if (r->removed.exchange(0)) detached.fetch_sub(1);
    if (r->plain.exchange(0)) plained.fetch_sub(1);
    r->fd.store(-1);
    r->epfd.store(-1, std::memory_order_release);
}

// Takes the shared sockets' read interest out of epoll set epfd (once): a registration that also waits
// for writing (a UDP server's reply) keeps that part, the others are removed.
void detach(int epfd) {
    for (auto &r : in_use()) {
        if (r.epfd.load(std::memory_order_acquire) != epfd || r.removed.load()) continue;
        int expected = 0;
        if (!r.removed.compare_exchange_strong(expected, 1)) continue;
        detached.fetch_add(1);
        epoll_event ev{};
        uint32_t events = r.events.load();
        if ((events & kWriteEvents) && exclusive(events)) {
            // An exclusive registration cannot be modified: the write interest goes back in without it.
            if (!r.plain.exchange(1)) plained.fetch_add(1);
            readd(epfd, r.fd.load(), r.data.load(), events & ~(kReadEvents | uint32_t(EPOLLEXCLUSIVE)));
        } else if (events & kWriteEvents) {
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
    for (auto &r : in_use()) {
        if (r.epfd.load(std::memory_order_acquire) != epfd) continue;
        int expected = 1;
        if (!r.removed.compare_exchange_strong(expected, 0)) continue;
        detached.fetch_sub(1);
        epoll_event ev{};
        uint32_t events = r.events.load();
        if (exclusive(events)) {
            // As the program made it, flag included (the eventfd was read back before the flag went down:
            // if a new drain has begun since, the hidden registration wakes this set again at once).
            if (r.plain.exchange(0)) plained.fetch_sub(1);
            readd(epfd, r.fd.load(), r.data.load(), events);
            add_hidden(epfd);
            continue;
        }
        ev.events = events;
        ev.data.u64 = r.data.load();
        // What detach() modified is still in the set; what it deleted must be added again (the program may
        // have changed the registration meanwhile, so ask the kernel rather than guess).
        if (real_epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd.load(), &ev) < 0 && errno == ENOENT)
            real_epoll_ctl(epfd, EPOLL_CTL_ADD, r.fd.load(), &ev);
    }
}

// The wake eventfd fired in epfd (a drain is about to begin): its exclusive shared registrations go in
// without the flag, and the hidden registration out (it stays readable until a resume).
void unexclusive(int epfd) {
    for (auto &r : in_use()) {
        if (r.epfd.load(std::memory_order_acquire) != epfd || r.removed.load() || !exclusive(r.events.load())) continue;
        if (r.plain.exchange(1)) continue;
        plained.fetch_add(1);
        readd(epfd, r.fd.load(), r.data.load(), r.events.load() & ~uint32_t(EPOLLEXCLUSIVE));
    }
    del_hidden(epfd);
}

// Not draining, some registrations held without the flag: once the wake eventfd is clear again (the drain
// was called off; not the moment between its write and the flag), they go back as the program made them.
void reexclusive(int epfd) {
    pollfd p = {g.wake.load(std::memory_order_acquire), POLLIN, 0};
    if (p.fd < 0 || real_poll(&p, 1, 0) != 0) return;
    bool any = false;
    for (auto &r : in_use()) {
        if (r.epfd.load(std::memory_order_acquire) != epfd || r.removed.load()) continue;
        if (!r.plain.exchange(0)) continue;
        plained.fetch_sub(1);
        readd(epfd, r.fd.load(), r.data.load(), r.events.load());
        any = true;
    }
    if (any) add_hidden(epfd);
}

// Drops the hidden registration's events from a wait's answer; *seen: there was one.
int drop_hidden(epoll_event *events, int n, bool *seen) {
    int out = 0;
    for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kHiddenData) {
            *seen = true;
            continue;
        }
        if (out != i) events[out] = events[i];
        ++out;
    }
    return out;
}

bool has_registrations(int epfd) {
    for (auto &r : in_use())
        if (r.epfd.load(std::memory_order_acquire) == epfd && (r.events.load() & kReadEvents)) return true;
    return false;
}

// Drops read readiness fetched for shared sockets the shim detached from epfd; returns the new count.
int filter(int epfd, epoll_event *events, int n) {
    int out = 0;
    for (int i = 0; i < n; ++i) {
        for (auto &r : in_use()) {
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
    } else if (released_pending()) {
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
            if (plained.load(std::memory_order_relaxed)) reexclusive(epfd);
        } else if (plained.load(std::memory_order_relaxed)) {
            ErrnoGuard keep;
            reexclusive(epfd);
        }
        const bool standby = was_draining && g.acct.standby();
        int r = call(was_draining ? drain_slice(left) : left);
        if (r > 0 && hidden_used.load(std::memory_order_relaxed)) {
            bool seen = false;
            r = drop_hidden(events, r, &seen);
            if (seen) {
                ErrnoGuard keep;
                unexclusive(epfd);
                // Nothing else to answer: wait again for what the program asked (the flag may be up now).
                if (r == 0 && left != 0 && remaining.left() != 0) continue;
            }
        }
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
    for (auto &r : in_use()) {
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
            if (ev && (exclusive(ev->events) || exclusive(r->events.load()))) {
                errno = EINVAL; // what the kernel answers for an exclusive registration, or the flag in a MOD
                return -1;
            }
            if (ev) {
                r->data.store(ev->data.u64);
                r->events.store(ev->events);
            }
            return 0;
        }
    }
    if (op == EPOLL_CTL_MOD && ev && r && r->plain.load() && exclusive(r->events.load())) {
        errno = EINVAL; // held without the flag, but the program's registration is exclusive
        return -1;
    }
    int rc = real_epoll_ctl(epfd, op, fd, ev);
    if (rc == 0) {
        ErrnoGuard keep;
        if (op == EPOLL_CTL_DEL) {
            if (r) forget(r);
        } else if (ev) {
            remember(r, epfd, fd, ev->data.u64, ev->events); // r: found above (an ADD the kernel took had none)
            if (op == EPOLL_CTL_ADD && exclusive(ev->events)) add_hidden(epfd);
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
// The same with a timespec (glibc 2.35+): a timeout the shim's own waits cut into slices is counted in
// milliseconds (rounded up); the first call gets the program's own timespec.
HR_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int max, const struct timespec *ts,
                           const sigset_t *mask) {
    if (!hr::watching() || (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)))
        return hr::real_epoll_pwait2(epfd, events, max, ts, mask);
    int ms = -1;
    if (ts) {
        const long long want = (long long)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
        ms = ts->tv_sec > INT_MAX / 1000 || want > INT_MAX ? INT_MAX : int(want);
    }
    bool first = true;
    return hr::wait_like(epfd, events, ms, [&](int t) {
        if (first && t == ms) {
            first = false;
            return hr::real_epoll_pwait2(epfd, events, max, ts, mask);
        }
        first = false;
        struct timespec s = {t / 1000, long(t % 1000) * 1000000};
        return hr::real_epoll_pwait2(epfd, events, max, t < 0 ? nullptr : &s, mask);
    });
}
