// Start-up of the shim: fetch the private descriptors and the configuration at the launcher's rendezvous
// (only a generation's main process gets them), validate every descriptor against the kernel, move them
// out of the program's way, and only then switch the wrappers on. No launcher: pass-through, silently;
// any doubt: pass-through with one warning line.
#include "core.h"

#include "libc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <new>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

namespace hr {

ShimTables g_tables;
Shim g;

ErrnoGuard::ErrnoGuard() : saved(errno) {}
ErrnoGuard::~ErrnoGuard() { errno = saved; }

void log_line(const char *level, const char *fmt, ...) {
    ErrnoGuard keep;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "hotrestart-shim[%d]: %s: ", int(getpid()), level);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - size_t(n) - 1, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = size_t(n) + size_t(m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}

void send_msg(uint16_t type, int32_t arg, int32_t err, const sockaddr *addr, socklen_t addrlen, int fd) {
    ErrnoGuard keep;
    int ctl = g.ctl.load(std::memory_order_acquire);
    if (ctl < 0) return;
    Msg m;
    memset(&m, 0, sizeof m);
    m.magic = kMagic;
    m.version = kProtocolVersion;
    m.type = type;
    m.pid = int32_t(getpid());
    m.arg = arg;
    m.err = err;
    if (addr && addrlen <= sizeof m.addr) {
        memcpy(&m.addr, addr, addrlen);
        m.addrlen = addrlen;
    }
    iovec iov{&m, sizeof m};
    msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
    if (fd >= 0) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    while (real_sendmsg(ctl, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

void move_private_away(int fd) {
    if (g.table.kind(fd) != FD_PRIVATE) return;
    int nfd = real_fcntl(fd, F_DUPFD_CLOEXEC, reinterpret_cast<void *>(long(fd + 1)));
    if (nfd < 0) return;
    g.table.set(nfd, FD_PRIVATE);
    std::atomic<int> *privs[] = {&g.ctl, &g.wake, &g.shm, &g.local_wake};
    for (auto *p : privs) {
        int expected = fd;
        p->compare_exchange_strong(expected, nfd);
    }
    for (int i = 0; i < g.ninherited; ++i) {
        int expected = fd;
        g.inherited[i].fd.compare_exchange_strong(expected, nfd);
    }
    g.table.set(fd, FD_NONE);
    real_close(fd);
}

// poll() is never restarted after a signal handler, accept() or recv() are when the handler has
// SA_RESTART. We cannot tell which signal interrupted us, so report EINTR if any installed handler lacks
// SA_RESTART (a program with such a handler copes with EINTR already); otherwise resume waiting.
bool interrupted_for_program() {
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa;
        if (sigaction(sig, nullptr, &sa) < 0) continue;
        if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
        if (!(sa.sa_flags & SA_RESTART)) return true;
    }
    return false;
}

namespace {

// SO_RCVTIMEO applies to accept() and recv(); honour it in the emulated wait. -1: no timeout.
int receive_timeout_ms(int fd) {
    timeval tv{};
    socklen_t l = sizeof tv;
    if (real_getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) < 0) return -1;
    if (tv.tv_sec == 0 && tv.tv_usec == 0) return -1;
    long ms = tv.tv_sec * 1000L + (tv.tv_usec + 999) / 1000;
    return ms > 0x7fffffff ? 0x7fffffff : int(ms);
}

// Still the shared socket this wait began on, and not shut down by this process?
bool still_open(int fd, uint8_t kind) {
    uint8_t st = g.table.get(fd);
    return (st & kKindMask) == kind && !(st & kShut);
}

} // namespace

int64_t mono_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void wake_local() {
    int fd = g.local_wake.load(std::memory_order_acquire);
    if (fd < 0) return;
    ErrnoGuard keep;
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

Wait wait_readable(int fd, bool draining) {
    const uint8_t kind = g.table.kind(fd);
    const Remaining remaining(receive_timeout_ms(fd));
    // The local wake-up stays readable once written; after it fired for another socket this wait goes
    // on in short slices, re-checking its own socket, instead of spinning.
    bool sliced = false;
    // The launcher writes the wake-up just before it raises the drain flag (see Supervisor::pause()): a
    // waiter woken in between waits for the flag in 1 ms slices, still taking connections the listener
    // has, rather than reserving and accepting for nothing, again and again, while the launcher counts.
    bool preparing = false;
    for (;;) {
        const int left = remaining.left();
        if (preparing && g.acct.draining()) return W_READY; // the caller's reservation now fails
        pollfd p[3];
        nfds_t n = 0;
        if (!draining) {
            p[n++] = {fd, POLLIN, 0};
            if (!preparing) p[n++] = {g.wake.load(std::memory_order_acquire), POLLIN, 0};
        }
        const nfds_t local = n;
        if (!sliced) p[n++] = {g.local_wake.load(std::memory_order_acquire), POLLIN, 0};
        // Wake at least once a second to close inherited sockets the launcher released meanwhile, and
        // every kDrainSliceMs while draining (see wait_outcome()).
        const int slice = preparing ? 1 : sliced ? 100 : draining ? drain_slice(-1) : 1000;
        const int wait = (left < 0 || left > slice) ? slice : left;
        int r = real_poll(n ? p : nullptr, n, wait);
        if (r < 0) return errno == EINTR ? W_EINTR : W_READY;
        if (!still_open(fd, kind)) return W_GONE;
        if (r == 0) {
            if (left >= 0 && left <= slice) return W_TIMEOUT;
            if (draining) {
                if (!g.acct.draining()) return W_READY; // resumed (rollback window): accept again
                if (g.acct.standby()) continue;         // standing by: no slice to report
                return W_SLICE;
            }
            if (released_pending()) close_released();
            continue;
        }
        if (!sliced && p[local].revents) {
            sliced = true;
            if (r == 1) continue;
        }
        if (!draining && !preparing && p[1].revents && !p[0].revents && !g.acct.draining()) {
            preparing = true;
            continue;
        }
        return W_READY;
    }
}

int wait_outcome(Wait w, int fd, bool draining_accept) {
    switch (w) {
    case W_READY: return 0;
    case W_TIMEOUT: return EAGAIN;
    case W_GONE: return (g.table.get(fd) & kShut) ? EINVAL : EBADF;
    case W_EINTR:
        if (draining_accept) return ECONNABORTED;
        return interrupted_for_program() ? EINTR : 0;
    case W_SLICE: return interrupted_for_program() ? EINTR : 0;
    }
    return 0;
}

void close_released() {
    ErrnoGuard keep;
    uint32_t seq = g.acct.shared->released_seq.load(std::memory_order_acquire);
    if (g.released_done.exchange(seq) == seq) return;
    for (int i = 0; i < g.ninherited; ++i) {
        if (g.inherited[i].claimed.load() || !shared_released(g.acct.shared, i)) continue;
        int expected = 0;
        if (!g.inherited[i].claimed.compare_exchange_strong(expected, 1)) continue;
        int fd = g.inherited[i].fd.exchange(-1);
        if (fd < 0) continue;
        g.table.set(fd, FD_NONE);
        real_close(fd);
    }
}

bool is_shared_unix_path(const char *path, bool unclaimed_only) {
    if (!path || !g.active.load(std::memory_order_acquire)) return false;
    // Every shared unix socket with a path, inherited ones included, is in unix_paths: none, nothing to scan
    // (a connect() to a unix path must not cost a walk over a thousand inherited TCP sockets).
    if (__atomic_load_n(&g.nunix, __ATOMIC_ACQUIRE) == 0) return false;
    if (unclaimed_only) {
        for (int i = 0; i < g.ninherited; ++i) {
            const SockKey &k = g.inherited[i].key;
            if (k.family != AF_UNIX || g.inherited[i].claimed.load()) continue;
            const char *kp = reinterpret_cast<const sockaddr_un &>(k.addr).sun_path;
            if (kp[0] && strncmp(kp, path, sizeof(sockaddr_un::sun_path)) == 0) return true;
        }
        return false;
    }
    int n = __atomic_load_n(&g.nunix, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; ++i)
        if (strncmp(g.unix_paths[i], path, sizeof g.unix_paths[i]) == 0) return true;
    return false;
}

void add_shared_unix_path(const SockKey &k) {
    if (k.family != AF_UNIX) return;
    const char *kp = reinterpret_cast<const sockaddr_un &>(k.addr).sun_path;
    if (!kp[0] || is_shared_unix_path(kp, false)) return; // abstract names have no file to protect
    int i = __atomic_fetch_add(&g.nunix, 0, __ATOMIC_ACQUIRE);
    if (i >= kMaxInherited) return;
    size_t n = strnlen(kp, sizeof g.unix_paths[i] - 1);
    memcpy(g.unix_paths[i], kp, n);
    g.unix_paths[i][n] = '\0';
    __atomic_store_n(&g.nunix, i + 1, __ATOMIC_RELEASE);
}

namespace {

// Our own path, to take ourselves out of LD_PRELOAD for processes that must not see the shim.
const char *own_path() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&own_path), &info) && info.dli_fname) return info.dli_fname;
    return nullptr;
}

