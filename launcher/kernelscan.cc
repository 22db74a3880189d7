#include "kernelscan.h"
#include "procs.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <set>

namespace hr {
namespace {

// Is sock (our duplicate of a socket a generation holds) a connection accepted from one of the registry's
// stream listeners? Same family and local address as a listener (a wildcard listener matches any local
// address with its port), and not itself listening nor one of the listeners (a listener shut down by a
// final stop no longer says it listens).
bool is_accepted_conn(int sock, const Registry &reg) {
    struct stat st;
    if (fstat(sock, &st) < 0) return false;
    for (const auto &lst : reg.all())
        if (lst.dev == st.st_dev && lst.ino == st.st_ino) return false;
    int type = 0, acc = 0;
    socklen_t l = sizeof type;
    if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_STREAM) return false;
    l = sizeof acc;
    if (getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || acc) return false;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (getsockname(sock, reinterpret_cast<sockaddr *>(&ss), &sl) < 0) return false;
    for (const auto &lst : reg.all()) {
        const SockKey &k = lst.key;
        if (k.type != SOCK_STREAM || k.family != ss.ss_family) continue;
        if (k.family == AF_INET) {
            const auto &a = reinterpret_cast<const sockaddr_in &>(k.addr);
            const auto &b = reinterpret_cast<const sockaddr_in &>(ss);
            if (a.sin_port == b.sin_port && (a.sin_addr.s_addr == INADDR_ANY || a.sin_addr.s_addr == b.sin_addr.s_addr))
                return true;
        } else if (k.family == AF_INET6) {
            const auto &a = reinterpret_cast<const sockaddr_in6 &>(k.addr);
            const auto &b = reinterpret_cast<const sockaddr_in6 &>(ss);
            if (a.sin6_port == b.sin6_port &&
                (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr) || memcmp(&a.sin6_addr, &b.sin6_addr, sizeof a.sin6_addr) == 0))
                return true;
        } else if (k.family == AF_UNIX) {
            // An accepted unix socket carries its listener's address (its length may count the NUL).
            SockKey c;
            if (key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, SOCK_STREAM, 0, &c) && key_match(c, k))
                return true;
        }
    }
    return false;
}

// Calls fn(pid, sock) for each distinct socket that a process of group pgid holds, sock being our duplicate
// (closed after the call), until fn returns true (enough seen). Returns false if some process could not be
// looked at (and the scan was not stopped by fn).
template <class Fn> bool each_group_socket(pid_t pgid, Fn fn) {
    DIR *proc = opendir("/proc");
    if (!proc) return false;
    std::set<std::pair<unsigned long, unsigned long>> seen; // (dev, inode) of sockets already classified
    bool unknown = false, stop = false;
    while (!stop) {
        dirent *d = readdir(proc);
        if (!d) break;
        if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
        pid_t pid = pid_t(atoi(d->d_name));
        if (process_group(pid) != pgid) continue;
        char fddir[64];
        snprintf(fddir, sizeof fddir, "/proc/%d/fd", int(pid));
        DIR *fds = opendir(fddir);
        if (!fds) {
            if (errno != ENOENT) unknown = true;
            continue;
        }
        int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
        while (!stop) {
            dirent *e = readdir(fds);
            if (!e) break;
            if (e->d_name[0] == '.') continue;
            char link[96], target[64];
            snprintf(link, sizeof link, "%s/%.20s", fddir, e->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = '\0';
            unsigned long inode;
            if (sscanf(target, "socket:[%lu]", &inode) != 1 || !seen.insert({0, inode}).second) continue;
            // Look at the socket itself: a duplicate of the process's descriptor, closed right away.
            int sock = pidfd < 0 ? -1 : int(syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0));
            if (sock < 0) {
                if (errno != EBADF) unknown = true;
                continue;
            }
            stop = fn(pid, sock);
            close(sock);
        }
        if (pidfd >= 0) close(pidfd);
        closedir(fds);
    }
    closedir(proc);
    return stop || !unknown;
}

} // namespace

int kernel_live_conns(pid_t pgid, const Registry &reg) {
    // The first connection found answers the only question asked (is the generation idle?): a drain with
    // many connections open costs one short scan per check, not one look at every socket.
    int count = 0;
    bool complete = each_group_socket(pgid, [&](pid_t, int sock) {
        count += is_accepted_conn(sock, reg);
        return count > 0;
    });
    return (!complete && count == 0) ? -1 : count;
}

std::vector<std::string> kernel_foreign_listeners(pid_t pgid, const Registry &reg) {
    std::vector<std::string> out;
    each_group_socket(pgid, [&](pid_t pid, int sock) {
        int acc = 0;
        socklen_t l = sizeof acc;
        struct stat st;
        if (getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || !acc || fstat(sock, &st) < 0) return false;
        for (const auto &lst : reg.all())
            if (lst.dev == st.st_dev && lst.ino == st.st_ino) return false;
        int type = 0, v6only = 0;
        l = sizeof type;
        getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &l);
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        if (getsockname(sock, reinterpret_cast<sockaddr *>(&ss), &sl) < 0) return false;
        if (ss.ss_family == AF_INET6) {
            l = sizeof v6only;
            getsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l);
        }
        SockKey k;
        char name[160] = "?";
        if (key_from_sockaddr(reinterpret_cast<sockaddr *>(&ss), sl, type, v6only, &k)) key_format(k, name, sizeof name);
        out.push_back(std::string(name) + " (pid " + std::to_string(pid) + ")");
        return false;
    });
    return out;
}

} // namespace hr
