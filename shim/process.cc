// Process lifetime: _exit()/_Exit() give back this process's connections at once, so a generation whose
// fork-per-connection children exit without closing still drains immediately. (fork() itself is handled
// with pthread_atfork in core.cc; exit() by the destructor there; a process killed by a signal is found
// dead by the launcher, which then ignores its slot.) The shim stays active until the process is gone:
// its other threads still run while it exits, and must neither take a connection (it would be reset)
// nor stop a shared socket (PITFALLS 3) in that window.
// The exec family is below.
#include "core.h"
#include "elfkind.h"
#include "libc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

namespace hr {
namespace {

void leaving() {
    // A vfork()ed child calling _exit() (after a failed exec) must not touch its parent's state.
    if (!g.active.load() || !owner()) return;
    if (g.acct.leave()) send_idle();
}

} // namespace
} // namespace hr

HR_EXPORT void _exit(int status) {
    hr::leaving();
    hr::real__exit(status);
}
HR_EXPORT void _Exit(int status) {
    hr::leaving();
    hr::real__Exit(status);
}

// exec*() by the generation's main process (a wrapper script that execs the server, a server that
// re-execs itself) keeps hot restart: the sockets not yet claimed and the program's own shared sockets
// lose close-on-exec just for the exec, their numbers go into Shared::exec_state, and the environment gets
// the shim back in LD_PRELOAD. The private descriptors stay close-on-exec: the new image fetches them at
// the launcher's rendezvous again (core.cc), so a program that does not run the shim (a static one) never
// holds them, nor do its children. Any other process that execs (a forked CGI child) needs nothing: its
// private descriptors are close-on-exec, and the launcher does not answer it at the rendezvous.
// An exec of a static executable (no ELF interpreter: the shim cannot run in it) is left exactly as the
// program made it: no LD_PRELOAD or variable of ours, no socket of the launcher, so neither it nor its
// children get anything of hotrestart.

