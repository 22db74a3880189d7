#include "options.h"

#include "listen.h"

#include <algorithm>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HR_VERSION
#define HR_VERSION "dev"
#endif
#ifndef HR_LIBDIR
#define HR_LIBDIR "/usr/local/lib/hotrestart"
#endif

namespace hr {
namespace {

const char kHelp[] =
    "usage: hotrestart [OPTIONS] -- PROGRAM [ARGS...]\n"
    "       hotrestart reload [--control PATH] [--json] [--timeout SEC]\n"
    "       hotrestart status [--control PATH] [--json]\n"
    "       hotrestart stop   [--control PATH] [--timeout SEC]\n"
    "       hotrestart verify [--reloads N] [--clients C] [--probe KIND] [--connect ADDR]... [--json]\n"
    "                         [OPTIONS] -- PROGRAM [ARGS...]   (reloads PROGRAM under load: anything lost?)\n"
    "\n"
    "Runs PROGRAM with the hotrestart shim preloaded. SIGHUP (or `hotrestart reload`) starts a new\n"
    "generation that takes over the listening sockets, waits until it is ready, drains and stops the old\n"
    "one (or rolls back). SIGTERM/SIGINT stop gracefully; SIGUSR1/SIGUSR2 are forwarded to the serving\n"
    "generation. The subcommands talk to a launcher started with --control (or HOTRESTART_CONTROL).\n"
    "\n"
    "options:\n"
    "  --control PATH         serve reload/status/stop on a unix socket at PATH (mode 0600)\n"
    "  --chdir DIR            start each generation (and --ready-check) in DIR, entered afresh every time:\n"
    "                         a relative PROGRAM is found in the release a DIR symlink names at that reload\n"
    "  --pid-file PATH        write the launcher's pid to PATH (atomically), removed at exit; its directory\n"
    "                         must exist and be writable at start\n"
    "  --ready MODE           listen (default): it took over its sockets and accepts; notify: it sent\n"
    "                         READY=1 to $NOTIFY_SOCKET; SEC: listen, then still alive SEC seconds later\n"
    "  --ready-check CMD      run CMD (/bin/sh -c) once a new generation is ready; non-zero rolls back\n"
    "  --rollback-window SEC  the old generation stands by SEC after the new one takes over, and serves\n"
    "                         again if the new one fails meanwhile (default 2; 0: none)\n"
    "  --restart POLICY       no (default), on-failure, always: start a new generation at once when the\n"
    "                         serving one exits on its own (on-failure: non-zero or a signal); repeated\n"
    "                         failures back off from 100 ms, doubling, to 10 s\n"
    "  --ready-timeout SEC    a new generation must be ready within SEC (default 30)\n"
    "  --drain-timeout SEC    wait at most SEC for the old generation's connections (default 30)\n"
    "  --stop-signal SIG      signal that stops a generation (default TERM): a name as kill -l lists them\n"
    "                         (QUIT, TSTP, PWR, RTMIN+2, RTMAX-1...) or a number; not KILL or STOP\n"
    "  --kill-timeout SEC     SIGKILL a generation SEC after the stop signal (default 10)\n"
    "  --instance-lock PATH   PATH is a single-instance lock (flock): a new generation's flock(LOCK_EX|\n"
    "                         LOCK_NB) of it succeeds while an older generation holds it, and the lock is\n"
    "                         handed over when that one is gone (relative: to the program's directory;\n"
    "                         repeatable)\n"
    "  --listen ADDR          bind and listen on ADDR before the first generation (repeatable): HOST:PORT,\n"
    "                         [V6]:PORT, unix:PATH or udp:HOST:PORT; every generation gets it (LISTEN_FDS)\n"
    "  --user USER[:GROUP]    run every generation as USER (its groups, HOME and USER); the launcher keeps\n"
    "                         its own identity (e.g. root for --listen on port 80)\n"
    "  --seccomp              a program the shim cannot run in (static, Go, set-id, file capabilities)\n"
    "                         binds and listens as it likes: a seccomp filter hands it the launcher's\n"
    "                         socket (Linux 5.14+, checked at start)\n"
    "  --seccomp-accept       --seccomp, and its accept() on a shared socket is trapped too: a draining\n"
    "                         generation takes no more connections (Linux 6.6+, checked at start)\n"
    "  --shim PATH            the shim library, checked at start (default: libhotrestart.so next to the\n"
    "                         launcher, then in ../lib/hotrestart/ from there, then in " HR_LIBDIR ")\n"
    "  -v, --verbose          more detail: -v the launcher's steps, -vv also what the shim inherited, -vvv\n"
    "                         the shim's tracing (--verbose repeats; --verbose=N sets level N, 0 to 3)\n"
    "  -h, --help             this help\n"
    "      --version          print the version\n"
    "\n"
    "SEC is a number of seconds in plain decimal (30, 1.5), > 0 (--rollback-window: >= 0), at most 604800\n"
    "(7 days).\n"
    "\n"
    "exit status: the program's own; 128+N if it died of signal N; 126 if it cannot be executed;\n"
    "127 if it is not found; 125 for the launcher's own errors; 1 if the first generation failed its\n"
    "--ready-check. reload: 0 served by the new generation, 1 rolled back, 124 --timeout passed.";

// Every signal name Linux has (those of this architecture), canonical names first: signal_name() prints the
// first entry of a number, parse_signal() takes them all. The real-time ones are RTMIN, RTMIN+n, RTMAX-n, RTMAX.
const struct { const char *name; int sig; } kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},     {"QUIT", SIGQUIT},     {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},     {"BUS", SIGBUS},     {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},
#ifdef SIGSTKFLT
    {"STKFLT", SIGSTKFLT},
#endif
    {"CHLD", SIGCHLD},     {"CONT", SIGCONT},   {"STOP", SIGSTOP},     {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},     {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF},     {"WINCH", SIGWINCH}, {"IO", SIGIO},
#ifdef SIGPWR
    {"PWR", SIGPWR},
#endif
    {"SYS", SIGSYS},
#ifdef SIGEMT
    {"EMT", SIGEMT},
#endif
    // Aliases.
    {"IOT", SIGIOT},       {"CLD", SIGCHLD},    {"POLL", SIGPOLL},
};

