// The launcher's RLIMIT_NOFILE. It holds every listening socket of the registry, and the child it forks
// for a generation briefly holds them twice (moved out of the way, then placed at 3, 4...): a thousand
// sockets pass the usual soft limit of 1024. The launcher raises its soft limit to the hard limit at
// start-up; every program it starts gets back the soft limit the launcher was started with (set in the
// child just before exec), plus one per socket it inherits: the shim needs a few descriptors below the
// limit before the program runs, and the inherited copies, held until the program's bind() takes them,
// leave the program as many descriptors as it would have had started plainly.
#pragma once

#include <string>

namespace hr {

// At start-up: remembers the soft limit, then raises it to the hard limit.
void nofile_raise();
// Whether `want` sockets can be given to a child by convention (3, 4...) while the launcher's highest
// descriptor is maxfd (nofile_max_fd()). False: *why says what the hard limit must be raised to.
bool nofile_fits(int want, int maxfd, std::string *why);
// The launcher's highest open descriptor number (-1 if it cannot tell).
int nofile_max_fd();
// In a forked child (async-signal-safe): the soft limit the launcher was started with; plus `inherited`
// (the number of sockets given to the child) where that limit is below 2 * inherited + 64; at most the hard
// limit.
void nofile_restore(int inherited);

} // namespace hr
