// fork/exec of a generation or of a --ready-check command: the only place where descriptors cross into a
// child. Everything of the launcher is close-on-exec; a child gets exactly pass_fds besides 0, 1 and 2.
#pragma once

#include "options.h"
#include "protocol.h"
#include "runas.h"

#include <linux/filter.h>
#include <signal.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

struct SpawnRequest {
    std::vector<std::string> argv; // PROGRAM ARGS (PROGRAM resolved through PATH, or in the --chdir
                                   // directory if relative, at every spawn)
    std::string shim;              // absolute path of libhotrestart.so
    Config cfg;                    // unused by the spawn (the rendezvous tells the shim; see rendezvous.h)
    std::vector<int> pass_fds;     // exactly the descriptors the child inherits besides 0, 1, 2 and conv_fds:
                                   // never a private descriptor of the launcher
    // The registry's sockets, which the child gets as descriptors 3, 4... in this order (moved there in
    // the child, after what else it inherits is moved above them), with LISTEN_PID set to its own pid
    // there. The caller puts LISTEN_FDS, LISTEN_FDNAMES and SERVER_STARTER_PORT in env and 3.. in cfg.fds.
    std::vector<int> conv_fds;
    bool shimless = false;         // no LD_PRELOAD of the shim (pass_fds should be empty)
    RunAs runas;                   // --user: set in the child before exec
    std::vector<std::string> env;  // NAME=VALUE set for the child (replacing any inherited NAME)
    sigset_t sigmask;              // the launcher's original signal mask, restored in the child
    struct sigaction sigpipe {};   // the launcher's original SIGPIPE disposition, restored in the child
    // --seccomp: the filter the child installs before exec (seccomp.h); its notification descriptor comes
    // back in SpawnResult::notif.
    const sock_fprog *seccomp = nullptr;
};

struct SpawnResult {
    pid_t pid = -1;   // >0: running the program
    int error = 0;    // errno of fork, or of exec in the child (then the child has already exited)
    const char *what = ""; // "fork", "execute", "enter DIR (--chdir) for", "switch to the --user of",
                           // "install the seccomp filter for"
    int notif = -1;   // req.seccomp: the filter's notification descriptor (close-on-exec), the caller's
};

// --chdir DIR: every child (generation or --ready-check) starts in dir, entered by path at each spawn, so
// that a symlink swapped between two starts is followed (and a relative PROGRAM resolved in the new
// release). Empty (the default): children inherit the launcher's working directory. Set once, before
// the first spawn.
void spawn_set_workdir(const std::string &dir);
// 0 if a child could enter dir now, else the errno that says why not (ENOTDIR for a file).
int workdir_error(const std::string &dir);

// A generation: PROGRAM with the shim preloaded, in its own process group (req.shimless: without it, only the
// sockets by convention). No variable of hotrestart describes the launcher's private descriptors: the shim in
// its main process fetches them at the launcher's rendezvous.
SpawnResult spawn_generation(const SpawnRequest &req);
// `/bin/sh -c command` in its own process group with req.env added; req.argv, shim and cfg are unused.
SpawnResult spawn_command(const std::string &command, const SpawnRequest &req);

} // namespace hr
