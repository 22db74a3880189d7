// Command line of the launcher. Parsing is separate from running so it can be tested on its own.
#pragma once

#include <string>
#include <vector>

namespace hr {

// Exit statuses of the launcher itself (the program's own status is passed through otherwise).
constexpr int kExitLauncherError = 125; // bad options, missing shim, internal failure
constexpr int kExitNotExecutable = 126; // PROGRAM found but could not be executed
constexpr int kExitNotFound = 127;      // PROGRAM not found

struct Options {
    std::string pid_file;
    double ready_timeout = 30;
    double drain_timeout = 30;
    double kill_timeout = 10;
    int stop_signal = 15; // SIGTERM
    std::string shim;     // empty: next to the launcher, then the installed one
    int verbose = 0;
    std::vector<std::string> argv; // PROGRAM ARGS...
};

enum ParseResult { PARSE_RUN, PARSE_EXIT_OK, PARSE_ERROR };

// Fills opts, or writes one line (without newline) into msg: the usage error, or the help/version text.
ParseResult parse_options(int argc, char **argv, Options *opts, std::string *msg);

// "TERM", "SIGTERM", "term", "15" -> 15; -1 if unknown.
int parse_signal(const std::string &s);
const char *signal_name(int sig);

// Where the shim is: --shim, else next to the launcher binary, else the installed copy. Empty if none.
std::string find_shim(const std::string &option);

} // namespace hr
