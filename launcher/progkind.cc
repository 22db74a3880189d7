#include "progkind.h"
#include "elfkind.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace hr {
namespace {

bool executable_file(const std::string &p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
}

ProgInfo classify(const std::string &path, uid_t uid, gid_t gid, int depth) {
    ProgInfo info;
    info.path = path;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return info;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return info;
    }
    char head[256] = {};
    ssize_t n = pread(fd, head, sizeof head - 1, 0);
    int interp = elf_has_interp(fd);
    ssize_t caps = fgetxattr(fd, "security.capability", nullptr, 0);
    close(fd);
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        // The kernel ignores setuid bits and capabilities of scripts: only the interpreter counts.
        if (depth > 0) return info;
        head[n] = '\0';
        char *p = head + 2;
        while (*p == ' ' || *p == '\t') ++p;
        size_t len = strcspn(p, " \t\n");
        if (len == 0) return info;
        return classify(std::string(p, len), uid, gid, depth + 1);
    }
    if (interp < 0) return info; // not ELF: exec will tell
    if (caps > 0) info.kind = PK_CAPABILITIES;
    else if (((st.st_mode & S_ISUID) && st.st_uid != uid) || ((st.st_mode & S_ISGID) && st.st_gid != gid))
        info.kind = PK_SETID;
    else info.kind = interp ? PK_DYNAMIC : PK_STATIC;
    return info;
}

} // namespace

ProgInfo prog_classify(const std::string &path, uid_t uid, gid_t gid) { return classify(path, uid, gid, 0); }

std::string prog_resolve(const std::string &program, const std::string &dir) {
    if (program.empty()) return "";
    auto in_dir = [&](const std::string &p) { return p[0] == '/' || dir.empty() ? p : dir + "/" + p; };
    if (program.find('/') != std::string::npos) return in_dir(program);
    const char *path = getenv("PATH");
    std::string all = path ? path : "/usr/local/bin:/bin:/usr/bin"; // execvpe's default
    size_t start = 0;
    for (;;) {
        size_t colon = all.find(':', start);
        std::string d = all.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        std::string cand = in_dir((d.empty() ? "." : d) + "/" + program);
        if (executable_file(cand)) return cand;
        if (colon == std::string::npos) return "";
        start = colon + 1;
    }
}

const char *prog_kind_text(ProgKind k) {
    switch (k) {
    case PK_DYNAMIC: return "a dynamically linked program";
    case PK_STATIC: return "a static executable (no ELF interpreter)";
    case PK_SETID: return "setuid or setgid (a secure execution)";
    case PK_CAPABILITIES: return "a program with file capabilities (a secure execution)";
    case PK_UNKNOWN: return "of an unknown kind";
    }
    return "?";
}

} // namespace hr
