// The launcher's registry of listening sockets: every socket any generation listened on (registered by
// the shim over SCM_RIGHTS), in registration order, each read back from the kernel. Later, sockets given
// on the command line (systemd-style) can join it the same way. It is bounded: a generation registers at
// most kMaxPerGeneration sockets, and the registry holds at most kMaxListeners, so that a program cannot
// make the launcher run out of descriptors.
#pragma once

#include "addr.h"
#include "protocol.h"

#include <set>
#include <stdint.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

constexpr int kMaxPerGeneration = kMaxInherited; // more could never be passed on to the next generation
constexpr int kMaxListeners = 4 * kMaxInherited;  // all generations together (some drain while others start)

// Where the file of a unix socket bound to a pathname is, found when it was registered: its directory as an
// absolute path (as the launcher sees it) and its name there, each with the identity it had then. The
// launcher removes the file when it closes the socket for good, and only if both identities still hold.
struct SocketFile {
    bool known = false;
    std::string dir;
    std::string name;
    dev_t dir_dev = 0;
    ino_t dir_ino = 0;
    dev_t dev = 0;
    ino_t ino = 0;
};

struct Listener {
    uint64_t id = 0;      // stable across pruning
    int fd = -1;          // the launcher's copy (close-on-exec except in a child being spawned)
    SockKey key;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string name;     // "127.0.0.1:8080" for logs, control characters escaped (escape_text)
    std::set<int> users;  // generations that registered or claimed it
    int origin = 0;       // the generation that registered it
    SocketFile file;      // AF_UNIX pathname sockets
    std::string fdname;   // its LISTEN_FDNAMES entry for generations (socket activation's name; else "unknown")
};

struct AddResult {
    const Listener *added = nullptr;  // a new entry
    const Listener *dup_of = nullptr; // the entry it already was (the same open file description seen again)
    const char *refused = nullptr;    // why it was not registered
};

class Registry {
public:
    ~Registry();
    // Takes ownership of fd, which process pid of generation gen registered: a new entry, or the entry it
    // already is, or refused (not a named listening socket, or over a bound). fd is closed unless added.
    AddResult add(int fd, int gen, pid_t pid);
    const Listener *find(uint64_t id) const;
    void mark_used(uint64_t id, int gen);
    // A socket the launcher itself holds for good (--listen, socket activation): user 0, never pruned.
    // keep_file: its unix socket file is someone else's (systemd's): never removed.
    AddResult add_given(int fd, const std::string &fdname, bool keep_file);
    // Closes and forgets sockets that are no longer listening (stream) or became connected (datagram):
    // handing them to a generation would make it refuse them all. Returns their names.
    std::vector<std::string> drop_unusable();
    // Forgets that gen uses anything (it is gone).
    void drop_user(int gen);
    // The launcher is stopping for good: shuts every listening stream socket down for reading, so that new
    // connections are refused now (TCP: the connections queued but not accepted are reset). Returns names.
    std::vector<std::string> refuse_new();
    // Closes every socket no live generation uses; returns them (fd already closed).
    std::vector<Listener> prune();
    // gen closed socket id for good: it no longer uses it, and if no other generation does, it is closed
    // (and its unix path removed) now. True if it was closed.
    bool closed_by(uint64_t id, int gen);
    const std::vector<Listener> &all() const { return items_; }

private:
    std::vector<Listener> items_;
    uint64_t next_id_ = 1;
};

} // namespace hr
