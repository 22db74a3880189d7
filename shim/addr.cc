#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

namespace hr {

bool key_from_sockaddr(const sockaddr *sa, socklen_t len, int type, int v6only, SockKey *out) {
    if (sa == nullptr || len < sizeof(sa_family_t) || len > sizeof(sockaddr_storage)) return false;
    SockKey k;
    k.family = sa->sa_family;
    k.type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    switch (sa->sa_family) {
    case AF_INET: {
        if (len < sizeof(sockaddr_in)) return false;
        sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        if (in.sin_port == 0) return false;
        memset(in.sin_zero, 0, sizeof in.sin_zero);
        k.len = sizeof in;
        memcpy(&k.addr, &in, sizeof in);
        break;
    }
    case AF_INET6: {
        if (len < sizeof(sockaddr_in6)) return false;
        sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        if (in6.sin6_port == 0) return false;
        in6.sin6_flowinfo = 0;
        // IPV6_V6ONLY only tells sockets apart on the wildcard address: the kernel sets it on a socket
        // bound to a specific IPv6 address (which cannot take IPv4 anyway), and a v4-mapped address
        // cannot be bound with it set. Normalise so that the program's socket (read before bind) and the
        // inherited one (read after) agree.
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) k.v6only = v6only ? 1 : 0;
        else k.v6only = IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) ? 0 : 1;
        k.len = sizeof in6;
        memcpy(&k.addr, &in6, sizeof in6);
        break;
    }
    case AF_UNIX: {
        const size_t off = offsetof(sockaddr_un, sun_path);
        if (len <= off) return false; // unnamed: autobind, never matches
        size_t n = len - off;
        const char *path = reinterpret_cast<const sockaddr_un *>(sa)->sun_path;
        if (path[0] != '\0') {
            // Pathname: the kernel stops at the first NUL; normalise to exactly the string.
            n = strnlen(path, n);
            if (n == 0 || n >= sizeof(sockaddr_un::sun_path)) return false;
        }
        k.len = socklen_t(off + n);
        memcpy(&k.addr, sa, off + n);
        break;
    }
    default: return false;
    }
    *out = k;
    return true;
}

bool key_match(const SockKey &a, const SockKey &b) {
    if (a.family != b.family || a.type != b.type) return false;
    switch (a.family) {
    case AF_INET: {
        const auto &x = reinterpret_cast<const sockaddr_in &>(a.addr);
        const auto &y = reinterpret_cast<const sockaddr_in &>(b.addr);
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    case AF_INET6: {
        const auto &x = reinterpret_cast<const sockaddr_in6 &>(a.addr);
        const auto &y = reinterpret_cast<const sockaddr_in6 &>(b.addr);
        return a.v6only == b.v6only && x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
               memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
    }
    case AF_UNIX:
        return a.len == b.len && memcmp(&a.addr, &b.addr, a.len) == 0;
    default: return false;
    }
}

const char *key_format(const SockKey &k, char *buf, size_t buflen) {
    if (buflen == 0) return buf;
    const char *proto = k.type == SOCK_DGRAM ? "udp:" : "";
    char host[INET6_ADDRSTRLEN] = "?";
    switch (k.family) {
    case AF_INET: {
        const auto &x = reinterpret_cast<const sockaddr_in &>(k.addr);
        inet_ntop(AF_INET, &x.sin_addr, host, sizeof host);
        snprintf(buf, buflen, "%s%s:%u", proto, host, ntohs(x.sin_port));
        break;
    }
    case AF_INET6: {
        const auto &x = reinterpret_cast<const sockaddr_in6 &>(k.addr);
        inet_ntop(AF_INET6, &x.sin6_addr, host, sizeof host);
        bool wildcard = IN6_IS_ADDR_UNSPECIFIED(&x.sin6_addr);
        snprintf(buf, buflen, "%s[%s]:%u%s", proto, host, ntohs(x.sin6_port), wildcard && k.v6only ? " (v6only)" : "");
        break;
    }
    case AF_UNIX: {
        const size_t off = offsetof(sockaddr_un, sun_path);
        const char *path = reinterpret_cast<const sockaddr_un &>(k.addr).sun_path;
        size_t n = k.len > off ? k.len - off : 0;
        const char *kind = k.type == SOCK_DGRAM ? "unix-dgram:" : "unix:";
        if (n == 0) {
            snprintf(buf, buflen, "%s(unnamed)", kind);
        } else if (path[0] == '\0') {
            // Abstract names may hold any byte; show printable ones, '?' for the rest.
            char name[sizeof(sockaddr_un::sun_path) + 1];
            size_t m = 0;
            for (size_t i = 1; i < n && m < sizeof name - 1; ++i)
                name[m++] = (path[i] >= 0x20 && path[i] < 0x7f) ? path[i] : '?';
            name[m] = '\0';
            snprintf(buf, buflen, "%s@%s", kind, name);
        } else {
            snprintf(buf, buflen, "%s%.*s", kind, int(n), path);
        }
        break;
    }
    default: snprintf(buf, buflen, "family %d", k.family);
    }
    return buf;
}

} // namespace hr
