// What a generation's shim reports that is not about serving: sockets it closed (a probe socket is closed
// for good, and the launcher must not keep it), and single-instance guards (older generations that a new
// one must not take for "another instance": Shared::older; locks they hold).
#include "supervisor.h"

#include "log.h"
#include "procs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {
namespace {

} // namespace

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot (0 if unknown).
unsigned long long process_start_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p) return 0;
    ++p;
    for (int field = 3; field < 22; ++field) {
        while (*p == ' ') ++p;
        while (*p && *p != ' ') ++p;
    }
    unsigned long long v = 0;
    if (sscanf(p, " %llu", &v) != 1) return 0;
    return v;
}

namespace {

// Does any process of group pgid (or one of the strays) hold the socket with inode ino? Unknown (a process
// that cannot be looked at) counts as holding it.
bool held_by(pid_t pgid, const std::vector<Gen::Stray> &strays, ino_t ino) {
    std::vector<pid_t> pids = descendant_group_members(pgid);
    for (const auto &s : strays) pids.push_back(s.pid);
    char want[64];
    snprintf(want, sizeof want, "socket:[%llu]", (unsigned long long)ino);
    for (pid_t pid : pids) {
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%d/fd", int(pid));
        DIR *d = opendir(dir);
        if (!d) {
            if (errno == ENOENT) continue; // exited meanwhile
            return true;
        }
        bool found = false;
        while (dirent *e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            char link[64];
            ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
            if (n <= 0) continue;
            link[n] = '\0';
            if (strcmp(link, want) == 0) {
                found = true;
                break;
            }
        }
        closedir(d);
        if (found) return true;
    }
    return false;
}

std::string fd_path(int fd) {
    char self[64], where[4096];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(self, where, sizeof where - 1);
    if (n <= 0) return "?";
    return std::string(where, size_t(n));
}

} // namespace

// Before a generation starts: the older generations still running, by main pid and start time.
void Supervisor::publish_older(Gen &g) {
    if (!g.shm) return;
    int i = 0;
    for (const auto &o : gens_) {
        if (o.get() == &g || o->main_exited || o->pid <= 0 || !o->start_ticks || i == kMaxOlder) continue;
        g.shm->older[i].start.store(o->start_ticks, std::memory_order_release);
        g.shm->older[i].pid.store(int32_t(o->pid), std::memory_order_release);
        ++i;
    }
}

// gone's main process was reaped: its pid may be anyone's from now on.
void Supervisor::forget_older(const Gen &gone) {
    for (const auto &o : gens_) {
        if (!o->shm) continue;
        for (auto &e : o->shm->older) {
            int32_t pid = int32_t(gone.pid);
            e.pid.compare_exchange_strong(pid, 0, std::memory_order_acq_rel);
        }
    }
}

// A process of g closed a shared listener. If no process of g holds it any more, g closed it for good (a
// probe socket, a port it no longer serves): it is no longer g's, nor counted for its readiness, and the
// launcher closes its own copy at once unless another generation uses it.
void Supervisor::on_closed(Gen &g, const Msg &m) {
    if (g.st == GS_DRAINING || g.st == GS_STOPPING || g.st == GS_KILLING || g.st == GS_GONE) return;
    std::vector<const Listener *> matches;
    for (const auto &l : registry_.all()) {
        if (!l.users.count(g.n) || l.key.type == SOCK_DGRAM) continue;
        SockKey k;
        if (key_from_sockaddr(reinterpret_cast<const sockaddr *>(&m.addr), m.addrlen, l.key.type, l.key.v6only, &k) &&
            key_match(k, l.key))
            matches.push_back(&l);
    }
    std::vector<uint64_t> ids;
    for (const Listener *l : matches)
        if (!held_by(g.pid, g.strays, l->ino)) ids.push_back(l->id);
    for (uint64_t id : ids) {
        const Listener *l = registry_.find(id);
        const std::string name = l ? l->name : "?";
        const bool mine = l && l->origin == g.n;
        if (mine && g.registered > 0) --g.registered;
        const bool closed = registry_.closed_by(id, g.n);
        logf("gen %d closed %s for good: %s", g.n, name.c_str(),
             closed ? "closed by the launcher too" : "still used by another generation");
    }
}

// A non-blocking lock of g failed because a process of an older generation holds it: remembered for the
// rollback message.
void Supervisor::on_locked(Gen &g, const Msg &m) {
    const auto &un = reinterpret_cast<const sockaddr_un &>(m.addr);
    std::string path = m.addrlen > offsetof(sockaddr_un, sun_path)
                           ? std::string(un.sun_path, strnlen(un.sun_path, sizeof un.sun_path))
                           : std::string("?");
    const pid_t holder = pid_t(m.arg);
    const pid_t pgrp = process_group(holder);
    int holder_gen = 0;
    for (const auto &o : gens_)
        if (o.get() != &g && (o->pid == holder || o->pid == pgrp)) holder_gen = o->n;
    char what[96];
    if (holder == getpid()) snprintf(what, sizeof what, " (held by the launcher for an older generation)");
    else snprintf(what, sizeof what, " (held by pid %d, gen %d)", int(holder), holder_gen);
    g.lock_conflict = escape_text(path) + what;
    debugf("gen %d: a lock on %s", g.n, g.lock_conflict.c_str());
}

void Supervisor::on_lock_handover(Gen &g, int fd, const Msg &m) {
    const std::string path = escape_text(fd_path(fd));
    if (g.pending_locks.size() >= size_t(kMaxInherited)) {
        close(fd);
        g.warn.warn(g.n, "ignored a lock hand-over of %s: too many pending", path.c_str());
        return;
    }
    logf("gen %d: %s (--instance-lock) is held by pid %d of an older generation: handed over when it is free",
         g.n, path.c_str(), int(m.arg));
    g.pending_locks.push_back({fd, path});
}

// Takes every pending --instance-lock on the open file its generation holds, once it is free: from then on
// that generation holds it (a flock belongs to the open file), and our copy is closed.
void Supervisor::hand_over_locks() {
    for (auto &g : gens_) {
        for (size_t i = 0; i < g->pending_locks.size();) {
            auto &p = g->pending_locks[i];
            if (flock(p.fd, LOCK_EX | LOCK_NB) < 0) {
                ++i;
                continue;
            }
            logf("gen %d now holds %s (--instance-lock)", g->n, p.path.c_str());
            close(p.fd);
            g->pending_locks.erase(g->pending_locks.begin() + long(i));
        }
    }
}

// The part of a rollback reason about a lock an older generation held, with the fix; empty if none.
std::string Supervisor::lock_hint(const Gen &g) const {
    if (g.lock_conflict.empty()) return "";
    return "; it found " + g.lock_conflict + " locked by the old generation (a single-instance lock?): name it with "
           "--instance-lock if it is one (flock), or give each generation its own lock directory "
           "($HOTRESTART_GENERATION)";
}

} // namespace hr