// "+3" or "-3" after RTMIN/RTMAX: the offset, or -1.
int rt_offset(const char *p, char sign) {
    if (*p == '\0') return 0;
    if (*p != sign || p[1] == '\0' || strlen(p + 1) > 2 || strspn(p + 1, "0123456789") != strlen(p + 1)) return -1;
    return atoi(p + 1);
}

// Plain decimal only: digits, optionally a '.' and more digits ("30", "1.5"). No sign, blank, exponent, hex,
// "inf" or "nan", which strtod would all take.
bool parse_seconds_from(const std::string &s, bool zero_ok, double *out) {
    size_t dot = s.find('.');
    std::string whole = s.substr(0, dot), frac = dot == std::string::npos ? "1" : s.substr(dot + 1);
    auto digits = [](const std::string &d) { return !d.empty() && d.find_first_not_of("0123456789") == std::string::npos; };
    if (!digits(whole) || !digits(frac)) return false;
    double v = strtod(s.c_str(), nullptr);
    if (v > kMaxSeconds || (v == 0 && !zero_ok)) return false;
    *out = v;
    return true;
}

} // namespace

bool parse_seconds(const std::string &s, double *out) { return parse_seconds_from(s, false, out); }

std::string seconds_expected(bool zero_ok) {
    return std::string("a number of seconds ") + (zero_ok ? ">= 0" : "> 0") + " and <= " +
           std::to_string(kMaxSeconds) + " (7 days), e.g. 30 or 1.5";
}

