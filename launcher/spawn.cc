#include "spawn.h"

#include "nofile.h"
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace hr {
namespace {

// What the child writes on the error pipe: an exec errno, -errno of --user, or this plus the errno of
// installing the seccomp filter.
constexpr int kSeccompFailed = 1 << 20;

std::string g_workdir;      // --chdir DIR; empty: none
std::string g_workdir_what; // "enter DIR (--chdir) for": SpawnResult::what when DIR cannot be entered

// The parent's check of --chdir before fork: an error there is reported as such (the child's chdir can
// still fail if DIR goes away in between; that reads as an exec error).
bool workdir_usable(SpawnResult *res) {
    int e = workdir_error(g_workdir);
    if (e == 0) return true;
    res->error = e;
    res->what = g_workdir_what.c_str();
    return false;
}

// Variables of the launcher that never reach a child as they are: the shim's own (set per generation), and
// the launcher's systemd hand-over (NOTIFY_SOCKET and socket activation are the launcher's, not the program's).
bool launcher_only(const char *e) {
    static const char *const names[] = {"HOTRESTART=", "NOTIFY_SOCKET=", "LISTEN_PID=", "LISTEN_FDS=",
                                        "LISTEN_FDNAMES=", "SERVER_STARTER_PORT="};
    for (const char *n : names)
        if (strncmp(e, n, strlen(n)) == 0) return true;
    return false;
}

bool overridden(const char *e, const std::vector<std::string> &env) {
    for (const auto &v : env) {
        size_t eq = v.find('=');
        if (strncmp(e, v.c_str(), eq + 1) == 0) return true;
    }
    return false;
}

// Writes n in decimal at p (room for 11 characters and the NUL), async-signal-safe.
void write_decimal(char *p, int n) {
    char digits[12];
    int len = 0;
    unsigned v = unsigned(n);
    do {
        digits[len++] = char('0' + v % 10);
        v /= 10;
    } while (v && len < 11);
    while (len) *p++ = digits[--len];
    *p = '\0';
}

// In the child: the registry's sockets to 3, 4..., everything else it inherits (pass_fds, the error
// pipe) out of their way first. Only fcntl/dup2/close; scratch has room for every descriptor moved.
void place_conventional(const SpawnRequest &req, std::vector<int> &scratch, Config *cfg, int *errfd) {
    const int top = 3 + int(req.conv_fds.size());
    int base = top;
    for (int fd : req.conv_fds) base = fd >= base ? fd + 1 : base;
    for (int fd : req.pass_fds) base = fd >= base ? fd + 1 : base;
    if (*errfd >= base) base = *errfd + 1;
    int *tmp = scratch.data();
    for (size_t i = 0; i < req.conv_fds.size(); ++i) tmp[i] = fcntl(req.conv_fds[i], F_DUPFD_CLOEXEC, base);
    if (*errfd < top) *errfd = fcntl(*errfd, F_DUPFD_CLOEXEC, base);
    for (int fd : req.pass_fds) {
        int now = fd;
        if (fd < top) {
            now = fcntl(fd, F_DUPFD_CLOEXEC, base);
            for (int *field : {&cfg->ctl, &cfg->wake, &cfg->shm})
                if (*field == fd) *field = now;
        }
        fcntl(now, F_SETFD, 0);
    }
    for (size_t i = 0; i < req.conv_fds.size(); ++i) {
        dup2(tmp[i], 3 + int(i)); // the copy is not close-on-exec
        close(tmp[i]);
    }
}

// The part every child shares: fork, own process group, PDEATHSIG, exactly pass_fds inherited, original
// signal state, exec. `hrvar`, if set, is filled with the encoding of cfg in the child (its
// main_pid is known only there). exec errors travel back on a close-on-exec pipe: EOF means it ran.
SpawnResult fork_exec(const SpawnRequest &req, char *const *argv, char *const *envp, char *hrvar, size_t hrlen,
                      Config cfg, char *pidvar) {
    SpawnResult res;
    std::vector<int> scratch(req.conv_fds.size() + req.pass_fds.size() + 1); // the child may not allocate
    if (!g_workdir.empty() && !workdir_usable(&res)) return res;
    const char *workdir = g_workdir.empty() ? nullptr : g_workdir.c_str();
    const pid_t launcher = getpid();
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        res.error = errno;
        res.what = "create a pipe for";
        return res;
    }
    // --seccomp: the child sends its filter's notification descriptor on sc[1] before exec.
    int sc[2] = {-1, -1};
    if (req.seccomp && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sc) < 0) {
        res.error = errno;
        res.what = "create a socket for the seccomp filter of";
        close(errpipe[0]);
        close(errpipe[1]);
        return res;
    }
    pid_t pid = fork();
    if (pid < 0) {
        res.error = errno;
        res.what = "fork";
        for (int fd : {errpipe[0], errpipe[1], sc[0], sc[1]})
            if (fd >= 0) close(fd);
        return res;
    }
    if (pid == 0) {
        // Child: only async-signal-safe calls from here. Its own process group, so that all it starts can
        // be signalled and waited for.
        setpgid(0, 0);
        // If the launcher dies, the child is told (systemd/containers kill the rest).
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != launcher) _exit(kExitLauncherError);
        int errfd = errpipe[1];
        if (req.seccomp) {
            // First, while the launcher is still root if it is (it may skip no_new_privs then), and before
            // descriptors move: sc[1] is close-on-exec and may sit anywhere.
            int e = seccomp_install(req.seccomp, sc[1]);
            if (e) {
                e += kSeccompFailed;
                ssize_t w = write(errfd, &e, sizeof e);
                (void)w;
                _exit(kExitLauncherError);
            }
            close(sc[1]);
        }
        if (!req.conv_fds.empty()) place_conventional(req, scratch, &cfg, &errfd);
        else
            for (int fd : req.pass_fds) fcntl(fd, F_SETFD, 0);
        if (pidvar) write_decimal(pidvar, int(getpid()));
        if (hrvar) {
            cfg.main_pid = getpid();
            config_encode(cfg, hrvar, hrlen);
        }
        if (req.runas.set) {
            // Groups first (they need privilege), the user last. Changing the user clears the parent-death
            // signal: set it again.
            if (setgroups(req.runas.groups.size(), req.runas.groups.data()) < 0 || setgid(req.runas.gid) < 0 ||
                setuid(req.runas.uid) < 0) {
                int e = -errno;
                ssize_t w = write(errfd, &e, sizeof e);
                (void)w;
                _exit(126);
            }
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != launcher) _exit(kExitLauncherError);
        }
        nofile_restore(int(req.conv_fds.size())); // the sockets are in place: the program's own limit
        sigaction(SIGPIPE, &req.sigpipe, nullptr);
        sigprocmask(SIG_SETMASK, &req.sigmask, nullptr);
        if (!workdir || chdir(workdir) == 0) execvpe(argv[0], argv, envp);
        int e = errno;
        ssize_t w = write(errfd, &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    // Parent: make the group ours before anything can signal it (the child does the same; whichever runs
    // first wins, both are harmless).
    setpgid(pid, pid);
    close(errpipe[1]);
    if (sc[1] >= 0) close(sc[1]);
    int e = 0;
    ssize_t n;
    do {
        n = read(errpipe[0], &e, sizeof e);
    } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    res.pid = pid;
    if (sc[0] >= 0) {
        res.notif = seccomp_receive(sc[0]); // sent before exec: here by now, if at all
        close(sc[0]);
    }
    if (n == sizeof e) {
        res.error = e < 0 ? -e : e >= kSeccompFailed ? e - kSeccompFailed : e;
        res.what = e < 0 ? "switch to the --user of" : e >= kSeccompFailed ? "install the seccomp filter for" : "execute";
    } else if (req.seccomp && res.notif < 0) {
        res.error = EPROTO; // it ran without sending the descriptor: never expected
        res.what = "receive the seccomp notification descriptor of";
    }
    return res;
}

