// The rendezvous (shim/protocol.h): where the main process of a generation fetches its private descriptors,
// so that none of them has to cross an exec. One abstract SOCK_SEQPACKET listener per launcher; who may have
// them is decided by the supervisor from the peer's SO_PEERCRED pid.
#pragma once

#include "protocol.h"

#include <stdint.h>
#include <string>
#include <sys/types.h>

namespace hr {

// Binds and listens on this launcher's rendezvous (non-blocking, close-on-exec). Returns the descriptor, or
// -1 with *err set to one line naming the cause and the fix.
int rendezvous_open(std::string *err);
// Accepts one pending connection without blocking: its descriptor (close-on-exec, non-blocking) and the
// process that connected, as the kernel names it (SO_PEERCRED; 0 if unknown). -1: none pending.
int rendezvous_accept(int lfd, pid_t *peer);
// The answer, in one record: cfg as text with ctl, wake and shm attached. False (errno set) if it could not
// be sent whole.
bool rendezvous_answer(int conn, const Config &cfg, int ctl, int wake, int shm);

// Refusals are something any local process can cause at will: in each window of kWindowMs the first kShown
// are logged, then only counted; the count comes out with the next one shown.
class RefusalLog {
public:
    static constexpr int kShown = 5;
    static constexpr int64_t kWindowMs = 60000;
    void refused(pid_t peer, const char *why);
    int suppressed() const { return suppressed_; }

private:
    int64_t window_start_ = -1;
    int shown_ = 0;
    int suppressed_ = 0;
};

} // namespace hr
