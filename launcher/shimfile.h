// Where the shim is, and whether a file is one: checked at start, because a wrong --shim would otherwise run
// the program without hot restart (the dynamic loader ignores an LD_PRELOAD entry it cannot load).
#pragma once

#include <string>
#include <vector>

namespace hr {

// The soname the Makefile links the shim with: what tells it apart from any other shared object.
constexpr const char kShimSoname[] = "libhotrestart.so";

// Where the shim is looked for without --shim, in order: next to the launcher binary (the build tree),
// ../lib/hotrestart/ from it (an installed tree, wherever it was moved), then the configured LIBDIR.
std::vector<std::string> shim_candidates();

// The absolute path of the shim: --shim (made absolute) if given and readable, else the first readable
// candidate. Empty if none; then *tried lists every path that was tried.
std::string find_shim(const std::string &option, std::vector<std::string> *tried);

// True if path is the hotrestart shim, as far as can be told without loading it: an ELF shared object of
// the launcher's own class, byte order and machine, with soname kShimSoname and the socket wrappers
// defined. Otherwise false, with *why saying what it is instead (one phrase, e.g. "not an ELF file").
bool check_shim(const std::string &path, std::string *why);

} // namespace hr
