// --user USER[:GROUP]: the identity every generation runs as, resolved once at start (the child of
// fork() may call no name service: it only applies what is resolved here).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

struct RunAs {
    bool set = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups (USER's, plus gid)
    std::string name;          // USER
    std::string home;
};

// Resolves spec (USER or USER:GROUP, names or numbers). False with *why.
bool runas_resolve(const std::string &spec, RunAs *out, std::string *why);

} // namespace hr