// Removes our LD_PRELOAD entry from the main process's environment once the shim is active: what it starts
// runs without the shim (an exec of its own puts it back, see process.cc).
void strip_environment() {
    const char *pre = getenv("LD_PRELOAD");
    const char *self = own_path();
    if (!pre || !self) return;
    char out[4096];
    size_t o = 0;
    const char *p = pre;
    while (*p) {
        while (*p == ' ' || *p == ':') ++p;
        const char *q = p;
        while (*q && *q != ' ' && *q != ':') ++q;
        size_t n = size_t(q - p);
        if (n && !(strlen(self) == n && memcmp(self, p, n) == 0)) {
            if (o + n + 2 > sizeof out) return; // too long to rewrite: leave it alone
            if (o) out[o++] = ' ';
            memcpy(out + o, p, n);
            o += n;
        }
        p = q;
    }
    out[o] = '\0';
    if (o) setenv("LD_PRELOAD", out, 1);
    else unsetenv("LD_PRELOAD");
}

// Reads what the kernel says about an inherited socket. Returns the reason it is unusable, or nullptr.
const char *probe_socket(int fd, SockKey *key) {
    struct stat st;
    if (fstat(fd, &st) < 0) return "not open";
    if (!S_ISSOCK(st.st_mode)) return "not a socket";
    int type = 0, acceptconn = 0, v6only = 0;
    socklen_t l = sizeof type;
    if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) return "SO_TYPE failed";
    if (type != SOCK_STREAM && type != SOCK_SEQPACKET && type != SOCK_DGRAM) return "unsupported socket type";
    l = sizeof acceptconn;
    if (real_getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acceptconn, &l) < 0) return "SO_ACCEPTCONN failed";
    if (type != SOCK_DGRAM && !acceptconn) return "not listening";
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (real_getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl) < 0) return "getsockname failed";
    if (ss.ss_family == AF_INET6) {
        l = sizeof v6only;
        if (real_getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) < 0) return "IPV6_V6ONLY failed";
    }
    if (!key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, type, v6only, key)) return "unnamed socket";
    return nullptr;
}

