// Where the shim is, and whether a file is one: checked at start, because a wrong --shim would otherwise run
// the program without hot restart (the dynamic loader ignores an LD_PRELOAD entry it cannot load).
#pragma once

#include <string>

namespace hr {

// The soname the Makefile links the shim with: what tells it apart from any other shared object.
constexpr const char kShimSoname[] = "libhotrestart.so";

// Where the shim is: --shim, else next to the launcher binary, else the installed copy. Empty if none.
std::string find_shim(const std::string &option);

// True if path is the hotrestart shim, as far as can be told without loading it: an ELF shared object of
// the launcher's own class, byte order and machine, with soname kShimSoname and the socket wrappers
// defined. Otherwise false, with *why saying what it is instead (one phrase, e.g. "not an ELF file").
bool check_shim(const std::string &path, std::string *why);

} // namespace hr
