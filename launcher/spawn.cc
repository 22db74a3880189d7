#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace hr {

SpawnResult spawn_generation(const SpawnRequest &req) {
    SpawnResult res;
    // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
    std::vector<std::string> env;
    const char *preload = nullptr;
    for (char **e = environ; *e; ++e) {
        if (strncmp(*e, "HOTRESTART=", 11) == 0) continue;
        if (strncmp(*e, "LD_PRELOAD=", 11) == 0) {
            preload = *e + 11;
            continue;
        }
        env.push_back(*e);
    }
    env.push_back("LD_PRELOAD=" + req.shim + (preload && *preload ? std::string(" ") + preload : ""));
    std::vector<char *> envp;
    for (auto &s : env) envp.push_back(const_cast<char *>(s.c_str()));
    char hrvar[4096] = "HOTRESTART=";
    envp.push_back(hrvar);
    envp.push_back(nullptr);
    std::vector<char *> argv;
    for (auto &s : req.argv) argv.push_back(const_cast<char *>(s.c_str()));
    argv.push_back(nullptr);
    Config cfg = req.cfg;
    const pid_t launcher = getpid();

    // exec errors travel back on a close-on-exec pipe: EOF means the exec succeeded.
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        res.error = errno;
        res.what = "create a pipe for";
        return res;
    }
    pid_t pid = fork();
    if (pid < 0) {
        res.error = errno;
        res.what = "fork";
        close(errpipe[0]);
        close(errpipe[1]);
        return res;
    }
    if (pid == 0) {
        // Child. Its own process group, so the whole generation can be signalled and waited for.
        setpgid(0, 0);
        // If the launcher dies, the generation's main process is told (systemd/containers kill the rest).
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != launcher) _exit(kExitLauncherError);
        for (int fd : req.pass_fds) fcntl(fd, F_SETFD, 0);
        cfg.main_pid = getpid();
        config_encode(cfg, hrvar + 11, sizeof hrvar - 11);
        sigaction(SIGPIPE, &req.sigpipe, nullptr);
        sigprocmask(SIG_SETMASK, &req.sigmask, nullptr);
        execvpe(argv[0], argv.data(), envp.data());
        int e = errno;
        ssize_t w = write(errpipe[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    // Parent: make the group ours before anything can signal it (the child does the same; whichever
    // runs first wins, both are harmless).
    setpgid(pid, pid);
    close(errpipe[1]);
    int e = 0;
    ssize_t n;
    do {
        n = read(errpipe[0], &e, sizeof e);
    } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    res.pid = pid;
    if (n == sizeof e) {
        res.error = e;
        res.what = "execute";
    }
    return res;
}

} // namespace hr
