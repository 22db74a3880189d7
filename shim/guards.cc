// What a server does to make sure it is the only instance, answered for a new generation whose older
// generations still run: kill(pid, 0) of a pid its pid file names, and non-blocking locks on a pid or lock
// file. Also the reporting of adopted sockets that were never listen()ed on, and the addresses this process
// shared (for a draining generation's bind(), sockets.cc).
//
// Everything here reads /proc with open/read/close and stack buffers only: no malloc, no lock, no stdio.
#include "core.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {

void report_adopted() {
    ErrnoGuard keep;
    for (int i = 0; i < g.ninherited; ++i) {
        Inherited &in = g.inherited[i];
        const int fd = in.prog_fd.load();
        if (fd < 0 || in.key.type == SOCK_DGRAM) continue;
        int expected = 0;
        if (!in.reported.compare_exchange_strong(expected, 1)) continue;
        g.unreported.fetch_sub(1);
        if (g.table.kind(fd) != FD_LISTENER) continue; // closed again before it was used: nothing to claim
        HR_DEBUG("fd %d: in use without listen(): reporting inherited socket %d claimed", fd, i);
        send_msg(MSG_CLAIMED, i, 0, nullptr, 0, -1);
    }
}

void remember_key(const SockKey &k) {
    if (known_key(k)) return;
    int i = __atomic_load_n(&g.nshared_keys, __ATOMIC_ACQUIRE);
    if (i >= kMaxInherited) return;
    g.shared_keys[i] = k;
    g.shared_key_pid[i] = int(getpid());
    __atomic_store_n(&g.nshared_keys, i + 1, __ATOMIC_RELEASE);
}

bool known_key(const SockKey &k) {
    for (int i = 0; i < g.ninherited; ++i)
        if (key_match(g.inherited[i].key, k)) return true;
    const int n = __atomic_load_n(&g.nshared_keys, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; ++i)
        if (key_match(g.shared_keys[i], k)) return true;
    return false;
}

bool registered_here(const sockaddr *name, socklen_t len) {
    const int n = __atomic_load_n(&g.nshared_keys, __ATOMIC_ACQUIRE);
    const int self = int(getpid());
    for (int i = 0; i < n; ++i) {
        const SockKey &k = g.shared_keys[i];
        SockKey c;
        if (g.shared_key_pid[i] == self && k.type != SOCK_DGRAM &&
            key_from_sockaddr(name, len, k.type, k.v6only, &c) && key_match(c, k))
            return true;
    }
    return false;
}

void load_instance_locks() {
    const char *v = getenv("HOTRESTART_INSTANCE_LOCKS");
    if (!v) return;
    size_t n = strnlen(v, sizeof g.instance_locks);
    if (n >= sizeof g.instance_locks) log_line("warning", "HOTRESTART_INSTANCE_LOCKS is too long: ignored");
    else memcpy(g.instance_locks, v, n);
    // Ours, not the program's: its children do not get it (the main process's own re-exec gets it back,
    // process.cc).
    unsetenv("HOTRESTART_INSTANCE_LOCKS");
}

namespace {

// Parses an unsigned decimal number at p; advances p.
unsigned long long number(const char *&p) {
    unsigned long long v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + unsigned(*p++ - '0');
    return v;
}

// The process group and start time (clock ticks since boot) of pid, from /proc/PID/stat.
bool proc_stat(pid_t pid, pid_t *pgrp, unsigned long long *start) {
    char path[40], buf[1024];
    char *w = path;
    const char pre[] = "/proc/";
    memcpy(w, pre, sizeof pre - 1);
    w += sizeof pre - 1;
    char digits[16];
    int nd = 0;
    for (unsigned v = unsigned(pid); v || !nd; v /= 10) digits[nd++] = char('0' + v % 10);
    while (nd) *w++ = digits[--nd];
    memcpy(w, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = real_read(fd, buf, sizeof buf - 1);
    real_close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); // the command name may contain anything but ends before the last ')'
    if (!p) return false;
    ++p;
    // Fields after the name: 3 state, 4 ppid, 5 pgrp, ... 22 starttime.
    for (int field = 3; field <= 22; ++field) {
        while (*p == ' ') ++p;
        if (!*p) return false;
        if (field == 5) *pgrp = pid_t(number(p));
        else if (field == 22) *start = number(p);
        else while (*p && *p != ' ') ++p;
    }
    return true;
}

bool any_older() {
    Shared *s = g.acct.shared;
    if (!s) return false;
    for (auto &o : s->older)
        if (o.pid.load(std::memory_order_acquire)) return true;
    return false;
}

// pid is (still) a process of an older generation of this launcher: its main process, or a process of its
// process group that started after it. Start times make a reused pid never match; a group number can only
// be reused once that group is empty, and the launcher clears the entry when its main process is reaped.
int older_generation_of(pid_t pid) {
    if (pid <= 0 || pid == getpid() || !any_older()) return 0;
    pid_t pgrp = 0;
    unsigned long long start = 0;
    if (!proc_stat(pid, &pgrp, &start)) return 0;
    for (auto &o : g.acct.shared->older) {
        const int32_t op = o.pid.load(std::memory_order_acquire);
        const unsigned long long os = o.start.load(std::memory_order_acquire);
        if (!op) continue;
        if ((op == pid && os == start) || (op == pgrp && start >= os)) return op;
    }
    return 0;
}

// A lock held by holder is an older generation's: one of its processes took it, or the launcher did when
// it handed an --instance-lock over to a generation (it takes no other lock).
bool older_lock(pid_t holder) {
    return holder > 0 && (holder == g.cfg.launcher_pid || older_generation_of(holder) != 0);
}

// The pid that holds a lock on the file open at fd, from /proc/locks (0: none found or unknown, e.g. an
// open-file-description lock, which has no pid).
pid_t lock_holder(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return 0;
    int lf = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    if (lf < 0) return 0;
    char buf[4096];
    size_t have = 0;
    pid_t found = 0;
    for (;;) {
        ssize_t n = real_read(lf, buf + have, sizeof buf - 1 - have);
        if (n <= 0) break;
        have += size_t(n);
        buf[have] = '\0';
        char *line = buf;
        for (char *nl; (nl = strchr(line, '\n')) != nullptr; line = nl + 1) {
            *nl = '\0';
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->" after the id.
            const char *p = strchr(line, ':');
            if (!p || strstr(line, "->")) continue;
            ++p;
            int words = 0;
            while (*p && words < 3) { // kind, mode, access
                while (*p == ' ') ++p;
                while (*p && *p != ' ') ++p;
                ++words;
            }
            while (*p == ' ') ++p;
            if (*p == '-') continue; // no pid
            const unsigned long long pid = number(p);
            while (*p == ' ') ++p;
            char *end;
            const unsigned long maj = strtoul(p, &end, 16);
            if (*end != ':') continue;
            const unsigned long min = strtoul(end + 1, &end, 16);
            if (*end != ':') continue;
            p = end + 1;
            const unsigned long long ino = number(p);
            if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == st.st_ino && pid) {
                found = pid_t(pid);
                break;
            }
        }
        if (found) break;
        have = strlen(line);
        if (have >= sizeof buf - 1) have = 0; // a line longer than the buffer: not one of ours
        memmove(buf, line, have);
    }
    real_close(lf);
    return found;
}

