// bind() and listen(): where a new generation takes over the old generation's listening sockets, and
// where a first generation's listeners become known to the launcher.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {
namespace {

// Marks a socket the launcher shares as really non-blocking, remembering what the program believes in the
// table instead (PITFALLS 2: O_NONBLOCK lives on the shared open file description). Blocking accept() is
// then emulated per process, which also lets a drain wake it.
void share_socket(int fd, int prog_flags, uint8_t kind) {
    uint8_t want = (prog_flags & O_NONBLOCK) ? kWantNonblock : 0;
    int shared_flags = real_fcntl(fd, F_GETFL, nullptr);
    if (shared_flags >= 0 && !(shared_flags & O_NONBLOCK))
        real_fcntl(fd, F_SETFL, reinterpret_cast<void *>(long(shared_flags | O_NONBLOCK)));
    g.table.set(fd, uint8_t(kind | want));
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
    share_socket(fd, flflags, in.key.type == SOCK_DGRAM ? FD_DGRAM : FD_LISTENER);
    if (in.key.type != SOCK_DGRAM) g.unreported.fetch_add(1);
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
    if (candidate) {
        int i = claim_inherited(key);
        if (i >= 0) {
            if (adopt(i, fd)) {
                HR_DEBUG("bind(%d): took over inherited socket %d", fd, i);
                // A datagram socket is ready as soon as it is bound; a stream socket when it listens.
                if (type == SOCK_DGRAM) {
                    g.inherited[i].reported.store(1);
                    send_msg(MSG_CLAIMED, i, 0, nullptr, 0, -1);
                }
                return 0;
            }
            g.inherited[i].claimed.store(0);
        }
        // A generation drained for good that binds an address it shared again (a master restarting a
        // child while it stops) would get EADDRINUSE: a newer generation holds the socket. It accepts and
        // receives nothing any more, so the socket it gets need not be bound: it stays the program's own,
        // unbound, and is treated as a shared one (accept() waits as on an idle socket, listen() is a no-op).
        if (g.acct.shared && g.acct.shared->draining.load(std::memory_order_seq_cst) == kDraining && known_key(key)) {
            int flflags = real_fcntl(fd, F_GETFL, nullptr);
            if (flflags >= 0) {
                share_socket(fd, flflags, type == SOCK_DGRAM ? FD_DGRAM : FD_LISTENER);
                HR_DEBUG("bind(%d): draining: given a stand-in for a shared address", fd);
                return 0;
            }
        }
    }
    int r = real_bind(fd, addr, len);
    if (r < 0) {
        keep.saved = errno;
        // Only the launcher can put this in context ("port in use" while starting generation N).
        if (candidate) send_msg(MSG_BINDFAIL, 0, errno, addr, len, -1);
    } else if (candidate && type == SOCK_DGRAM) {
        // A bound datagram socket is shared from now on, like a listener after listen().
        int flflags = real_fcntl(fd, F_GETFL, nullptr);
        if (flflags >= 0) {
            share_socket(fd, flflags, FD_DGRAM);
            add_shared_unix_path(key);
            remember_key(key);
            send_msg(MSG_REGISTER, 0, 0, nullptr, 0, fd);
        }
    }
    return r;
}

int policy_listen(int fd, int backlog) {
    if (!g.active.load(std::memory_order_acquire) || !g.table.in_range(fd)) return real_listen(fd, backlog);
    uint8_t kind = g.table.kind(fd);
    if (kind == FD_LISTENER) {
        // Already listening and shared: a second listen() would change the backlog under every holder
        // (PITFALLS 3), so it is a no-op; after this process's own shutdown() it resumes accepting (what
        // listen() does on a socket that stopped listening). The first listen() on an adopted socket
        // reports the claim.
        uint8_t st = g.table.get(fd);
        if (st & kShut) g.table.set(fd, uint8_t(st & ~kShut));
        for (int i = 0; i < g.ninherited; ++i) {
            Inherited &in = g.inherited[i];
            if (in.prog_fd.load() != fd) continue;
            int expected = 0;
            if (in.reported.compare_exchange_strong(expected, 1)) {
                g.unreported.fetch_sub(1);
                send_msg(MSG_CLAIMED, i, 0, nullptr, 0, -1);
            }
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
    share_socket(fd, flflags, FD_LISTENER);
    add_shared_unix_path(key);
    if (ss.ss_family == AF_INET6) { // the key a later bind() of this address makes includes V6ONLY
        int v6only = 0;
        socklen_t vl = sizeof v6only;
        if (real_getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vl) == 0)
            key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, type, v6only, &key);
    }
    remember_key(key);
    send_msg(MSG_REGISTER, 0, 0, nullptr, 0, fd);
    HR_DEBUG("listen(%d): registered with the launcher", fd);
    return r;
}

// shutdown(SHUT_RD/SHUT_RDWR) and connect(AF_UNSPEC) stop a listening socket for every holder (PITFALLS 3):
// the old generation doing this at exit would stop the new one. For a shared listener they only stop it
// for this process: accept() fails with EINVAL from then on, and threads waiting in accept() wake up.
int stop_listening_here(int fd) {
    uint8_t st = g.table.get(fd);
    g.table.set(fd, uint8_t(st | kShut));
    wake_local();
    HR_DEBUG("fd %d: shut down for this process only", fd);
    return 0;
}

int policy_shutdown(int fd, int how) {
    if (g.table.kind(fd) != FD_LISTENER || !g.active.load(std::memory_order_acquire) ||
        (how != SHUT_RD && how != SHUT_RDWR))
        return real_shutdown(fd, how);
    return stop_listening_here(fd);
}

int policy_connect(int fd, const sockaddr *addr, socklen_t len) {
    if (!g.active.load(std::memory_order_acquire) || addr == nullptr || len < sizeof(sa_family_t))
        return real_connect(fd, addr, len);
    if (addr->sa_family == AF_UNSPEC && g.table.kind(fd) == FD_LISTENER) return stop_listening_here(fd);
    if (addr->sa_family == AF_UNIX && len > offsetof(sockaddr_un, sun_path)) {
        // A server that probes its own path before binding (lighttpd) would find the inherited socket
        // answering and conclude another server owns it: the socket it is about to adopt is not "in use".
        char path[sizeof(sockaddr_un::sun_path) + 1];
        size_t n = len - offsetof(sockaddr_un, sun_path);
        if (n > sizeof(sockaddr_un::sun_path)) n = sizeof(sockaddr_un::sun_path);
        memcpy(path, reinterpret_cast<const sockaddr_un *>(addr)->sun_path, n);
        path[n] = '\0';
        if (path[0] && is_shared_unix_path(path, true)) {
            errno = ECONNREFUSED;
            return -1;
        }
    }
    return real_connect(fd, addr, len);
}

// The path of a shared unix socket stays in place: clients connect through it while the socket lives on in
// the launcher and the other generation (PITFALLS 6). The program's unlink() of it "succeeds"; the launcher
// removes the path when it finally closes the socket.
// A draining generation deleting, on its way out, a pid file that the new generation has rewritten in
// place (same path in the same configuration: nginx) would leave the new one without its pid file. Such a
// file now names another live process: keep it. Only read while draining, and only small regular files.
bool names_another_live_process(int dirfd, const char *path) {
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return false;
    char buf[32];
    struct stat st;
    ssize_t n = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 32) ? real_read(fd, buf, sizeof buf - 1) : -1;
    real_close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    long pid = 0;
    int i = 0;
    while (buf[i] == ' ') ++i;
    if (buf[i] < '1' || buf[i] > '9') return false;
    for (; buf[i] >= '0' && buf[i] <= '9' && pid < (1L << 30); ++i) pid = pid * 10 + (buf[i] - '0');
    while (buf[i] == ' ' || buf[i] == '\n') ++i;
    if (buf[i] != '\0' || pid == getpid()) return false;
    return kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

int policy_unlinkat(int dirfd, const char *path, int flags, bool at) {
    if (!(flags & AT_REMOVEDIR) && path != nullptr && g.active.load(std::memory_order_acquire)) {
        ErrnoGuard keep;
        if (is_shared_unix_path(path, false)) {
            HR_DEBUG("unlink(%s): kept, the socket is shared", path);
            return 0;
        }
        if (g.acct.draining() && names_another_live_process(at ? dirfd : AT_FDCWD, path)) {
            HR_DEBUG("unlink(%s): kept, it is the pid file of a newer generation", path);
            return 0;
        }
    }
    return at ? real_unlinkat(dirfd, path, flags) : real_unlink(path);
}

} // namespace
} // namespace hr

HR_EXPORT int shutdown(int fd, int how) { return hr::policy_shutdown(fd, how); }
HR_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len) { return hr::policy_connect(fd, addr, len); }
HR_EXPORT int unlink(const char *path) { return hr::policy_unlinkat(AT_FDCWD, path, 0, false); }
HR_EXPORT int unlinkat(int dirfd, const char *path, int flags) { return hr::policy_unlinkat(dirfd, path, flags, true); }

HR_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) { return hr::policy_bind(fd, addr, len); }
HR_EXPORT int listen(int fd, int backlog) { return hr::policy_listen(fd, backlog); }