// The launcher's environment less what is the launcher's only, with req.env added; built before fork().
std::vector<std::string> child_env(const SpawnRequest &req, std::string *preload) {
    std::vector<std::string> env;
    for (char **e = environ; *e; ++e) {
        if (launcher_only(*e) || overridden(*e, req.env)) continue;
        if (preload && strncmp(*e, "LD_PRELOAD=", 11) == 0) {
            *preload = *e + 11;
            continue;
        }
        env.push_back(*e);
    }
    for (const auto &v : req.env) env.push_back(v);
    return env;
}

std::vector<char *> pointers(std::vector<std::string> &v) {
    std::vector<char *> out;
    for (auto &s : v) out.push_back(const_cast<char *>(s.c_str()));
    return out;
}

} // namespace

int workdir_error(const std::string &dir) {
    struct stat st;
    if (stat(dir.c_str(), &st) < 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    return access(dir.c_str(), X_OK) < 0 ? errno : 0;
}

void spawn_set_workdir(const std::string &dir) {
    g_workdir = dir;
    g_workdir_what = "enter " + dir + " (--chdir) for";
}

SpawnResult spawn_generation(const SpawnRequest &req) {
    std::string preload;
    std::vector<std::string> env = child_env(req, req.shimless ? nullptr : &preload);
    if (!req.shimless) env.push_back("LD_PRELOAD=" + req.shim + (preload.empty() ? "" : " " + preload));
    std::vector<char *> envp = pointers(env);
    char pidvar[32] = "LISTEN_PID=";
    if (!req.conv_fds.empty()) envp.push_back(pidvar);
    envp.push_back(nullptr);
    std::vector<std::string> args = req.argv;
    std::vector<char *> argv = pointers(args);
    argv.push_back(nullptr);
    // No variable describes the generation: its shim asks the launcher at the rendezvous (rendezvous.h).
    return fork_exec(req, argv.data(), envp.data(), nullptr, 0, req.cfg, req.conv_fds.empty() ? nullptr : pidvar + 11);
}

SpawnResult spawn_command(const std::string &command, const SpawnRequest &req) {
    std::vector<std::string> env = child_env(req, nullptr);
    std::vector<char *> envp = pointers(env);
    envp.push_back(nullptr);
    std::vector<std::string> args = {"/bin/sh", "-c", command};
    std::vector<char *> argv = pointers(args);
    argv.push_back(nullptr);
    return fork_exec(req, argv.data(), envp.data(), nullptr, 0, Config(), nullptr);
}

} // namespace hr