// The file open at fd is one the launcher was told is a single-instance guard (--instance-lock).
bool instance_lock(int fd) {
    struct stat st, named;
    if (!g.instance_locks[0] || fstat(fd, &st) < 0) return false;
    char path[sizeof g.instance_locks];
    for (const char *p = g.instance_locks; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? size_t(e - p) : strlen(p);
        memcpy(path, p, n);
        path[n] = '\0';
        if (n && stat(path, &named) == 0 && named.st_dev == st.st_dev && named.st_ino == st.st_ino) return true;
        p += n + (e ? 1 : 0);
    }
    return false;
}

// Tells the launcher that a lock on the file at fd is held by holder, a process of an older generation.
void report_locked(int fd, pid_t holder) {
    sockaddr_un where;
    memset(&where, 0, sizeof where);
    where.sun_family = AF_UNIX;
    char self[40] = "/proc/self/fd/";
    char *w = self + strlen(self);
    char digits[16];
    int nd = 0;
    for (unsigned v = unsigned(fd); v || !nd; v /= 10) digits[nd++] = char('0' + v % 10);
    while (nd) *w++ = digits[--nd];
    *w = '\0';
    ssize_t n = readlink(self, where.sun_path, sizeof where.sun_path - 1);
    if (n < 0) n = 0;
    send_msg(MSG_LOCKED, int32_t(holder), 0, reinterpret_cast<sockaddr *>(&where),
             socklen_t(offsetof(sockaddr_un, sun_path) + size_t(n) + 1), -1);
}

} // namespace

int policy_setlk(int fd, int cmd, void *arg) {
    int r = real_fcntl(fd, cmd, arg);
    if (r == 0 || (errno != EAGAIN && errno != EACCES) || !g.active.load(std::memory_order_acquire) || !owner())
        return r;
    ErrnoGuard keep;
    const auto *fl = static_cast<const struct flock *>(arg);
    if (!fl || fl->l_type == F_UNLCK) return r;
    pid_t holder = lock_holder(fd);
    if (older_lock(holder)) report_locked(fd, holder);
    return r;
}

} // namespace hr

// kill(pid, 0) is how a server asks whether the process its pid file names still runs. In a generation with
// older generations still running, one of their processes "does not exist" (ESRCH): they are this
// server's previous instance, handing over, not another one. Every other pid and every real signal is
// answered by the kernel.
HR_EXPORT int kill(pid_t pid, int sig) {
    if (sig != 0 || pid <= 0 || !hr::g.active.load(std::memory_order_acquire)) return hr::real_kill(pid, sig);
    int r = hr::real_kill(pid, 0);
    if (r < 0) return r;
    hr::ErrnoGuard keep;
    if (int gen_pid = hr::older_generation_of(pid)) {
        HR_DEBUG("kill(%d, 0): a process of an older generation (main pid %d): ESRCH", int(pid), gen_pid);
        keep.saved = ESRCH;
        return -1;
    }
    return r;
}

// flock(LOCK_EX|LOCK_NB) failing because an older generation holds the lock: on a file named with
// --instance-lock the lock is handed over (the launcher takes it on this very open file once the older
// generation is gone: from then on this process holds it) and the call succeeds; on any other file it
// fails as the kernel says, and the launcher is told, so that a rollback names the lock.
HR_EXPORT int flock(int fd, int op) {
    const int before = errno;
    int r = hr::real_flock(fd, op);
    if (r == 0 || !(op & LOCK_NB) || errno != EWOULDBLOCK || !hr::g.active.load(std::memory_order_acquire) ||
        !hr::owner())
        return r;
    hr::ErrnoGuard keep;
    pid_t holder = hr::lock_holder(fd);
    if (!hr::older_lock(holder)) return r;
    if ((op & LOCK_EX) && hr::instance_lock(fd)) {
        hr::send_msg(hr::MSG_LOCK_HANDOVER, int32_t(holder), 0, nullptr, 0, fd);
        HR_DEBUG("flock(%d): held by pid %d of an older generation: handed over when it is gone", fd, int(holder));
        keep.saved = before;
        return 0;
    }
    hr::report_locked(fd, holder);
    return r;
}
