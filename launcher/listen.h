// Sockets the launcher holds for its generations without any generation binding them: --listen ADDR
// (bound and listening before the first generation) and socket activation (LISTEN_PID/LISTEN_FDS/
// LISTEN_FDNAMES from systemd or any compatible manager). And the conventions by which every generation
// gets the registry's sockets: descriptors from 3 up, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES and
// SERVER_STARTER_PORT.
#pragma once

#include <string>
#include <sys/socket.h>
#include <vector>

namespace hr {

struct ListenAddr {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int type = SOCK_STREAM; // SOCK_DGRAM for udp:
};

// "127.0.0.1:8080", "[::1]:8080", "unix:/run/x.sock", "udp:127.0.0.1:53", "udp:[::1]:53": numeric hosts
// only (no name lookup before the first generation). False with *why (what was expected).
bool listen_parse(const std::string &spec, ListenAddr *out, std::string *why);
bool listen_syntax_ok(const std::string &spec, std::string *why);

// A new close-on-exec socket bound to spec, listening if a stream (backlog SOMAXCONN); IPv6 sockets are
// IPV6_V6ONLY (so that [::]:80 and 0.0.0.0:80 can both be given). -1 with *why: "bind: Permission denied".
int listen_open(const std::string &spec, std::string *why);

// Socket activation: when LISTEN_PID is this process, descriptors 3..3+LISTEN_FDS-1 and their names
// (LISTEN_FDNAMES, "unknown" where none is given). Returns false with *why if the variables are malformed;
// true and nothing when they are absent or meant for another process.
bool activation_fds(std::vector<int> *fds, std::vector<std::string> *names, std::string *why);

// One socket as a generation gets it by convention.
struct ConventionSocket {
    std::string fdname; // LISTEN_FDNAMES entry
    std::string starter; // SERVER_STARTER_PORT key ("127.0.0.1:8080", "[::1]:8080", "/path"); empty: none
};

// LISTEN_FDS=n, LISTEN_FDNAMES=a:b, SERVER_STARTER_PORT=127.0.0.1:8080=3;... for sockets at 3..3+n-1
// (nothing when n is 0). LISTEN_PID is set in the child (its own pid).
std::vector<std::string> convention_env(const std::vector<ConventionSocket> &socks);

// What SERVER_STARTER_PORT calls a socket (Server::Starter's keys): host:port, [v6]:port, a unix path;
// empty for datagram and abstract sockets, which it has no notation for.
std::string starter_key(int fd);

} // namespace hr
