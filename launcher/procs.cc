#include "procs.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_map>

namespace hr {
namespace {

// state, ppid and pgrp from /proc/<pid>/stat.
bool stat_of(pid_t pid, char *state, pid_t *ppid, pid_t *pgrp) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    FILE *f = fopen(path, "re");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); // comm may contain spaces and parentheses
    int pp = 0, pg = 0;
    if (!p || sscanf(p + 1, " %c %d %d", state, &pp, &pg) != 3) return false;
    *ppid = pp;
    *pgrp = pg;
    return true;
}

bool descends_from(pid_t pid, pid_t ancestor) {
    for (int depth = 0; depth < 64 && pid > 1; ++depth) {
        char st;
        pid_t ppid, pgrp;
        if (!stat_of(pid, &st, &ppid, &pgrp)) return false;
        if (ppid == ancestor) return true;
        pid = ppid;
    }
    return false;
}

// Calls fn(pid) for every process until fn returns true. False when /proc cannot be read.
template <class Fn> bool each_pid(Fn fn) {
    DIR *d = opendir("/proc");
    if (!d) return false;
    while (dirent *e = readdir(d))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && fn(pid_t(atoi(e->d_name)))) break;
    closedir(d);
    return true;
}

// pid is in group pgid and descends from self.
bool descendant_member(pid_t pid, pid_t pgid, pid_t self) {
    char st;
    pid_t ppid, pgrp;
    return stat_of(pid, &st, &ppid, &pgrp) && pgrp == pgid && descends_from(pid, self);
}

} // namespace

int pidfd_open(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

bool pidfd_signal(int pidfd, int sig) {
    return pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

bool pidfd_exited(int pidfd) {
    if (pidfd < 0) return true;
    pollfd p{pidfd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

pid_t process_group(pid_t pid) {
    char st;
    pid_t ppid, pgrp;
    return stat_of(pid, &st, &ppid, &pgrp) ? pgrp : -1;
}

std::vector<pid_t> descendant_group_members(pid_t pgid) {
    std::vector<pid_t> out;
    const pid_t self = getpid();
    each_pid([&](pid_t pid) {
        if (descendant_member(pid, pgid, self)) out.push_back(pid);
        return false;
    });
    return out;
}

bool has_descendant_group_member(pid_t pgid) {
    const pid_t self = getpid();
    bool found = false;
    if (!each_pid([&](pid_t pid) { return found = descendant_member(pid, pgid, self); }))
        return true; // cannot tell: not empty
    return found;
}

std::vector<ProcEntry> proc_snapshot() {
    std::vector<ProcEntry> out;
    each_pid([&](pid_t pid) {
        ProcEntry e{pid, 0, 0, '?'};
        if (stat_of(pid, &e.state, &e.ppid, &e.pgrp)) out.push_back(e);
        return false;
    });
    return out;
}

bool group_has_descendants(const std::vector<ProcEntry> &snap, pid_t pgid) {
    const pid_t self = getpid();
    std::unordered_map<pid_t, pid_t> parent;
    for (const auto &e : snap) parent[e.pid] = e.ppid;
    for (const auto &e : snap) {
        if (e.pgrp != pgid) continue;
        pid_t p = e.pid;
        for (int depth = 0; depth < 64 && p > 1; ++depth) {
            auto it = parent.find(p);
            if (it == parent.end()) break;
            if (it->second == self) return true;
            p = it->second;
        }
    }
    return false;
}

int signal_descendant_group(pid_t pgid, int sig) {
    int sent = 0;
    for (pid_t pid : descendant_group_members(pgid)) {
        int fd = pidfd_open(pid);
        if (fd < 0) continue;
        // The pidfd pins the process: if it is still in the group now, the signal reaches that process.
        if (process_group(pid) == pgid && pidfd_signal(fd, sig)) ++sent;
        close(fd);
    }
    return sent;
}

} // namespace hr