int parse_signal(const std::string &s) {
    if (s.empty()) return -1;
    if (s.find_first_not_of("0123456789") == std::string::npos) {
        if (s.size() > 3) return -1;
        int n = atoi(s.c_str());
        // Only numbers with a name: the ones between the last standard signal and SIGRTMIN are the C
        // library's own (thread cancellation, setxid).
        return n >= 1 && n <= SIGRTMAX && strncmp(signal_name(n), "signal ", 7) != 0 ? n : -1;
    }
    const char *name = s.c_str();
    if (strncasecmp(name, "SIG", 3) == 0) name += 3;
    for (const auto &e : kSignals)
        if (strcasecmp(name, e.name) == 0) return e.sig;
    int n = -1;
    if (strncasecmp(name, "RTMIN", 5) == 0 && (n = rt_offset(name + 5, '+')) >= 0) n = SIGRTMIN + n;
    else if (strncasecmp(name, "RTMAX", 5) == 0 && (n = rt_offset(name + 5, '-')) >= 0) n = SIGRTMAX - n;
    else return -1;
    return n >= SIGRTMIN && n <= SIGRTMAX ? n : -1;
}

const char *signal_name(int sig) {
    static char buf[24];
    for (const auto &e : kSignals)
        if (e.sig == sig) {
            snprintf(buf, sizeof buf, "SIG%s", e.name);
            return buf;
        }
    if (sig == SIGRTMIN) snprintf(buf, sizeof buf, "SIGRTMIN");
    else if (sig == SIGRTMAX) snprintf(buf, sizeof buf, "SIGRTMAX");
    else if (sig > SIGRTMIN && sig < SIGRTMAX) snprintf(buf, sizeof buf, "SIGRTMIN+%d", sig - SIGRTMIN);
    else snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

bool check_pid_file(const std::string &path, std::string *why) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st;
    if (stat(dir.c_str(), &st) < 0) {
        *why = "directory " + dir + ": " + strerror(errno);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        *why = dir + " is not a directory";
        return false;
    }
    if (access(dir.c_str(), W_OK | X_OK) < 0) {
        *why = "unable to create files in " + dir + ": " + strerror(errno);
        return false;
    }
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        *why = "it is a directory";
        return false;
    }
    return true;
}

