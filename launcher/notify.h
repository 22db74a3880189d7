// sd_notify in: the NOTIFY_SOCKET a generation gets with --ready notify. One datagram socket per
// generation in the abstract namespace (no file to clean up, nothing to chmod for a program that changes
// user); who sent a datagram is what the kernel says (SCM_CREDENTIALS), never what it contains.
#pragma once

#include <string>
#include <sys/types.h>

namespace hr {

// Creates the socket; *env_value is what NOTIFY_SOCKET must be set to ("@hotrestart/..."). -1 on error.
int notify_open(int gen, std::string *env_value);

struct NotifyMessage {
    pid_t sender = 0;       // from the kernel
    bool ready = false;     // a READY=1 line
    std::string status;     // STATUS=..., if any
};

// Reads one datagram. False when nothing is left to read.
bool notify_read(int fd, NotifyMessage *out);

} // namespace hr
