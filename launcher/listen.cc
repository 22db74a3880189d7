#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {
namespace {

bool parse_port(const std::string &s, uint16_t *out) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    long v = strtol(s.c_str(), nullptr, 10);
    if (v < 1 || v > 65535) return false;
    *out = uint16_t(v);
    return true;
}

} // namespace

bool listen_parse(const std::string &spec, ListenAddr *out, std::string *why) {
    ListenAddr a;
    std::string s = spec;
    if (s.compare(0, 5, "unix:") == 0) {
        std::string path = s.substr(5);
        sockaddr_un un{};
        if (path.empty() || path[0] == '\0' || path.size() >= sizeof un.sun_path) {
            *why = "expected unix:PATH with a path of 1 to " + std::to_string(sizeof un.sun_path - 1) + " bytes";
            return false;
        }
        un.sun_family = AF_UNIX;
        memcpy(un.sun_path, path.data(), path.size());
        memcpy(&a.addr, &un, sizeof un);
        a.len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        *out = a;
        return true;
    }
    if (s.compare(0, 4, "udp:") == 0) {
        a.type = SOCK_DGRAM;
        s = s.substr(4);
    }
    const char *expected = "expected HOST:PORT, [V6]:PORT, unix:PATH or udp:HOST:PORT with a numeric host and a port "
                           "1-65535 (e.g. 127.0.0.1:8080, [::]:443)";
    uint16_t port = 0;
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find("]:");
        sockaddr_in6 in6{};
        if (close == std::string::npos || !parse_port(s.substr(close + 2), &port) ||
            inet_pton(AF_INET6, s.substr(1, close - 1).c_str(), &in6.sin6_addr) != 1) {
            *why = expected;
            return false;
        }
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        memcpy(&a.addr, &in6, sizeof in6);
        a.len = sizeof in6;
    } else {
        size_t colon = s.rfind(':');
        sockaddr_in in{};
        if (colon == std::string::npos || !parse_port(s.substr(colon + 1), &port) ||
            inet_pton(AF_INET, s.substr(0, colon).c_str(), &in.sin_addr) != 1) {
            *why = expected;
            return false;
        }
        in.sin_family = AF_INET;
        in.sin_port = htons(port);
        memcpy(&a.addr, &in, sizeof in);
        a.len = sizeof in;
    }
    *out = a;
    return true;
}

bool listen_syntax_ok(const std::string &spec, std::string *why) {
    ListenAddr a;
    return listen_parse(spec, &a, why);
}

int listen_open(const std::string &spec, std::string *why) {
    ListenAddr a;
    if (!listen_parse(spec, &a, why)) return -1;
    int fd = socket(a.addr.ss_family, a.type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = std::string("socket: ") + strerror(errno);
        return -1;
    }
    int one = 1;
    if (a.addr.ss_family != AF_UNIX) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr *>(&a.addr), a.len) < 0) {
        int e = errno;
        *why = std::string("bind: ") + strerror(e) +
               (e == EACCES && a.addr.ss_family != AF_UNIX ? " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
                : e == EADDRINUSE && a.addr.ss_family == AF_UNIX ? " (remove the stale socket file if nothing uses it)"
                : e == EADDRINUSE ? " (another process listens there)" : "");
        close(fd);
        return -1;
    }
    if (a.type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
        *why = std::string("listen: ") + strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

bool activation_fds(std::vector<int> *fds, std::vector<std::string> *names, std::string *why) {
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS"), *fdnames = getenv("LISTEN_FDNAMES");
    if (!pid || !n) return true;
    char *end = nullptr;
    errno = 0;
    long p = strtol(pid, &end, 10);
    if (errno || end == pid || *end || p != long(getpid())) return true; // another process's
    errno = 0;
    long count = strtol(n, &end, 10);
    if (errno || end == n || *end || count < 0 || count > 4096) {
        *why = std::string("LISTEN_FDS='") + n + "' is not a number of descriptors";
        return false;
    }
    std::vector<std::string> given;
    if (fdnames) {
        std::string all = fdnames;
        size_t start = 0;
        for (;;) {
            size_t colon = all.find(':', start);
            given.push_back(all.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
            if (colon == std::string::npos) break;
            start = colon + 1;
        }
    }
    for (long i = 0; i < count; ++i) {
        int fd = 3 + int(i);
        if (fcntl(fd, F_GETFD) < 0) {
            *why = "LISTEN_FDS=" + std::string(n) + " but descriptor " + std::to_string(fd) + " is not open";
            return false;
        }
        fds->push_back(fd);
        names->push_back(size_t(i) < given.size() && !given[size_t(i)].empty() ? given[size_t(i)] : "unknown");
    }
    return true;
}

std::string starter_key(int fd) {
    int type = 0;
    socklen_t tl = sizeof type;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type == SOCK_DGRAM ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl) < 0)
        return "";
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        auto &in = reinterpret_cast<sockaddr_in &>(ss);
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        auto &in6 = reinterpret_cast<sockaddr_in6 &>(ss);
        inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    if (ss.ss_family == AF_UNIX) {
        auto &un = reinterpret_cast<sockaddr_un &>(ss);
        size_t off = offsetof(sockaddr_un, sun_path);
        if (sl <= off + 1 || un.sun_path[0] == '\0') return "";
        std::string path(un.sun_path, strnlen(un.sun_path, sl - off));
        // ';' and '=' separate entries: a path holding one cannot be written there.
        return path.find_first_of(";=") == std::string::npos ? path : "";
    }
    return "";
}

std::vector<std::string> convention_env(const std::vector<ConventionSocket> &socks) {
    if (socks.empty()) return {};
    std::string names, starter;
    for (size_t i = 0; i < socks.size(); ++i) {
        names += (i ? ":" : "") + socks[i].fdname;
        if (!socks[i].starter.empty())
            starter += (starter.empty() ? "" : ";") + socks[i].starter + "=" + std::to_string(3 + i);
    }
    std::vector<std::string> env = {"LISTEN_FDS=" + std::to_string(socks.size()), "LISTEN_FDNAMES=" + names};
    if (!starter.empty()) env.push_back("SERVER_STARTER_PORT=" + starter);
    return env;
}

} // namespace hr