ParseResult parse_options(int argc, char **argv, Options *o, std::string *msg) {
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (a.empty() || a[0] != '-') break; // PROGRAM without "--"
        std::string name = a, value;
        bool inline_value = false;
        size_t eq = a.find('=');
        if (a.compare(0, 2, "--") == 0 && eq != std::string::npos) {
            name = a.substr(0, eq);
            value = a.substr(eq + 1);
            inline_value = true;
        }
        if (name == "-h" || name == "--help") {
            *msg = kHelp;
            return PARSE_EXIT_OK;
        }
        if (name == "--version") {
            *msg = "hotrestart " HR_VERSION;
            return PARSE_EXIT_OK;
        }
        // -v, -vv, -vvv...: one level per v; --verbose: one level each time; --verbose=N: level N exactly.
        if (a.size() >= 2 && a[0] == '-' && a.find_first_not_of('v', 1) == std::string::npos) {
            o->verbose = std::min(o->verbose + int(a.size() - 1), kMaxVerbose);
            continue;
        }
        if (name == "--verbose") {
            if (!inline_value) {
                o->verbose = std::min(o->verbose + 1, kMaxVerbose);
            } else if (value.size() == 1 && value[0] >= '0' && value[0] - '0' <= kMaxVerbose) {
                o->verbose = value[0] - '0';
            } else {
                *msg = "invalid --verbose '" + value + "': expected a level 0, 1, 2 or 3";
                return PARSE_ERROR;
            }
            continue;
        }
        if (name == "--seccomp") {
            if (inline_value) {
                *msg = "option --seccomp takes no value (try --help)";
                return PARSE_ERROR;
            }
            o->seccomp = true;
            continue;
        }
        if (name == "--seccomp-accept") {
            if (inline_value) {
                *msg = "option --seccomp-accept takes no value (try --help)";
                return PARSE_ERROR;
            }
            o->seccomp = true; // implies --seccomp
            o->seccomp_accept = true;
            continue;
        }
        static const char *const with_value[] = {"--pid-file", "--ready-timeout", "--drain-timeout",
                                                 "--stop-signal", "--kill-timeout", "--shim", "--control",
                                                 "--ready", "--ready-check", "--rollback-window", "--restart", "--chdir",
                                                 "--instance-lock", "--listen", "--user"};
        bool known = false;
        for (const char *w : with_value) known = known || name == w;
        if (!known) {
            *msg = "unknown option '" + a + "' (try --help)";
            return PARSE_ERROR;
        }
        if (!inline_value) {
            if (i + 1 >= argc) {
                *msg = "option " + name + " needs a value (try --help)";
                return PARSE_ERROR;
            }
            value = argv[++i];
        }
        if (name == "--pid-file" || name == "--shim" || name == "--control" || name == "--ready-check" ||
            name == "--chdir") {
            if (value.empty()) {
                *msg = "option " + name + (name == "--ready-check" ? " needs a command" : " needs a non-empty path");
                return PARSE_ERROR;
            }
            (name == "--shim" ? o->shim : name == "--control" ? o->control
                                        : name == "--ready-check" ? o->ready_check
                                        : name == "--chdir" ? o->chdir : o->pid_file) = value;
        } else if (name == "--instance-lock") {
            if (value.empty() || value.find('\n') != std::string::npos) {
                *msg = "invalid --instance-lock: expected a non-empty path without a newline";
                return PARSE_ERROR;
            }
            o->instance_locks.push_back(value);
        } else if (name == "--listen") {
            std::string why;
            if (!listen_syntax_ok(value, &why)) {
                *msg = "invalid --listen '" + value + "': " + why;
                return PARSE_ERROR;
            }
            o->listen.push_back(value);
        } else if (name == "--user") {
            if (value.empty() || value[0] == ':' || value.back() == ':') {
                *msg = "invalid --user '" + value + "': expected USER or USER:GROUP";
                return PARSE_ERROR;
            }
            o->user = value;
        } else if (name == "--ready") {
            if (value == "listen") {
                o->ready = READY_LISTEN;
            } else if (value == "notify") {
                o->ready = READY_NOTIFY;
            } else if (parse_seconds(value, &o->ready_delay)) {
                o->ready = READY_DELAY;
            } else {
                *msg = "invalid --ready '" + value + "': expected listen, notify or " + seconds_expected(false);
                return PARSE_ERROR;
            }
        } else if (name == "--restart") {
            if (value == "no") o->restart = RESTART_NO;
            else if (value == "on-failure") o->restart = RESTART_ON_FAILURE;
            else if (value == "always") o->restart = RESTART_ALWAYS;
            else {
                *msg = "invalid --restart '" + value + "': expected no, on-failure or always";
                return PARSE_ERROR;
            }
        } else if (name == "--rollback-window") {
            if (!parse_seconds_from(value, true, &o->rollback_window)) {
                *msg = "invalid --rollback-window '" + value + "': expected " + seconds_expected(true);
                return PARSE_ERROR;
            }
        } else if (name == "--stop-signal") {
            int sig = parse_signal(value);
            if (sig < 0) {
                *msg = "invalid --stop-signal '" + value + "': expected a signal name (TERM, QUIT, INT, RTMIN+2...) or " +
                       "number (see kill -l)";
                return PARSE_ERROR;
            }
            if (sig == SIGKILL || sig == SIGSTOP) {
                *msg = "invalid --stop-signal '" + value + "': " + signal_name(sig) +
                       (sig == SIGKILL ? " cannot be caught: it is what the launcher sends after --kill-timeout"
                                       : " suspends a process, it does not stop it");
                return PARSE_ERROR;
            }
            o->stop_signal = sig;
        } else {
            double *dst = name == "--ready-timeout" ? &o->ready_timeout
                        : name == "--drain-timeout" ? &o->drain_timeout : &o->kill_timeout;
            if (!parse_seconds(value, dst)) {
                *msg = "invalid " + name + " '" + value + "': expected " + seconds_expected(false);
                return PARSE_ERROR;
            }
        }
    }
    for (; i < argc; ++i) o->argv.push_back(argv[i]);
    if (o->argv.empty()) {
        *msg = "missing PROGRAM (usage: hotrestart [OPTIONS] -- PROGRAM [ARGS...]; try --help)";
        return PARSE_ERROR;
    }
    return PARSE_RUN;
}

} // namespace hr
