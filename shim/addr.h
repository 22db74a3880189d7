// Socket identity: what makes a program's bind() match an inherited socket. Pure functions, no syscalls,
// no heap: used by the shim's bind() wrapper and by the launcher's logs, and unit-tested on their own.
#pragma once

#include <stddef.h>
#include <sys/socket.h>

namespace hr {

// A socket as the kernel reports it: family, type (SOCK_STREAM/SOCK_DGRAM, flags masked off), the bound
// address and, for AF_INET6, IPV6_V6ONLY.
struct SockKey {
    int family = 0;
    int type = 0;
    int v6only = 0;
    socklen_t len = 0;
    sockaddr_storage addr{};
};

// Fills key from an address the program passed to bind(). False when the address is malformed for its
// family (short length, unterminated path...) or can never match an inherited socket (port 0, an unnamed
// unix socket): the caller then lets the real bind() run.
bool key_from_sockaddr(const sockaddr *sa, socklen_t len, int type, int v6only, SockKey *out);

// True when a and b name the same socket: family, type, v6only (AF_INET6 wildcard only) and address (IPv4
// address+port, IPv6 address+port+scope id, unix path or abstract name). Flow info and sin_zero are ignored.
bool key_match(const SockKey &a, const SockKey &b);

// "127.0.0.1:80", "[::1]:80", "unix:/run/x.sock", "unix:@name", "udp:127.0.0.1:53" (type prefix for
// datagram sockets). Always NUL-terminates when buflen > 0; returns buf.
const char *key_format(const SockKey &k, char *buf, size_t buflen);

} // namespace hr
