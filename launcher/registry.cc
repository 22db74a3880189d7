#include "registry.h"

#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {

namespace {

// Finds the file of a unix socket that process pid bound to path (as the program named it): a relative
// path from the process's working directory, an absolute one from its root directory, both read through
// /proc now, at registration (the launcher's own working directory has nothing to do with it). The
// directory is recorded by its absolute path as the launcher sees it; both it and the socket file by
// identity. False when that cannot be done (the process is gone and the path is relative, the file there is
// not a socket): the launcher then never removes anything for this socket.
bool locate_socket_file(const char *path, pid_t pid, SocketFile *out) {
    const char *slash = strrchr(path, '/');
    std::string dir = slash ? std::string(path, size_t(slash == path ? 1 : slash - path)) : std::string(".");
    std::string name = slash ? std::string(slash + 1) : std::string(path);
    if (name.empty() || name == "." || name == "..") return false;
    int base = -1;
    if (pid > 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%d/%s", int(pid), path[0] == '/' ? "root" : "cwd");
        base = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (base < 0 && path[0] != '/') return false;
    int dfd;
    if (base >= 0) {
        const char *rel = dir.c_str();
        while (*rel == '/') ++rel; // relative to the process's root
        dfd = openat(base, *rel ? rel : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        close(base);
    } else {
        dfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd < 0) return false;
    char self[64], where[4096];
    snprintf(self, sizeof self, "/proc/self/fd/%d", dfd);
    ssize_t n = readlink(self, where, sizeof where - 1);
    struct stat d, f;
    bool ok = n > 0 && where[0] == '/' && fstat(dfd, &d) == 0 &&
              fstatat(dfd, name.c_str(), &f, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(f.st_mode);
    close(dfd);
    if (!ok) return false;
    where[n] = '\0';
    out->known = true;
    out->dir = where;
    out->name = name;
    out->dir_dev = d.st_dev;
    out->dir_ino = d.st_ino;
    out->dev = f.st_dev;
    out->ino = f.st_ino;
    return true;
}

// Closes the launcher's copy of a socket for good. The shim kept every generation from unlinking the path of
// a shared unix socket, so removing it now falls to us: the file found at registration, if it is still
// there. The directory is opened without following a final symlink and must be the one recorded (renamed
// or replaced components lead nowhere else); the name in it must still be that very socket file; the
// check and the removal go through the same directory descriptor.
void close_for_good(const Listener &l) {
    close(l.fd);
    if (!l.file.known) return;
    int dfd = open(l.file.dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return;
    struct stat d, f;
    if (fstat(dfd, &d) == 0 && d.st_dev == l.file.dir_dev && d.st_ino == l.file.dir_ino &&
        fstatat(dfd, l.file.name.c_str(), &f, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(f.st_mode) &&
        f.st_dev == l.file.dev && f.st_ino == l.file.ino)
        unlinkat(dfd, l.file.name.c_str(), 0);
    close(dfd);
}

// A socket a generation can adopt: a stream socket that listens, or a datagram socket not connected.
bool usable(int fd) {
    int type = 0, acc = 0;
    socklen_t l = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) return false;
    if (type == SOCK_DGRAM) {
        sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        return getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &pl) < 0 && errno == ENOTCONN;
    }
    l = sizeof acc;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) == 0 && acc == 1;
}

} // namespace

std::vector<std::string> Registry::refuse_new() {
    std::vector<std::string> names;
    for (auto &e : items_) {
        int type = 0;
        socklen_t l = sizeof type;
        if (getsockopt(e.fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type == SOCK_DGRAM) continue;
        // A listening socket shut down for reading stops listening: TCP answers new SYNs with a reset,
        // AF_UNIX connect() fails with ECONNREFUSED.
        if (shutdown(e.fd, SHUT_RD) == 0) names.push_back(e.name);
    }
    return names;
}

std::vector<std::string> Registry::drop_unusable() {
    std::vector<std::string> dropped;
    std::vector<Listener> keep;
    for (auto &e : items_) {
        if (usable(e.fd)) {
            keep.push_back(e);
        } else {
            close(e.fd); // not close_for_good: the path (if any) may belong to whoever uses it now
            dropped.push_back(e.name);
        }
    }
    items_.swap(keep);
    return dropped;
}

Registry::~Registry() {
    for (auto &l : items_) close_for_good(l);
}

AddResult Registry::add(int fd, int gen, pid_t pid) {
    AddResult r;
    struct stat st;
    Listener l;
    int type = 0, v6only = 0;
    socklen_t tl = sizeof type;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    bool ok = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
              getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
              getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl) == 0;
    if (ok && ss.ss_family == AF_INET6) {
        tl = sizeof v6only;
        ok = getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &tl) == 0;
    }
    ok = ok && key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, type, v6only, &l.key) && usable(fd);
    if (!ok) {
        close(fd);
        r.refused = "not a named listening socket";
        return r;
    }
    int mine = 0;
    for (auto &e : items_) {
        if (e.dev == st.st_dev && e.ino == st.st_ino) {
            e.users.insert(gen);
            r.dup_of = &e;
            close(fd);
            return r;
        }
        mine += e.origin == gen;
    }
    if (mine >= kMaxPerGeneration || items_.size() >= size_t(kMaxListeners)) {
        close(fd);
        r.refused = mine >= kMaxPerGeneration ? "this generation registered as many sockets as it may"
                                              : "the launcher holds as many sockets as it may";
        return r;
    }
    char buf[160];
    l.id = next_id_++;
    l.fd = fd;
    l.dev = st.st_dev;
    l.ino = st.st_ino;
    // A unix path is whatever the program chose, newlines included: the name goes into log lines.
    l.name = escape_text(key_format(l.key, buf, sizeof buf));
    l.users.insert(gen);
    l.origin = gen;
    const char *path = reinterpret_cast<const sockaddr_un &>(l.key.addr).sun_path;
    if (l.key.family == AF_UNIX && path[0]) locate_socket_file(path, pid, &l.file);
    items_.push_back(l);
    r.added = &items_.back();
    return r;
}

const Listener *Registry::find(uint64_t id) const {
    for (auto &e : items_)
        if (e.id == id) return &e;
    return nullptr;
}

AddResult Registry::add_given(int fd, const std::string &fdname, bool keep_file) {
    AddResult r = add(fd, 0, getpid());
    Listener *l = const_cast<Listener *>(r.added);
    if (l) {
        l->fdname = fdname;
        if (keep_file) l->file = SocketFile();
    }
    return r;
}

void Registry::mark_used(uint64_t id, int gen) {
    for (auto &e : items_)
        if (e.id == id) {
            e.users.insert(gen); // ids are unique
            return;
        }
}

void Registry::drop_user(int gen) {
    for (auto &e : items_) e.users.erase(gen);
}

bool Registry::closed_by(uint64_t id, int gen) {
    for (size_t i = 0; i < items_.size(); ++i) {
        if (items_[i].id != id) continue;
        items_[i].users.erase(gen);
        if (!items_[i].users.empty()) return false;
        close_for_good(items_[i]);
        items_.erase(items_.begin() + long(i));
        return true;
    }
    return false;
}

std::vector<Listener> Registry::prune() {
    std::vector<Listener> released;
    std::vector<Listener> keep;
    for (auto &e : items_) {
        if (e.users.empty()) {
            close_for_good(e);
            released.push_back(e);
        } else {
            keep.push_back(e);
        }
    }
    items_.swap(keep);
    return released;
}

} // namespace hr
