#include "nofile.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/resource.h>

namespace hr {
namespace {

rlimit g_original{RLIM_INFINITY, RLIM_INFINITY};
bool g_known = false;

// What a child given n sockets needs: they land at 3..n+2, after each was first copied above both them
// and everything the launcher holds (spawn.cc, place_conventional), plus the error pipe and a few passed
// descriptors moved out of their way.
long needed(int n, int maxfd) {
    long base = (maxfd > n + 2 ? maxfd : n + 2) + 1;
    return base + n + 8;
}

} // namespace

void nofile_raise() {
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    g_original = rl;
    g_known = true;
    if (rl.rlim_cur == rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

bool nofile_fits(int want, int maxfd, std::string *why) {
    rlimit rl;
    if (want <= 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return true;
    if (needed(want, maxfd) <= long(rl.rlim_cur)) return true;
    *why = "handing over " + std::to_string(want) + " listening sockets needs RLIMIT_NOFILE >= " +
           std::to_string(needed(want, maxfd)) + ", the hard limit is " + std::to_string(rl.rlim_max) +
           ": raise it (ulimit -Hn, LimitNOFILE= for a service)";
    return false;
}

int nofile_max_fd() {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int top = -1;
    while (dirent *e = readdir(d)) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end != e->d_name && *end == '\0' && v > top) top = int(v);
    }
    closedir(d);
    return top;
}

void nofile_restore(int inherited) {
    if (!g_known) return;
    rlimit rl = g_original;
    // Room is added only where the program's own limit is short of what the shim needs to move that many
    // sockets out of its way (a copy each, above them): a program with a few sockets keeps exactly its own
    // limit (a select() server relies on 1024 keeping its descriptors below FD_SETSIZE).
    if (rl.rlim_cur != RLIM_INFINITY && inherited > 0 && rl.rlim_cur < rlim_t(inherited) * 2 + 64) {
        rl.rlim_cur += rlim_t(inherited);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    }
    setrlimit(RLIMIT_NOFILE, &rl);
}

} // namespace hr
