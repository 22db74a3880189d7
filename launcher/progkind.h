// What kind of executable a generation's PROGRAM is, read before exec: whether the shim can run in it.
// The shim is an LD_PRELOAD library: the dynamic loader never runs for a static executable (no ELF
// PT_INTERP: gcc -static, Go by default), and ignores LD_PRELOAD for a secure execution (AT_SECURE: a
// setuid or setgid bit that changes the identity, file capabilities).
#pragma once

#include <string>
#include <sys/types.h>

namespace hr {

enum ProgKind {
    PK_DYNAMIC,      // ELF with an interpreter (or a script whose interpreter is one): the shim runs
    PK_STATIC,       // ELF without an interpreter
    PK_SETID,        // setuid/setgid bit that changes the user or group it runs as
    PK_CAPABILITIES, // file capabilities (security.capability)
    PK_UNKNOWN,      // not found or not readable here: exec will say why (treated as dynamic)
};

struct ProgInfo {
    ProgKind kind = PK_UNKNOWN;
    std::string path; // the file examined (after a PATH search; the interpreter of a script)
};

// Classifies the executable at path (already resolved). uid/gid: who the generation runs as, so that a
// setuid-root program run by root counts as dynamic (no identity change: no AT_SECURE). A "#!" script
// is classified by its interpreter (one level, like the kernel's first step).
ProgInfo prog_classify(const std::string &path, uid_t uid, gid_t gid);
// PROGRAM as exec will find it: with a '/', as is (relative to dir if set and relative), else the first
// executable regular file of that name in $PATH (dir's for a relative PATH entry). Empty if none.
std::string prog_resolve(const std::string &program, const std::string &dir);
// "a static executable (no ELF interpreter)", "setuid or setgid", "a program with file capabilities".
const char *prog_kind_text(ProgKind k);
inline bool prog_shimless(ProgKind k) { return k == PK_STATIC || k == PK_SETID || k == PK_CAPABILITIES; }

} // namespace hr
