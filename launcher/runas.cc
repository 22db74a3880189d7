#include "runas.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

namespace hr {

bool runas_resolve(const std::string &spec, RunAs *out, std::string *why) {
    size_t colon = spec.find(':');
    std::string user = spec.substr(0, colon), group = colon == std::string::npos ? "" : spec.substr(colon + 1);
    errno = 0;
    struct passwd *pw = getpwnam(user.c_str());
    if (!pw && user.find_first_not_of("0123456789") == std::string::npos) pw = getpwuid(uid_t(strtoul(user.c_str(), nullptr, 10)));
    if (!pw) {
        *why = "no user '" + user + "' in the user database" + (errno ? std::string(" (") + strerror(errno) + ")" : "");
        return false;
    }
    RunAs r;
    r.set = true;
    r.uid = pw->pw_uid;
    r.gid = pw->pw_gid;
    r.name = pw->pw_name;
    r.home = pw->pw_dir ? pw->pw_dir : "/";
    if (!group.empty()) {
        struct group *gr = getgrnam(group.c_str());
        if (!gr && group.find_first_not_of("0123456789") == std::string::npos) gr = getgrgid(gid_t(strtoul(group.c_str(), nullptr, 10)));
        if (!gr) {
            *why = "no group '" + group + "' in the group database";
            return false;
        }
        r.gid = gr->gr_gid;
    }
    int n = 32;
    for (;;) {
        r.groups.assign(size_t(n), 0);
        int got = n;
        if (getgrouplist(r.name.c_str(), r.gid, r.groups.data(), &got) >= 0) {
            r.groups.resize(size_t(got));
            break;
        }
        if (got <= n || got > 65536) {
            r.groups.assign(1, r.gid);
            break;
        }
        n = got;
    }
    *out = r;
    return true;
}

} // namespace hr
