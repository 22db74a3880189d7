// Processes as the kernel knows them: process groups, descendants, pidfds. A number read from /proc or
// remembered from earlier may belong to another process by now (pids are reused); everything here either
// works on a pidfd or checks, after opening one, that the process is still the one it was looking for.
#pragma once

#include <sys/types.h>
#include <vector>

namespace hr {

int pidfd_open(pid_t pid); // -1 on error (errno set)
// Sends sig to the process a pidfd refers to; false if it has exited.
bool pidfd_signal(int pidfd, int sig);
// True once the process a pidfd refers to has exited (zombie or reaped).
bool pidfd_exited(int pidfd);

// Processes of process group pgid that descend from this process (we are the subreaper of what we start,
// so every process of a generation does, whoever its parent is now). Zombies count: a group is over only
// once they are reaped too.
std::vector<pid_t> descendant_group_members(pid_t pgid);
// Whether there is one: stops at the first (true also when /proc cannot be read).
bool has_descendant_group_member(pid_t pgid);
// Every process at one moment: taken in one pass, so that a process changing its group meanwhile is seen
// once, either in its old group or in its new one.
struct ProcEntry {
    pid_t pid, ppid, pgrp;
    char state;
};
std::vector<ProcEntry> proc_snapshot();
// Some process of group pgid in the snapshot descends from us.
bool group_has_descendants(const std::vector<ProcEntry> &snap, pid_t pgid);
// The process group of pid, or -1.
pid_t process_group(pid_t pid);
// Signals every descendant member of group pgid, each through a pidfd opened after it was found and
// checked again (still in pgid) once opened. Returns how many were signalled.
int signal_descendant_group(pid_t pgid, int sig);

} // namespace hr
