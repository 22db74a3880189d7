// The launcher's registry of listening sockets: every socket any generation listened on (registered by
// the shim over SCM_RIGHTS), in registration order, each read back from the kernel. Later, sockets given
// on the command line (systemd-style) can join it the same way.
#pragma once

#include "addr.h"

#include <set>
#include <stdint.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

struct Listener {
    uint64_t id = 0;      // stable across pruning
    int fd = -1;          // the launcher's copy (close-on-exec except in a child being spawned)
    SockKey key;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string name;     // "127.0.0.1:8080" for logs
    std::set<int> users;  // generations that registered or claimed it
};

class Registry {
public:
    ~Registry();
    // Takes ownership of fd. Returns the entry, or nullptr (fd closed) if it is not a named socket or is
    // already registered (the same open file description seen again), in which case *dup_of is set.
    const Listener *add(int fd, int gen, const Listener **dup_of);
    const Listener *find(uint64_t id) const;
    void mark_used(uint64_t id, int gen);
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
    const std::vector<Listener> &all() const { return items_; }

private:
    std::vector<Listener> items_;
    uint64_t next_id_ = 1;
};

} // namespace hr
