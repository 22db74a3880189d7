// --seccomp: the same listening socket for a program the shim cannot run in (static, Go, set-id, file
// capabilities), without any change to it. Before exec, the child installs a seccomp filter that sends
// bind(), listen(), shutdown(SHUT_RD or SHUT_RDWR) and connect() to the launcher (SECCOMP_RET_USER_NOTIF)
// and lets everything else run; the filter's notification descriptor travels to the launcher over a socketpair.
// The launcher answers in its poll loop:
//   bind   on an address the registry holds: the registry's socket is put at the program's descriptor
//          number (SECCOMP_IOCTL_NOTIF_ADDFD, SECCOMP_ADDFD_FLAG_SETFD, the program's close-on-exec kept),
//          and bind returns 0. Any other bind runs as the program made it.
//   listen on a registry socket: 0 (it listens already; the backlog is the first generation's). On the
//          program's own socket the launcher listens on it (a copy taken with pidfd_getfd: the same socket)
//          with the program's backlog, registers it for the next generations, and returns what listen did.
//   shutdown on a registry socket: 0 for the caller alone (an old generation's exit must not stop the
//          socket listening for the new one). Any other shutdown runs.
//   connect whose address family is AF_UNSPEC (a disconnect: on a listener, the same as shutdown) on a
//          registry socket: 0 for the caller alone. Any other connect runs at once: the launcher reads the
//          family (two bytes) and answers CONTINUE, nothing more.
// The filter is permanent: a generation depends on its launcher for every bind and listen. If the launcher
// dies, the sentinel gives every generation its stop signal, as for the shim.
#pragma once

#include "registry.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string>
#include <sys/types.h>

namespace hr {

// "" when this kernel has everything --seccomp uses, else one line naming what is missing, e.g.
// "seccomp user notification with SECCOMP_ADDFD_FLAG_SETFD (Linux 5.14) is not available: ioctl
// SECCOMP_IOCTL_NOTIF_ADDFD: Invalid argument". Forks a short-lived child that installs the filter and
// has one of its calls answered; the launcher itself never runs under the filter.
std::string seccomp_probe();

// The filter program, built on first use (call it before fork: the child may not allocate).
const sock_fprog *seccomp_filter();
// The same with accept and accept4 trapped too (--seccomp-accept).
const sock_fprog *seccomp_accept_filter();
// After seccomp_probe(): "" when the kernel has what --seccomp-accept needs besides (the same-CPU wake-up,
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6), else one line naming what is missing.
const std::string &seccomp_accept_missing();

// In a child, before exec; async-signal-safe. Installs the filter (no_new_privs first unless the caller is
// root, so that a root launcher keeps set-id programs working) and sends its notification descriptor over
// sock (SCM_RIGHTS). 0, or the errno of the step that failed.
int seccomp_install(const sock_fprog *prog, int sock);

// In the launcher: the notification descriptor the child sent on sock (close-on-exec), or -1.
int seccomp_receive(int sock);

// What answering one notification did, for the supervisor to record.
struct SeccompOutcome {
    enum Kind {
        EMPTY,    // no notification was pending
        NONE,     // answered (or its process went away): nothing to record
        ADOPTED,  // bind: the registry's socket `id` is now at the program's descriptor
        LISTENED, // listen on the registry's socket `id`: answered 0
        OWN,      // listen on the program's own socket, done by the launcher: fd is a copy (caller owns it)
        KEPT,     // shutdown of the registry's socket `id`: not done, answered 0
        DISCONNECT_KEPT, // connect(AF_UNSPEC) on the registry's socket `id`: not done, answered 0
        ACCEPT,   // --seccomp-accept: accept or accept4 on the registry's socket `id`, NOT answered: `req` is
                  // the notification, for SeccompAccepts (seccomp_accept.h)
        GONE,     // the notification descriptor hung up: no process of the generation runs under it any more
    } kind = EMPTY;
    uint64_t id = 0;
    int fd = -1;
    pid_t pid = 0;      // the process (thread group) that made the call
    bool dgram = false; // ADOPTED: a datagram socket (no listen() will follow)
    std::string warning; // set when something did not go as it should (logged by the caller)
    seccomp_notif req{}; // ACCEPT
};

// Answers at most one pending notification on notif (EMPTY at once if none is pending).
SeccompOutcome seccomp_serve(int notif, const Registry &reg);

} // namespace hr
