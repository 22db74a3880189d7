// --seccomp-accept: accept() and accept4() on a shared socket are trapped too (seccomp.h), so that a
// draining generation takes no connection, without any change to the program.
//   A generation that may take connections (starting, on trial, serving): on a non-blocking socket its
//     accept runs as made (SECCOMP_USER_NOTIF_FLAG_CONTINUE: it returns at once, with a connection or
//     EAGAIN). On a blocking socket a continued accept would wait in the kernel and could take a connection
//     after the generation began to drain, so the call is held: once the socket is readable the launcher
//     accepts the connection itself and hands it over (SECCOMP_IOCTL_NOTIF_ADDFD with
//     SECCOMP_ADDFD_FLAG_SEND: the descriptor is the call's return value), the peer's address written into
//     the caller's buffers first, as accept() would.
//   A draining generation: a non-blocking accept returns EAGAIN; a blocking one is held and never given a
//     connection. This filter's wait is interruptible (no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV): a
//     signal interrupts a held accept as it would a real blocking one (restarted with SA_RESTART, else
//     EINTR), so the stop signal reaches a draining generation blocked in accept.
// A connection the launcher accepted for a caller that went away meanwhile goes to the next one.
#pragma once

#include "registry.h"

#include <linux/seccomp.h>
#include <poll.h>
#include <stdint.h>
#include <functional>
#include <utility>
#include <vector>

namespace hr {

class SeccompAccepts {
public:
    ~SeccompAccepts();
    // Whether generation n may take connections now.
    using MayTake = std::function<bool(int n)>;
    // A trapped accept of generation gen (notification descriptor notif) on the registry's socket l.
    void on_accept(int gen, int notif, const seccomp_notif &req, const Listener &l, bool may_take);
    // Hands connections waiting on shared sockets to held calls of generations that may take them.
    void pump(const Registry &reg, const MayTake &may_take);
    // Generation gen's notification descriptor is about to be closed: nothing of it is held any more.
    void forget(int gen);
    // The shared sockets whose readability would let a held call be answered (POLLIN).
    void add_pollfds(std::vector<pollfd> *pfds, const Registry &reg, const MayTake &may_take) const;

private:
    struct Held {
        int gen;
        int notif;
        uint64_t id;      // the notification
        pid_t tid;        // the calling thread
        uint64_t listener;
        uint64_t addr, addrlen; // the caller's buffers (0: none)
        int flags;        // accept4's SOCK_NONBLOCK | SOCK_CLOEXEC
    };
    // 1: handed over (or the call answered with an error); 0: the caller is gone, conn kept.
    int deliver(const Held &h, int conn);
    std::vector<Held> held_;
    std::vector<std::pair<uint64_t, int>> ready_; // (listener id, connection) accepted, not yet handed over
};

} // namespace hr