// The control socket must be a SEQPACKET socket whose peer is the launcher named in the variable.
const char *probe_ctl(int fd, int launcher_pid) {
    int type = 0;
    socklen_t l = sizeof type;
    if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) return "ctl is not a socket";
    if (type != SOCK_SEQPACKET) return "ctl is not a seqpacket socket";
    ucred cr;
    l = sizeof cr;
    if (real_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0) return "ctl has no peer";
    if (cr.pid != launcher_pid) return "ctl peer is not the launcher";
    return nullptr;
}

const char *probe_wake(int fd) {
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) return "wake is not open";
    link[n] = '\0';
    if (strcmp(link, "anon_inode:[eventfd]") != 0) return "wake is not an eventfd";
    return nullptr;
}

const char *map_shared(int fd, Shared **out) {
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return "shm is not a memfd";
    if (size_t(st.st_size) != kSharedSize) return "shm has the wrong size";
    void *p = mmap(nullptr, kSharedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return "shm cannot be mapped";
    auto *s = static_cast<Shared *>(p);
    if (s->magic != kMagic || s->version != kProtocolVersion) {
        munmap(p, kSharedSize);
        return "shm has a bad header";
    }
    *out = s;
    return nullptr;
}

// Puts a private descriptor above the range programs use, close-on-exec. Returns the new number.
int relocate(int fd) {
    static const long bases[] = {900, 200, 64, 10};
    for (long base : bases) {
        int nfd = real_fcntl(fd, F_DUPFD_CLOEXEC, reinterpret_cast<void *>(base));
        if (nfd >= 0) {
            real_close(fd);
            return nfd;
        }
    }
    real_fcntl(fd, F_SETFD, reinterpret_cast<void *>(long(FD_CLOEXEC)));
    return fd;
}

// A process-private eventfd for wake_local(), kept out of the program's way like the other private fds.
void make_local_wake() {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return;
    fd = relocate(fd);
    g.table.set(fd, FD_PRIVATE);
    g.local_wake.store(fd, std::memory_order_release);
}

// The launcher also gives the generation its sockets by convention (descriptors from 3 up, LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES, SERVER_STARTER_PORT) for programs the shim cannot run in. Where it runs, it
// has taken those descriptors as its inherited sockets and moved them away at start-up, before the
// program's first instruction: the program's bind() adopts them as always, and the variables, which would
// now name closed descriptors, go too (what sd_listen_fds(1) does once it has read them).
void forget_conventions(const Config &cfg) {
    const char *pid = getenv("LISTEN_PID");
    if (!pid || cfg.nfds == 0) return;
    long p = strtol(pid, nullptr, 10);
    if (p != long(getpid())) return;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    unsetenv("SERVER_STARTER_PORT");
}

void after_fork_child() {
    if (!g.active.load(std::memory_order_acquire)) return;
    g.owner_pid.store(int(getpid()));
    g.acct.claim_slot(int32_t(getpid()));
    g.accepting.store(false);
    g.idle_hinted.store(false);
    if (released_pending()) close_released();
    // The parent's wake-up is not ours: shutting a socket down there must not wake us, nor the reverse.
    int old = g.local_wake.exchange(-1);
    if (old >= 0) {
        g.table.set(old, FD_NONE);
        real_close(old);
    }
    make_local_wake();
}

// After an exec by the main process: the sockets as the image before this one numbered them
// (Shared::exec_state), in place of the launcher's list. Read once, then cleared.
void take_exec_state(Shared *shared, Config *cfg) {
    char text[kExecStateLen];
    memcpy(text, shared->exec_state, sizeof text);
    text[sizeof text - 1] = '\0';
    if (!text[0]) return;
    memset(shared->exec_state, 0, sizeof shared->exec_state);
    Config prev;
    char err[64];
    if (!config_decode(text, &prev, err, sizeof err)) {
        log_line("warning", "ignoring the sockets left by the image before this one (%s)", err);
        return;
    }
    if (prev.nfds != cfg->nfds) {
        log_line("warning", "ignoring the sockets left by the image before this one (%d listed, %d inherited)",
                 prev.nfds, cfg->nfds);
        return;
    }
    for (int i = 0; i < prev.nfds; ++i) cfg->fds[i] = prev.fds[i];
    cfg->nown = prev.nown;
    for (int i = 0; i < prev.nown; ++i) {
        cfg->own[i] = prev.own[i];
        cfg->own_kind[i] = prev.own_kind[i];
    }
}

void activate(Config cfg) {
    char why[96];
    const char *bad = probe_ctl(cfg.ctl, cfg.launcher_pid);
    if (!bad) bad = probe_wake(cfg.wake);
    Shared *shared = nullptr;
    if (!bad) bad = map_shared(cfg.shm, &shared);
    if (shared) take_exec_state(shared, &cfg);
    for (int i = 0; !bad && i < cfg.nown; ++i) {
        SockKey k;
        bad = probe_socket(cfg.own[i], &k);
        if (!bad && (k.type == SOCK_DGRAM) != (cfg.own_kind[i] == 'd' || cfg.own_kind[i] == 'D')) bad = "wrong kind";
        if (bad) {
            snprintf(why, sizeof why, "own fd %d: %s", cfg.own[i], bad);
            bad = why;
        }
    }
    // An inherited socket that is not what it should be is set aside (never adopted, so the program's
    // bind() is a real one); it does not disable hot restart for the others.
    // They are probed straight into the table of inherited sockets, as long as this generation's list
    // (none: nothing mapped), kept off the stack: a thousand keys are 150 kB.
    Inherited *inherited = nullptr;
    if (!bad && cfg.nfds > 0) {
        void *t = mmap(nullptr, sizeof(Inherited) * size_t(cfg.nfds), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (t == MAP_FAILED) bad = "cannot map the table of inherited sockets";
        else inherited = static_cast<Inherited *>(t);
        for (int i = 0; inherited && i < cfg.nfds; ++i) new (&inherited[i]) Inherited;
    }
    bool unusable[kMaxInherited] = {};
    for (int i = 0; !bad && i < cfg.nfds; ++i) {
        if (cfg.fds[i] < 0) continue;
        if (const char *why_not = probe_socket(cfg.fds[i], &inherited[i].key)) {
            log_line("warning", "inherited fd %d ignored: %s", cfg.fds[i], why_not);
            unusable[i] = true;
        }
    }
    // The fd table covers every number the process may open (up to the hard limit, at most 1M), mapped
    // lazily: untouched pages cost nothing.
    rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max > n) n = rl.rlim_max;
    if (n > size_t(kMaxFdNumber)) n = kMaxFdNumber;
    void *mem = MAP_FAILED;
    if (!bad) {
        mem = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) bad = "cannot map the fd table";
    }
    if (bad) {
        log_line("warning", "hot restart disabled: %s", bad);
        if (shared) munmap(shared, kSharedSize);
        if (inherited) munmap(inherited, sizeof(Inherited) * size_t(cfg.nfds));
        // Pass-through: the private descriptors are closed (close-on-exec from the start, they never
        // reached anything else), and the inherited sockets do not reach programs this one starts.
        const int mine[] = {cfg.ctl, cfg.wake, cfg.shm};
        for (int fd : mine) real_close(fd);
        for (int i = 0; i < cfg.nfds; ++i)
            if (cfg.fds[i] >= 0) real_fcntl(cfg.fds[i], F_SETFD, reinterpret_cast<void *>(long(FD_CLOEXEC)));
        return;
    }
    g.cfg = cfg;
    g.owner_pid.store(int(getpid()));
    if (const char *self = own_path()) {
        size_t len = strnlen(self, sizeof g.self_path - 1);
        memcpy(g.self_path, self, len);
    }
    g.table.attach(mem, n);
    g.ctl.store(relocate(cfg.ctl));
    g.wake.store(relocate(cfg.wake));
    g.shm.store(relocate(cfg.shm));
    g.table.set(g.ctl.load(), FD_PRIVATE);
    g.table.set(g.wake.load(), FD_PRIVATE);
    g.table.set(g.shm.load(), FD_PRIVATE);
    g.inherited = inherited;
    g.ninherited = cfg.nfds;
    for (int i = 0; i < cfg.nfds; ++i) {
        Inherited &in = g.inherited[i];
        if (cfg.fds[i] < 0 || unusable[i]) {
            // Already claimed before a re-exec, or unusable: never adopted. An unusable one is still
            // closed away from the program's numbers (it is the launcher's, not the program's).
            in.claimed.store(1);
            in.reported.store(1);
            if (cfg.fds[i] >= 0) real_close(cfg.fds[i]);
            continue;
        }
        add_shared_unix_path(in.key);
        int nfd = relocate(cfg.fds[i]);
        in.fd.store(nfd);
        g.table.set(nfd, FD_PRIVATE);
    }
    // After a re-exec: the program's own shared sockets, as they were before it.
    for (int i = 0; i < cfg.nown; ++i) {
        char k = cfg.own_kind[i];
        uint8_t kind = (k == 'l' || k == 'L') ? FD_LISTENER : FD_DGRAM;
        g.table.set(cfg.own[i], uint8_t(kind | ((k == 'L' || k == 'D') ? kWantNonblock : 0)));
        SockKey key;
        if (!probe_socket(cfg.own[i], &key)) add_shared_unix_path(key);
    }
    make_local_wake();
    load_instance_locks();
    g.acct.attach(shared);
    g.acct.claim_slot(int32_t(getpid()));
    pthread_atfork(nullptr, nullptr, after_fork_child);
    strip_environment();
    forget_conventions(cfg);
    g.active.store(true, std::memory_order_release);
    send_msg(MSG_HELLO, 0, 0, nullptr, 0, -1);
    if (cfg.verbose >= 1) {
        char keybuf[128];
        for (int i = 0; i < g.ninherited; ++i)
            if (g.inherited[i].fd.load() >= 0)
                log_line("info", "generation %d: inherited %s as fd %d", cfg.gen,
                         key_format(g.inherited[i].key, keybuf, sizeof keybuf), g.inherited[i].fd.load());
    }
}

