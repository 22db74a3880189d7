#include "control.h"

#include "log.h"
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {
namespace {

constexpr size_t kMaxClients = 64;
constexpr size_t kMaxRequest = 256;
constexpr int64_t kRequestMs = 5000; // a connection must send its request line within this

bool make_address(const std::string &path, sockaddr_un *a, std::string *err) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (path.size() >= sizeof a->sun_path) {
        *err = "control socket path '" + path + "' is too long (at most " + std::to_string(sizeof a->sun_path - 1) +
               " bytes)";
        return false;
    }
    memcpy(a->sun_path, path.c_str(), path.size());
    return true;
}

} // namespace

Control::~Control() {
    for (auto &c : clients_)
        if (c.fd >= 0) close(c.fd);
    if (lfd_ >= 0) close(lfd_);
}

bool Control::open(const std::string &path, std::string *err) {
    sockaddr_un a;
    if (!make_address(path, &a, err)) return false;
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = "unable to use control socket " + path + ": it exists and is not a socket (remove it or choose "
                   "another --control path)";
            return false;
        }
        // Someone answers on it: another launcher. Nobody: a stale file left by a dead launcher.
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int rc = probe < 0 ? -1 : connect(probe, reinterpret_cast<sockaddr *>(&a), sizeof a);
        int e = errno;
        if (probe >= 0) close(probe);
        if (rc == 0) {
            *err = "unable to use control socket " + path + ": a running launcher serves on it (stop it, or choose "
                   "another --control path)";
            return false;
        }
        if (e != ECONNREFUSED) {
            *err = "unable to use control socket " + path + ": " + strerror(e);
            return false;
        }
        if (unlink(path.c_str()) < 0 && errno != ENOENT) {
            *err = "unable to replace stale control socket " + path + ": " + strerror(errno);
            return false;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = std::string("unable to create the control socket: ") + strerror(errno);
        return false;
    }
    // Created 0600 from the start (no window in which others may connect), then checked.
    mode_t old = umask(0177);
    int rc = bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    int e = errno;
    umask(old);
    if (rc < 0 || listen(fd, 64) < 0 || chmod(path.c_str(), 0600) < 0 || stat(path.c_str(), &st) < 0) {
        if (rc == 0) e = errno;
        *err = "unable to create control socket " + path + ": " + strerror(e);
        if (rc == 0) unlink(path.c_str());
        close(fd);
        return false;
    }
    lfd_ = fd;
    path_ = path;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    return true;
}

void Control::add_pollfds(std::vector<pollfd> *pfds, int64_t now) {
    if (lfd_ < 0) return;
    for (size_t i = clients_.size(); i-- > 0;)
        if (clients_[i].fd < 0) clients_.erase(clients_.begin() + long(i));
    pfds->push_back({clients_.size() < kMaxClients ? lfd_ : -1, POLLIN, 0}); // at the cap: left in the backlog
    for (auto &c : clients_) {
        short ev = c.have_request ? 0 : POLLIN;
        if (!c.out.empty()) ev |= POLLOUT;
        pfds->push_back({c.fd, ev, 0});
    }
}

int64_t Control::next_deadline() const {
    int64_t d = -1;
    for (const auto &c : clients_)
        if (c.fd >= 0 && !c.have_request && (d < 0 || c.deadline < d)) d = c.deadline;
    return d;
}

void Control::drop(size_t i) {
    if (clients_[i].fd >= 0) close(clients_[i].fd);
    clients_[i].fd = -1;
}

// Writes what it can without blocking. False if the peer is gone or the reply is complete and the
// connection should close.
bool Control::flush(Client &c) {
    while (!c.out.empty()) {
        ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN;
        }
        c.out.erase(0, size_t(n));
    }
    return !c.close_after;
}

std::vector<ControlRequest> Control::service(const std::vector<pollfd> &pfds, size_t first, int64_t now) {
    std::vector<ControlRequest> requests;
    if (lfd_ < 0) return requests;
    // Clients first, in the order add_pollfds() listed them (accepting below appends to clients_).
    const size_t nclients = clients_.size();
    std::vector<bool> keep(nclients, true);
    for (size_t i = 0; i < nclients; ++i) {
        Client &c = clients_[i];
        if (c.fd < 0) continue; // answered and closed since add_pollfds()
        short rev = pfds[first + 1 + i].revents;
        if (rev & POLLOUT) keep[i] = flush(c);
        if (keep[i] && !c.have_request && (rev & (POLLIN | POLLHUP | POLLERR))) {
            char buf[kMaxRequest];
            ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) {
                keep[i] = n < 0 && (errno == EAGAIN || errno == EINTR);
                continue;
            }
            c.in.append(buf, size_t(n));
            size_t nl = c.in.find('\n');
            if (nl == std::string::npos) {
                if (c.in.size() >= kMaxRequest) keep[i] = false;
                continue;
            }
            c.have_request = true;
            std::string line = c.in.substr(0, nl);
            ControlRequest r;
            r.client = c.id;
            size_t sp = line.find(' ');
            r.command = line.substr(0, sp);
            r.json = sp != std::string::npos && line.substr(sp + 1) == "json";
            requests.push_back(r);
        } else if (keep[i] && c.have_request && (rev & (POLLHUP | POLLERR))) {
            keep[i] = false; // the client went away while waiting (its --timeout)
        }
    }
    for (size_t i = nclients; i-- > 0;)
        if (clients_[i].fd >= 0 && (!keep[i] || (!clients_[i].have_request && now >= clients_[i].deadline))) drop(i);
    if (!(pfds[first].revents & POLLIN)) return requests;
    for (;;) {
        // At the cap, further connections wait in the listen backlog until a client is done.
        size_t live = 0;
        for (const auto &c : clients_) live += c.fd >= 0;
        if (live >= kMaxClients) break;
        int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        // Only root and the launcher's user: the kernel says who is at the other end.
        ucred cr{};
        socklen_t l = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || (cr.uid != 0 && cr.uid != geteuid())) {
            std::string msg = "125\nhotrestart: refused: uid " + std::to_string(cr.uid) +
                              " may not control this launcher (only root and uid " + std::to_string(geteuid()) +
                              ")\n";
            ssize_t w = send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            logf("control: refused a connection from uid %u (pid %d)", unsigned(cr.uid), int(cr.pid));
            close(fd);
            continue;
        }
        Client c;
        c.id = next_id_++;
        c.fd = fd;
        c.deadline = now + kRequestMs;
        clients_.push_back(c);
    }
    return requests;
}

void Control::reply(int client, const std::string &text, bool close_after) {
    for (size_t i = 0; i < clients_.size(); ++i) {
        Client &c = clients_[i];
        if (c.id != client || c.fd < 0) continue;
        c.out += text;
        c.close_after = close_after;
        if (!flush(c)) drop(i);
        return;
    }
}

void Control::shutdown() {
    for (auto &c : clients_) {
        if (c.fd < 0) continue;
        // A short blocking write of what is left: the replies are small.
        int flags = fcntl(c.fd, F_GETFL);
        fcntl(c.fd, F_SETFL, flags & ~O_NONBLOCK);
        timeval tv{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        while (!c.out.empty()) {
            ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
            if (n <= 0) break;
            c.out.erase(0, size_t(n));
        }
    }
    // The connections themselves stay open until the process exits: a `stop` client reads EOF only once the
    // launcher is really gone.
    if (lfd_ < 0) return;
    close(lfd_);
    lfd_ = -1;
    struct stat st;
    if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) unlink(path_.c_str());
}

} // namespace hr
