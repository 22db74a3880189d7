// Command line of the launcher. Parsing is separate from running so it can be tested on its own.
#pragma once

#include <string>
#include <vector>

namespace hr {

// Exit statuses of the launcher itself (the program's own status is passed through otherwise).
constexpr int kExitLauncherError = 125; // bad options, missing shim, internal failure
constexpr int kExitNotExecutable = 126; // PROGRAM found but could not be executed
constexpr int kExitNotFound = 127;      // PROGRAM not found

constexpr int kMaxVerbose = 3; // -vvv; more v's add nothing

// --ready: when a new generation counts as ready.
enum ReadyMode {
    READY_LISTEN, // it took over (or opened) its sockets and accepts
    READY_NOTIFY, // it sent READY=1 on the NOTIFY_SOCKET the launcher gave it (sd_notify)
    READY_DELAY,  // READY_LISTEN, then still alive ready_delay seconds later
};

// --restart: what happens when the serving generation's main process exits on its own.
enum RestartPolicy { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

struct Options {
    std::string pid_file;
    std::string control;  // --control PATH: the control socket; empty: none
    ReadyMode ready = READY_LISTEN;
    double ready_delay = 0;
    std::string ready_check; // --ready-check CMD; empty: none
    // After a new generation takes over, the old one stands by (not accepting, not stopped) this long and
    // resumes if the new one fails meanwhile. 2 s catches a program that dies right after it starts to
    // serve (a lazy start-up error) and costs nothing but a later report and a paused old process.
    double rollback_window = 2;
    RestartPolicy restart = RESTART_NO;
    double ready_timeout = 30;
    double drain_timeout = 30;
    double kill_timeout = 10;
    int stop_signal = 15; // SIGTERM
    std::string shim;     // empty: next to the launcher, then the installed one
    std::string chdir;    // --chdir DIR: generations start in DIR (entered afresh each time); empty: none
    std::vector<std::string> instance_locks; // --instance-lock PATH (repeatable): flock() guards handed over
    std::vector<std::string> listen; // --listen ADDR (repeatable), as given; checked by listen_parse()
    std::string user;     // --user USER[:GROUP]; empty: generations run as the launcher
    bool seccomp = false; // --seccomp: programs the shim cannot run in get their sockets by seccomp (seccomp.h)
    bool seccomp_accept = false; // --seccomp-accept (implies --seccomp): accept on a shared socket trapped too
    int verbose = 0;      // 0..kMaxVerbose: 1 the launcher's detail, 2 the shim's start-up, 3 its tracing
    std::vector<std::string> argv; // PROGRAM ARGS...
};

enum ParseResult { PARSE_RUN, PARSE_EXIT_OK, PARSE_ERROR };

// Fills opts, or writes one line (without newline) into msg: the usage error, or the help/version text.
ParseResult parse_options(int argc, char **argv, Options *opts, std::string *msg);

// The longest time any SEC option takes: 7 days.
constexpr int kMaxSeconds = 7 * 86400;

// "1.5" -> 1.5: a number of seconds > 0 and <= kMaxSeconds in plain decimal (digits, optionally '.' and
// digits). False if it is not one ("0x10", " 5", "1e3", "-1", ".5", "5." are not).
bool parse_seconds(const std::string &s, double *out);
// What parse_seconds accepts (zero_ok: also 0), for error messages: "a number of seconds > 0 and <= ...".
std::string seconds_expected(bool zero_ok);

// Whether the launcher will be able to create its --pid-file at path: the directory exists, is one, and
// the launcher may create files in it; path itself is not a directory. False with *why: "directory /run/x:
// No such file or directory". The pid file itself is written later (Supervisor::write_pid_file).
bool check_pid_file(const std::string &path, std::string *why);

// "TERM", "SIGTERM", "term", "15" -> 15, "RTMIN+3" -> SIGRTMIN + 3: any signal Linux names; -1 if unknown.
// signal_name: "SIGTERM", "SIGRTMIN+3" ("signal N" if it has no name); a static buffer.
int parse_signal(const std::string &s);
const char *signal_name(int sig);

} // namespace hr