// The rendezvous (shim/protocol.h). RV_NONE: our parent is no launcher, or it does not know us as the main
// process of a generation: a pure pass-through, silently. RV_FAILED: a launcher is there but the exchange
// failed, *why says how. RV_OK: *cfg is the configuration, with ctl, wake and shm the descriptors received
// (close-on-exec from the start). Bounded: kRendezvousWaitMs for the connection, as much for the answer.
enum Rendezvous { RV_NONE, RV_FAILED, RV_OK };

Rendezvous rendezvous(Config *cfg, const char **why) {
    const pid_t ppid = getppid();
    if (ppid <= 0) return RV_NONE; // 1 may be a launcher too: a container's entrypoint
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0) return RV_NONE; // no Unix sockets here (a sandbox): nothing to talk to
    timeval tv{kRendezvousWaitMs / 1000, (kRendezvousWaitMs % 1000) * 1000};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); // bounds a connect() to a full backlog
    sockaddr_un a;
    socklen_t alen = rendezvous_address(int(ppid), &a);
    int r;
    do {
        r = real_connect(s, reinterpret_cast<sockaddr *>(&a), alen);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        const int e = errno;
        real_close(s);
        if (e == ECONNREFUSED || e == ENOENT) return RV_NONE; // nobody listens there: not under a launcher
        *why = e == EAGAIN ? "the launcher's rendezvous did not accept in time" : "cannot reach the launcher's rendezvous";
        return RV_FAILED;
    }
    // Anyone may bind an abstract name; only our parent's socket is the launcher's.
    ucred cr{};
    socklen_t l = sizeof cr;
    if (real_getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || cr.pid != ppid) {
        real_close(s);
        *why = "the rendezvous is held by a process other than our parent";
        return RV_FAILED;
    }
    const Remaining remaining(kRendezvousWaitMs);
    for (;;) {
        pollfd p{s, POLLIN, 0};
        int left = remaining.left();
        int n = real_poll(&p, 1, left);
        if (n > 0) break;
        if (n == 0 || (n < 0 && errno != EINTR)) {
            real_close(s);
            *why = "the launcher did not answer at the rendezvous in time";
            return RV_FAILED;
        }
    }
    char text[kExecStateLen];
    iovec iov{text, sizeof text - 1};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(4 * sizeof(int))];
    msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n;
    do {
        n = real_recvmsg(s, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    real_close(s);
    int fds[4];
    int nfds = 0;
    for (cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : nullptr; c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = int((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && nfds < 4; ++i) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    auto fail = [&](const char *what) {
        for (int i = 0; i < nfds; ++i) real_close(fds[i]);
        *why = what;
        return RV_FAILED;
    };
    if (n == 0) return RV_NONE; // closed without an answer: not a generation's main process
    if (n < 0) return fail("no answer at the rendezvous");
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds != 3) return fail("a malformed answer at the rendezvous");
    text[n] = '\0';
    char err[64];
    if (!config_decode(text, cfg, err, sizeof err)) return fail("a configuration that does not decode at the rendezvous");
    if (cfg->main_pid != int(getpid()) || cfg->launcher_pid != int(ppid))
        return fail("an answer at the rendezvous meant for another process");
    cfg->ctl = fds[0];
    cfg->wake = fds[1];
    cfg->shm = fds[2];
    return RV_OK;
}

__attribute__((constructor)) void shim_init() {
    ErrnoGuard keep;
    libc_resolve_all();
    Config cfg;
    const char *why = "";
    switch (rendezvous(&cfg, &why)) {
    case RV_NONE: return; // not a generation's main process: pure pass-through, silently
    case RV_FAILED: log_line("warning", "hot restart disabled: %s", why); return;
    case RV_OK: break;
    }
    activate(cfg);
}

__attribute__((destructor)) void shim_fini() {
    // exit(): the kernel is about to close every connection this process holds. Other threads still run
    // (the rest of exit() may take a while): the shim stays active, and they take no connection (see
    // Accounting::leave()).
    if (!g.active.load() || !owner()) return;
    if (g.acct.leave()) send_idle();
}

} // namespace
} // namespace hr
