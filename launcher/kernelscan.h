// What the kernel says a generation still holds: the connection sockets (accepted from one of the
// registry's listeners) open in any process of its process group. The shim's count is fast and exact for
// what it sees; this is the truth for what it cannot see (a close by raw syscall, a process that exited or
// exec'd without the shim, a connection passed over SCM_RIGHTS to a process the shim does not run in).
#pragma once

#include "registry.h"

#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

// 0 if there is no such socket, a positive number if there is (the scan stops at the first one found: it
// answers "is the generation idle?", not "how many"), or -1 if /proc could not tell (e.g. processes that
// switched to another user while the launcher is not root).
// Looks at each socket through pidfd_getfd(2) (the launcher is root or the parent of the generation).
int kernel_live_conns(pid_t pgid, const Registry &reg);

// Listening sockets that processes of group pgid hold and the registry does not know, as
// "127.0.0.1:8080 (pid 123)": sockets of a process the shim is not active in (a wrapper that forks,
// like runuser or sudo, started the server; a static program).
std::vector<std::string> kernel_foreign_listeners(pid_t pgid, const Registry &reg);

} // namespace hr
