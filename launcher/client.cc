#include "client.h"

#include "options.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace hr {
namespace {

constexpr int kExitTimeout = 124;

int64_t mono_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

const char kUsage[] = "usage: hotrestart reload [--control PATH] [--json] [--timeout SEC]\n"
                      "       hotrestart status [--control PATH] [--json]\n"
                      "       hotrestart stop   [--control PATH] [--timeout SEC]\n"
                      "PATH defaults to $HOTRESTART_CONTROL. reload exits 0 if the new generation serves, 1 if it\n"
                      "was rolled back, 124 if --timeout passed first (the reload goes on), 125 if no launcher\n"
                      "answers; stop exits with the launcher's exit status.\n";

int usage(const char *cmd, const std::string &why) {
    fprintf(stderr, "hotrestart %s: %s\n%s", cmd, why.c_str(), kUsage);
    return kExitLauncherError;
}

// Connects to the launcher at path; -1 after printing why not.
int connect_launcher(const char *cmd, const std::string &path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        fprintf(stderr, "hotrestart %s: control socket path '%s' is too long\n", cmd, path.c_str());
        return -1;
    }
    memcpy(a.sun_path, path.c_str(), path.size());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "hotrestart %s: unable to create a socket: %s\n", cmd, strerror(errno));
        return -1;
    }
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) return fd;
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED)
        fprintf(stderr, "hotrestart %s: no launcher at %s (%s): start one with --control %s\n", cmd, path.c_str(),
                strerror(e), path.c_str());
    else if (e == EACCES || e == EPERM)
        fprintf(stderr, "hotrestart %s: unable to connect to %s: %s (run as the launcher's user or root)\n", cmd,
                path.c_str(), strerror(e));
    else
        fprintf(stderr, "hotrestart %s: unable to connect to %s: %s\n", cmd, path.c_str(), strerror(e));
    return -1;
}

} // namespace

bool run_client(int argc, char **argv, int *status) {
    if (argc < 2) return false;
    const std::string cmd = argv[1];
    if (cmd != "reload" && cmd != "status" && cmd != "stop") return false;
    const char *c = argv[1];
    std::string path;
    bool json = false;
    double timeout = -1;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i], value;
        size_t eq = a.find('=');
        std::string name = a.substr(0, eq);
        bool inline_value = a.compare(0, 2, "--") == 0 && eq != std::string::npos;
        auto take_value = [&]() -> bool {
            if (inline_value) {
                value = a.substr(eq + 1);
                return true;
            }
            if (i + 1 >= argc) return false;
            value = argv[++i];
            return true;
        };
        if (a == "-h" || a == "--help") {
            fputs(kUsage, stdout);
            *status = 0;
            return true;
        }
        if (a == "--json" && cmd != "stop") {
            json = true;
        } else if (name == "--control") {
            if (!take_value() || value.empty()) {
                *status = usage(c, "--control needs a path");
                return true;
            }
            path = value;
        } else if (name == "--timeout" && cmd != "status") {
            if (!take_value() || !parse_seconds(value, &timeout)) {
                *status = usage(c, "invalid --timeout '" + value + "': expected " + seconds_expected(false));
                return true;
            }
        } else {
            *status = usage(c, "unknown argument '" + a + "'");
            return true;
        }
    }
    if (path.empty()) {
        const char *env = getenv("HOTRESTART_CONTROL");
        if (env) path = env;
    }
    if (path.empty()) {
        *status = usage(c, "no control socket: give --control PATH or set HOTRESTART_CONTROL");
        return true;
    }
    int fd = connect_launcher(c, path);
    if (fd < 0) {
        *status = kExitLauncherError;
        return true;
    }
    std::string req = cmd + (json ? " json" : "") + "\n";
    // A launcher that refuses us has already written why and closed: read that even if sending fails.
    int send_error = send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()) ? 0 : errno;
    // The reply: "<status>\n<body>", then EOF (for stop: when the launcher has exited).
    const int64_t deadline = timeout > 0 ? mono_ms() + int64_t(timeout * 1000) : -1;
    std::string reply;
    bool eof = false;
    while (!eof) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0) break;
            wait = int(left);
        }
        pollfd p{fd, POLLIN, 0};
        int r = poll(&p, 1, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) eof = true;
        else reply.append(buf, size_t(n));
    }
    close(fd);
    size_t nl = reply.find('\n');
    if (nl == std::string::npos && send_error) {
        fprintf(stderr, "hotrestart %s: unable to send to %s: %s\n", c, path.c_str(), strerror(send_error));
        *status = kExitLauncherError;
        return true;
    }
    if (nl == std::string::npos) {
        if (!eof) {
            fprintf(stderr, "hotrestart %s: no outcome after %g s; the %s goes on (see hotrestart status)\n", c,
                    timeout, cmd.c_str());
            *status = kExitTimeout;
        } else {
            fprintf(stderr, "hotrestart %s: the launcher at %s closed the connection without an answer\n", c,
                    path.c_str());
            *status = kExitLauncherError;
        }
        return true;
    }
    *status = atoi(reply.substr(0, nl).c_str());
    std::string body = reply.substr(nl + 1);
    if (*status == kExitLauncherError) fputs(body.c_str(), stderr);
    else fputs(body.c_str(), stdout);
    if (cmd == "stop" && !eof) {
        // The status came but the launcher has not exited yet within --timeout.
        fprintf(stderr, "hotrestart stop: the launcher has not exited after %g s\n", timeout);
        *status = kExitTimeout;
    }
    return true;
}

} // namespace hr