namespace hr {
namespace {

struct ExecEnv {
    char **envp = nullptr;
    size_t maplen = 0;
    int fds[2 * kMaxInherited];
    int nfds = 0;
};

bool self_exec() { return g.active.load(std::memory_order_acquire) && getpid() == g.cfg.main_pid; }

// What execvp(file) runs: file itself if it names a path, else the first executable regular file of that
// name in $PATH (glibc's default without one). Into buf; false if none.
bool search_path(const char *file, char *buf, size_t size) {
    size_t fl = strlen(file);
    if (strchr(file, '/')) {
        if (fl >= size) return false;
        memcpy(buf, file, fl + 1);
        return true;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    for (const char *p = path;; ++p) {
        const char *end = strchrnul(p, ':');
        size_t dl = size_t(end - p);
        if (dl + 1 + fl < size) {
            if (dl) memcpy(buf, p, dl);
            else buf[dl++] = '.';
            buf[dl] = '/';
            memcpy(buf + dl + 1, file, fl + 1);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return true;
        }
        if (!*end) return false;
        p = end;
    }
}

bool static_target(const char *path) { return exec_runs_loader(path) == 0; }
bool static_target_file(const char *file) {
    char buf[4096];
    return search_path(file, buf, sizeof buf) && static_target(buf);
}

void set_cloexec(const ExecEnv &e, bool on) {
    for (int i = 0; i < e.nfds; ++i) real_fcntl(e.fds[i], F_SETFD, reinterpret_cast<void *>(long(on ? FD_CLOEXEC : 0)));
}

// Builds the environment of the new image in one anonymous mapping (no malloc: exec may be called from
// a program whose allocator state we must not touch), writes the sockets it keeps into Shared::exec_state
// and opens them for it.
bool prepare(char *const *envp, ExecEnv *out) {
    Config c = g.cfg;
    c.ctl = g.ctl.load();
    c.wake = g.wake.load();
    c.shm = g.shm.load();
    for (int i = 0; i < g.ninherited; ++i) {
        int fd = g.inherited[i].claimed.load() ? -1 : g.inherited[i].fd.load();
        c.fds[i] = fd;
        if (fd >= 0) out->fds[out->nfds++] = fd;
    }
    // The program's own shared sockets that survive the exec (not close-on-exec) stay shared.
    c.nown = 0;
    for (size_t fd = 3; fd < g.table.size && c.nown < kMaxInherited; ++fd) {
        uint8_t st = g.table.get(int(fd));
        uint8_t kind = st & kKindMask;
        if (kind != FD_LISTENER && kind != FD_DGRAM) continue;
        int fdflags = real_fcntl(int(fd), F_GETFD, nullptr);
        if (fdflags < 0 || (fdflags & FD_CLOEXEC)) continue;
        bool nb = st & kWantNonblock;
        c.own[c.nown] = int(fd);
        c.own_kind[c.nown++] = kind == FD_LISTENER ? (nb ? 'L' : 'l') : (nb ? 'D' : 'd');
    }
    size_t n = 0;
    while (envp && envp[n]) ++n;
    const char *self = g.self_path[0] ? g.self_path : nullptr;
    const size_t strbuf = 4096 + 16 + sizeof kLocksVar + sizeof g.instance_locks;
    out->maplen = (n + 3) * sizeof(char *) + strbuf;
    void *mem = mmap(nullptr, out->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    char **env = static_cast<char **>(mem);
    char *preload = reinterpret_cast<char *>(env + n + 3);
    char *locks = preload + 4096 + 16;
    size_t k = 0;
    bool have_preload = false;
    for (size_t i = 0; i < n; ++i) {
        if (strncmp(envp[i], kLocksVar, sizeof kLocksVar - 1) == 0) continue; // ours: given back below
        if (self && strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
            have_preload = true;
            if (!strstr(envp[i], self) && strlen(envp[i]) + strlen(self) + 2 < 4096) {
                // The program rewrote LD_PRELOAD without us: put the shim back in front.
                size_t sl = strlen(self);
                memcpy(preload, "LD_PRELOAD=", 11);
                memcpy(preload + 11, self, sl);
                preload[11 + sl] = ' ';
                strcpy(preload + 12 + sl, envp[i] + 11);
                env[k++] = preload;
                continue;
            }
        }
        env[k++] = envp[i];
    }
    if (self && !have_preload && strlen(self) + 12 < 4096) {
        memcpy(preload, "LD_PRELOAD=", 11);
        strcpy(preload + 11, self);
        env[k++] = preload;
    }
    if (g.instance_locks[0]) { // read and removed at start-up (guards.cc): the new image reads it again
        size_t vl = sizeof kLocksVar - 1, ll = strnlen(g.instance_locks, sizeof g.instance_locks - 1);
        memcpy(locks, kLocksVar, vl);
        memcpy(locks + vl, g.instance_locks, ll);
        locks[vl + ll] = '\0';
        env[k++] = locks;
    }
    env[k] = nullptr;
    out->envp = env;
    // Cannot fail with kExecStateLen; should it, the new image adopts nothing rather than stale numbers.
    Shared *shared = g.acct.shared;
    if (shared && config_encode(c, shared->exec_state, sizeof shared->exec_state) < 0)
        memset(shared->exec_state, 0, sizeof shared->exec_state);
    set_cloexec(*out, false);
    return true;
}

// The exec failed: everything back as it was, errno preserved.
void undo(ExecEnv &e) {
    ErrnoGuard keep;
    set_cloexec(e, true);
    if (g.acct.shared) memset(g.acct.shared->exec_state, 0, sizeof g.acct.shared->exec_state);
    if (e.envp) munmap(e.envp, e.maplen);
}

int do_execve(const char *path, char *const argv[], char *const envp[]) {
    ExecEnv e;
    if (!self_exec() || static_target(path) || !prepare(envp, &e)) return real_execve(path, argv, envp);
    int r = real_execve(path, argv, e.envp);
    undo(e);
    return r;
}

// execvp/execvpe search PATH inside libc; they read the environment from environ (execvp) or envp.
int do_execvpe(const char *file, char *const argv[], char *const envp[], bool use_environ) {
    ExecEnv e;
    if (!self_exec() || static_target_file(file) || !prepare(use_environ ? environ : envp, &e))
        return use_environ ? real_execvp(file, argv) : real_execvpe(file, argv, envp);
    int r = real_execvpe(file, argv, e.envp);
    undo(e);
    return r;
}

// execl*: gather the variadic arguments (bounded like the kernel's own limit on argument count).
constexpr int kMaxArgs = 4096;

} // namespace
} // namespace hr

HR_EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    return hr::do_execve(path, argv, envp);
}
HR_EXPORT int execv(const char *path, char *const argv[]) { return hr::do_execve(path, argv, environ); }
HR_EXPORT int execvp(const char *file, char *const argv[]) { return hr::do_execvpe(file, argv, environ, true); }
HR_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    return hr::do_execvpe(file, argv, envp, false);
}
HR_EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
    hr::ExecEnv e;
    if (!hr::self_exec() || hr::exec_runs_loader_fd(fd) == 0 || !hr::prepare(envp, &e))
        return hr::real_fexecve(fd, argv, envp);
    int r = hr::real_fexecve(fd, argv, e.envp);
    hr::undo(e);
    return r;
}

#define HR_GATHER_ARGS(first, last_named, extra_envp)                                                 \
    char *args[hr::kMaxArgs];                                                                         \
    int n = 0;                                                                                        \
    va_list ap;                                                                                       \
    va_start(ap, last_named);                                                                         \
    args[n++] = const_cast<char *>(first);                                                            \
    while (args[n - 1] != nullptr) {                                                                  \
        if (n == hr::kMaxArgs) {                                                                      \
            va_end(ap);                                                                               \
            errno = E2BIG;                                                                            \
            return -1;                                                                                \
        }                                                                                             \
        args[n++] = va_arg(ap, char *);                                                               \
    }                                                                                                 \
    extra_envp;                                                                                       \
    va_end(ap)

HR_EXPORT int execl(const char *path, const char *arg, ...) {
    HR_GATHER_ARGS(arg, arg, (void)0);
    return hr::do_execve(path, args, environ);
}
HR_EXPORT int execlp(const char *file, const char *arg, ...) {
    HR_GATHER_ARGS(arg, arg, (void)0);
    return hr::do_execvpe(file, args, environ, true);
}
HR_EXPORT int execle(const char *path, const char *arg, ...) {
    char *const *envp;
    HR_GATHER_ARGS(arg, arg, envp = va_arg(ap, char *const *));
    return hr::do_execve(path, args, envp);
}
