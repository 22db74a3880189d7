#include "registry.h"

#include "report.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {

namespace {

// Closes the launcher's copy of a socket for good. The shim kept every generation from unlinking the path of
// a shared unix socket, so removing it now falls to us (if it is still a socket file).
void close_for_good(const Listener &l) {
    close(l.fd);
    if (l.key.family != AF_UNIX) return;
    const char *path = reinterpret_cast<const sockaddr_un &>(l.key.addr).sun_path;
    struct stat st;
    if (path[0] && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
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

AddResult Registry::add(int fd, int gen) {
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
    items_.push_back(l);
    r.added = &items_.back();
    return r;
}

const Listener *Registry::find(uint64_t id) const {
    for (auto &e : items_)
        if (e.id == id) return &e;
    return nullptr;
}

void Registry::mark_used(uint64_t id, int gen) {
    for (auto &e : items_)
        if (e.id == id) e.users.insert(gen);
}

void Registry::drop_user(int gen) {
    for (auto &e : items_) e.users.erase(gen);
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
