#include "options.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
    "\n"
    "Runs PROGRAM with the hotrestart shim preloaded. SIGHUP starts a new generation that takes over\n"
    "the listening sockets, waits until it is ready, drains and stops the old one (or rolls back).\n"
    "SIGTERM/SIGINT stop gracefully; SIGUSR1/SIGUSR2 are forwarded to the serving generation.\n"
    "\n"
    "options:\n"
    "  --pid-file PATH        write the launcher's pid to PATH (atomically), removed at exit\n"
    "  --ready-timeout SEC    a new generation must be ready within SEC (default 30)\n"
    "  --drain-timeout SEC    wait at most SEC for the old generation's connections (default 30)\n"
    "  --stop-signal SIG      signal that stops a generation, name or number (default TERM)\n"
    "  --kill-timeout SEC     SIGKILL a generation SEC after the stop signal (default 10)\n"
    "  --shim PATH            the shim library (default: next to the launcher, then " HR_LIBDIR ")\n"
    "  -v, --verbose          more detail (repeat for the shim's own tracing)\n"
    "  -h, --help             this help\n"
    "      --version          print the version\n"
    "\n"
    "exit status: the program's own; 128+N if it died of signal N; 126 if it cannot be executed;\n"
    "127 if it is not found; 125 for the launcher's own errors.";

const struct { const char *name; int sig; } kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},   {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH}, {"ABRT", SIGABRT}, {"ALRM", SIGALRM},
};

bool parse_seconds(const std::string &s, double *out) {
    if (s.empty()) return false;
    char *end = nullptr;
    double v = strtod(s.c_str(), &end);
    if (*end != '\0' || !(v > 0) || v > 86400 * 7) return false;
    *out = v;
    return true;
}

} // namespace

int parse_signal(const std::string &s) {
    if (s.empty()) return -1;
    if (s.find_first_not_of("0123456789") == std::string::npos) {
        if (s.size() > 3) return -1;
        int n = atoi(s.c_str());
        return (n >= 1 && n < NSIG) ? n : -1;
    }
    const char *name = s.c_str();
    if (strncasecmp(name, "SIG", 3) == 0) name += 3;
    for (const auto &e : kSignals)
        if (strcasecmp(name, e.name) == 0) return e.sig;
    return -1;
}

const char *signal_name(int sig) {
    static char buf[16];
    for (const auto &e : kSignals)
        if (e.sig == sig) {
            snprintf(buf, sizeof buf, "SIG%s", e.name);
            return buf;
        }
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
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
        if (name == "-v" || name == "--verbose" || name == "-vv") {
            o->verbose += name == "-vv" ? 2 : 1;
            continue;
        }
        static const char *const with_value[] = {"--pid-file", "--ready-timeout", "--drain-timeout",
                                                 "--stop-signal", "--kill-timeout", "--shim"};
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
        if (name == "--pid-file" || name == "--shim") {
            if (value.empty()) {
                *msg = "option " + name + " needs a non-empty path";
                return PARSE_ERROR;
            }
            (name == "--shim" ? o->shim : o->pid_file) = value;
        } else if (name == "--stop-signal") {
            int sig = parse_signal(value);
            if (sig < 0 || sig == SIGKILL || sig == SIGSTOP) {
                *msg = "invalid --stop-signal '" + value + "': expected a signal name (TERM, QUIT, INT...) or number";
                return PARSE_ERROR;
            }
            o->stop_signal = sig;
        } else {
            double *dst = name == "--ready-timeout" ? &o->ready_timeout
                        : name == "--drain-timeout" ? &o->drain_timeout : &o->kill_timeout;
            if (!parse_seconds(value, dst)) {
                *msg = "invalid " + name + " '" + value + "': expected a number of seconds > 0";
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

std::string find_shim(const std::string &option) {
    auto usable = [](const std::string &p) { return !p.empty() && access(p.c_str(), R_OK) == 0; };
    if (!option.empty()) {
        if (!usable(option)) return "";
        if (option[0] == '/') return option;
        char *abs = realpath(option.c_str(), nullptr);
        std::string r = abs ? abs : "";
        free(abs);
        return r;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string dir(self);
        dir = dir.substr(0, dir.rfind('/'));
        if (usable(dir + "/libhotrestart.so")) return dir + "/libhotrestart.so";
    }
    std::string installed = HR_LIBDIR "/libhotrestart.so";
    return usable(installed) ? installed : "";
}

} // namespace hr
