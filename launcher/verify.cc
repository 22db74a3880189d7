#include "verify.h"

#include "options.h"
#include "procs.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace hr {
namespace {

constexpr int kExitFailed = 1;
constexpr int kRequestTimeoutMs = 10000; // one request: connect, send, reply
constexpr int kMaxFailuresListed = 100;  // in the JSON and text output; the counts have them all

const char kUsage[] =
    "usage: hotrestart verify [--reloads N] [--clients C] [--probe http[:PATH]|tcp|line:TEXT]\n"
    "                         [--connect ADDR]... [--json] [LAUNCHER OPTIONS] -- PROGRAM [ARGS...]\n"
    "Runs PROGRAM under a launcher with a private control socket, waits until it serves, sends it requests\n"
    "from C client threads (a new connection each; default 8), performs N reloads (default 5), each waiting\n"
    "for its report, stops it gracefully and prints every request's outcome. --probe: http (default, GET\n"
    "PATH, default /, a 2xx status), tcp (a connect and an orderly close), line:TEXT (sends TEXT and a\n"
    "newline, expects a reply line). --connect ADDR (127.0.0.1:8080, [::1]:80, unix:/path, unix:@name;\n"
    "repeatable) defaults to the stream sockets the program listens on. Exit status: 0 nothing failed and\n"
    "every reload completed, 1 otherwise, 125 usage error or the program never served.\n";

int64_t mono_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::string fmt(const char *f, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, f, v);
    return buf;
}

// ---------------------------------------------------------------------------------------------------------
// A small JSON reader for the launcher's replies (report.cc writes them) and a writer for ours.

struct JValue {
    enum Type { NUL, BOOL, NUM, STR, ARR, OBJ } type = NUL;
    bool b = false;
    double num = 0;
    std::string str;
    std::vector<JValue> arr;
    std::vector<std::pair<std::string, JValue>> obj;
    const JValue *get(const char *key) const {
        for (const auto &kv : obj)
            if (kv.first == key) return &kv.second;
        return nullptr;
    }
    double number(const char *key, double dflt = 0) const {
        const JValue *v = get(key);
        return v && v->type == NUM ? v->num : dflt;
    }
    std::string string(const char *key) const {
        const JValue *v = get(key);
        return v && v->type == STR ? v->str : std::string();
    }
};

class JParser {
public:
    explicit JParser(const std::string &s) : s_(s) {}
    bool parse(JValue *out) {
        if (!value(out, 0)) return false;
        ws();
        return i_ == s_.size();
    }

private:
    void ws() {
        while (i_ < s_.size() && strchr(" \t\r\n", s_[i_])) ++i_;
    }
    bool lit(const char *w) {
        size_t n = strlen(w);
        if (s_.compare(i_, n, w) != 0) return false;
        i_ += n;
        return true;
    }
    bool string(std::string *out) {
        if (i_ >= s_.size() || s_[i_] != '"') return false;
        ++i_;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c != '\\') {
                *out += c;
                continue;
            }
            if (i_ >= s_.size()) return false;
            char e = s_[i_++];
            switch (e) {
            case 'n': *out += '\n'; break;
            case 't': *out += '\t'; break;
            case 'r': *out += '\r'; break;
            case 'b': *out += '\b'; break;
            case 'f': *out += '\f'; break;
            case 'u': {
                if (i_ + 4 > s_.size()) return false;
                unsigned v = unsigned(strtoul(s_.substr(i_, 4).c_str(), nullptr, 16));
                i_ += 4;
                if (v < 0x80) *out += char(v);
                else *out += '?'; // the launcher escapes only control characters this way
                break;
            }
            default: *out += e;
            }
        }
        if (i_ >= s_.size()) return false;
        ++i_;
        return true;
    }
    bool value(JValue *v, int depth) {
        if (depth > 32) return false;
        ws();
        if (i_ >= s_.size()) return false;
        char c = s_[i_];
        if (c == '{') {
            v->type = JValue::OBJ;
            ++i_;
            ws();
            if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
            for (;;) {
                ws();
                std::pair<std::string, JValue> kv;
                if (!string(&kv.first)) return false;
                ws();
                if (i_ >= s_.size() || s_[i_++] != ':') return false;
                if (!value(&kv.second, depth + 1)) return false;
                v->obj.push_back(std::move(kv));
                ws();
                if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
                if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
                return false;
            }
        }
        if (c == '[') {
            v->type = JValue::ARR;
            ++i_;
            ws();
            if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
            for (;;) {
                JValue e;
                if (!value(&e, depth + 1)) return false;
                v->arr.push_back(std::move(e));
                ws();
                if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
                if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
                return false;
            }
        }
        if (c == '"') {
            v->type = JValue::STR;
            return string(&v->str);
        }
        if (lit("null")) return v->type = JValue::NUL, true;
        if (lit("true")) return v->type = JValue::BOOL, v->b = true, true;
        if (lit("false")) return v->type = JValue::BOOL, v->b = false, true;
        const char *start = s_.c_str() + i_;
        char *end = nullptr;
        v->num = strtod(start, &end);
        if (end == start) return false;
        v->type = JValue::NUM;
        i_ += size_t(end - start);
        return true;
    }
    const std::string &s_;
    size_t i_ = 0;
};

std::string jstr(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

std::string to_json(const JValue &v) {
    switch (v.type) {
    case JValue::NUL: return "null";
    case JValue::BOOL: return v.b ? "true" : "false";
    case JValue::NUM: return v.num == double(int64_t(v.num)) ? std::to_string(int64_t(v.num)) : fmt("%.17g", v.num);
    case JValue::STR: return jstr(v.str);
    case JValue::ARR: {
        std::string out = "[";
        for (size_t i = 0; i < v.arr.size(); ++i) out += (i ? "," : "") + to_json(v.arr[i]);
        return out + "]";
    }
    case JValue::OBJ: {
        std::string out = "{";
        for (size_t i = 0; i < v.obj.size(); ++i)
            out += (i ? "," : "") + jstr(v.obj[i].first) + ":" + to_json(v.obj[i].second);
        return out + "}";
    }
    }
    return "null";
}

// ---------------------------------------------------------------------------------------------------------
// Where the clients connect, and what they send.

struct Target {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string name;
};

// "127.0.0.1:80", "[::1]:80", "localhost:80", "unix:/run/x.sock", "unix:@name" (as --connect takes them and
// as the launcher names its listeners). A wildcard address is reached on loopback. False with *why.
bool parse_target(std::string a, Target *t, std::string *why) {
    t->name = a;
    size_t sp = a.find(" (v6only)");
    if (sp != std::string::npos) a = a.substr(0, sp);
    if (a.compare(0, 5, "unix:") == 0) {
        std::string path = a.substr(5);
        sockaddr_un u{};
        u.sun_family = AF_UNIX;
        if (path.empty() || path.size() >= sizeof u.sun_path) return *why = "a unix socket path of 1 to 107 bytes", false;
        memcpy(u.sun_path, path.data(), path.size());
        if (path[0] == '@') u.sun_path[0] = '\0';
        memcpy(&t->addr, &u, sizeof u);
        t->len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
        return true;
    }
    size_t colon = a.rfind(':');
    if (colon == std::string::npos || colon + 1 >= a.size()) return *why = "HOST:PORT, [V6]:PORT or unix:PATH", false;
    std::string host = a.substr(0, colon), port = a.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
    if (host == "::") host = "::1";
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return *why = gai_strerror(rc), false;
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

enum Probe { PROBE_HTTP, PROBE_TCP, PROBE_LINE };
enum Kind { K_OK, K_REFUSED, K_RESET, K_TIMEOUT, K_BAD, K_KINDS };
const char *const kKindName[K_KINDS] = {"ok", "refused", "reset", "timeout", "bad_reply"};
const char *const kKindText[K_KINDS] = {"ok", "refused", "reset", "timeout", "bad reply"};

struct Result {
    int64_t t0 = 0, t1 = 0; // mono_us at start and end
    Kind kind = K_OK;
    int target = 0;
    pid_t pid = 0;  // "pid=N" in the reply
    pid_t pgrp = 0; // its process group when the reply came (a generation is one)
    std::string error;
};

struct ProbeSpec {
    Probe probe = PROBE_HTTP;
    std::string text; // http: the path; line: the line
};

void set_timeout(int fd, int64_t deadline_us) {
    int64_t left = deadline_us - mono_us();
    if (left < 1000) left = 1000;
    timeval tv{time_t(left / 1000000), suseconds_t(left % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Kind io_kind(int e, bool connecting) {
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS || e == ETIMEDOUT) return K_TIMEOUT;
    if (connecting) return e == ECONNRESET ? K_RESET : K_REFUSED;
    return K_RESET;
}

// One request on a new connection.
void one_request(const Target &t, const ProbeSpec &p, Result *r) {
    const int64_t deadline = mono_us() + int64_t(kRequestTimeoutMs) * 1000;
    int fd = socket(t.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r->kind = K_REFUSED;
        r->error = std::string("socket: ") + strerror(errno);
        return;
    }
    auto fail = [&](Kind k, const std::string &what) {
        r->kind = k;
        r->error = what;
        close(fd);
    };
    set_timeout(fd, deadline);
    while (connect(fd, reinterpret_cast<const sockaddr *>(&t.addr), t.len) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        return fail(io_kind(e, true), std::string("connect: ") + strerror(e));
    }
    std::string req;
    if (p.probe == PROBE_HTTP)
        req = "GET " + p.text + " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: hotrestart-verify\r\nConnection: close\r\n\r\n";
    else if (p.probe == PROBE_LINE)
        req = p.text + "\n";
    size_t off = 0;
    while (off < req.size()) {
        set_timeout(fd, deadline);
        ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            return fail(io_kind(e, false), std::string("send: ") + strerror(e));
        }
        off += size_t(n);
    }
    if (p.probe == PROBE_TCP) shutdown(fd, SHUT_WR);
    std::string reply;
    for (;;) {
        if (p.probe == PROBE_LINE && reply.find('\n') != std::string::npos) break;
        set_timeout(fd, deadline);
        char buf[8192];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            if (mono_us() >= deadline - 1000 && (e == EAGAIN || e == EWOULDBLOCK))
                return fail(K_TIMEOUT, "no reply within " + std::to_string(kRequestTimeoutMs / 1000) + " s");
            if (e == EAGAIN || e == EWOULDBLOCK) continue;
            return fail(io_kind(e, false), std::string("recv: ") + strerror(e));
        }
        if (n == 0) break;
        if (reply.size() < 65536) reply.append(buf, size_t(n));
    }
    close(fd);
    if (p.probe == PROBE_HTTP) {
        bool ok = reply.size() >= 12 && reply.compare(0, 7, "HTTP/1.") == 0 && reply[8] == ' ' && reply[9] == '2' &&
                  isdigit((unsigned char)reply[10]) && isdigit((unsigned char)reply[11]);
        if (!ok) {
            std::string first = reply.substr(0, reply.find('\r'));
            if (first.size() > 60) first = first.substr(0, 60);
            r->kind = K_BAD;
            r->error = reply.empty() ? "closed without a reply" : "reply '" + first + "'";
        }
    } else if (p.probe == PROBE_LINE && reply.find('\n') == std::string::npos) {
        r->kind = K_BAD;
        r->error = reply.empty() ? "closed without a reply line" : "closed in the middle of the reply line";
    }
    size_t at = reply.find("pid=");
    if (at != std::string::npos) r->pid = pid_t(atoi(reply.c_str() + at + 4));
}

// ---------------------------------------------------------------------------------------------------------
// Load: client threads, each with its own results (merged when they have stopped).

constexpr int kMaxTargets = 64;

class Load {
public:
    Load(const std::vector<Target> &targets, const ProbeSpec &probe, int clients)
        : probe_(probe), results_(size_t(clients)) {
        for (const auto &t : targets) add_target(t);
        for (int i = 0; i < clients; ++i) threads_.emplace_back([this, i] { run(i); });
    }
    // Adds an address the clients take turns with (the main thread only; at most kMaxTargets): written
    // before it is counted, never moved.
    void add_target(const Target &t) {
        int n = ntargets_.load();
        for (int i = 0; i < n; ++i)
            if (targets_[i].name == t.name) return;
        if (n == kMaxTargets) return;
        targets_[n] = t;
        ntargets_.store(n + 1);
    }
    std::vector<Target> targets() const { return std::vector<Target>(targets_, targets_ + ntargets_.load()); }
    ~Load() { stop(); }
    void stop() {
        stop_.store(true);
        for (auto &t : threads_)
            if (t.joinable()) t.join();
    }
    int64_t done() const { return done_.load(); }
    int64_t failed() const { return failed_.load(); }
    // Waits until n more requests (than `since`) have completed, at most timeout_ms. False on timeout.
    bool wait_done(int64_t since, int64_t n, int timeout_ms) {
        std::unique_lock<std::mutex> lk(mu_);
        return cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return done_.load() >= since + n; });
    }
    std::vector<Result> results() {
        std::vector<Result> all;
        for (auto &v : results_) all.insert(all.end(), v.begin(), v.end());
        std::sort(all.begin(), all.end(), [](const Result &a, const Result &b) { return a.t0 < b.t0; });
        return all;
    }

private:
    void run(int i) {
        std::map<pid_t, pid_t> pgrps;
        for (uint64_t n = uint64_t(i); !stop_.load(); ++n) {
            Result r;
            r.target = int(n % uint64_t(ntargets_.load()));
            r.t0 = mono_us();
            one_request(targets_[r.target], probe_, &r);
            r.t1 = mono_us();
            if (r.pid > 0) {
                auto it = pgrps.find(r.pid);
                if (it == pgrps.end()) it = pgrps.emplace(r.pid, process_group(r.pid)).first;
                r.pgrp = it->second;
            }
            if (r.kind != K_OK) failed_.fetch_add(1);
            results_[size_t(i)].push_back(std::move(r));
            {
                std::lock_guard<std::mutex> lk(mu_);
                done_.fetch_add(1);
            }
            cv_.notify_all();
        }
    }
    Target targets_[kMaxTargets];
    std::atomic<int> ntargets_{0};
    ProbeSpec probe_;
    std::vector<std::vector<Result>> results_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    std::atomic<int64_t> done_{0}, failed_{0};
    std::mutex mu_;
    std::condition_variable cv_;
};

// ---------------------------------------------------------------------------------------------------------
// The launcher: a child process, reached through its control socket.

// One request on the control socket: "<status>\n<body>". False if no launcher answered.
bool control(const std::string &path, const std::string &request, int timeout_ms, int *status, std::string *body) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path.c_str(), std::min(path.size(), sizeof a.sun_path - 1));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) {
        close(fd);
        return false;
    }
    const int64_t deadline = mono_us() + int64_t(timeout_ms) * 1000;
    std::string reply;
    for (;;) {
        int64_t left = (deadline - mono_us()) / 1000;
        if (left <= 0) break;
        pollfd p{fd, POLLIN, 0};
        int r = poll(&p, 1, int(left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, size_t(n));
    }
    close(fd);
    size_t nl = reply.find('\n');
    if (nl == std::string::npos) return false;
    *status = atoi(reply.substr(0, nl).c_str());
    *body = reply.substr(nl + 1);
    while (!body->empty() && body->back() == '\n') body->pop_back();
    return true;
}

// Waits until process pid has exited (a pidfd: no polling), at most timeout_ms. True if it has.
bool wait_gone(pid_t pid, int timeout_ms) {
    int fd = int(syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return errno == ESRCH;
    pollfd p{fd, POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    close(fd);
    return r > 0;
}

struct Reload {
    int number = 0;
    int status = -1; // the control reply's: 0 ok, 1 rolled back; -1 no answer
    std::string json, text;
    int64_t start_us = 0, end_us = 0; // the window: the request sent ... the previous generation gone
    int failures = 0;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = size_t(q * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

struct Cleanup {
    std::string dir;
    pid_t child = -1;
    ~Cleanup() {
        if (child > 0) {
            kill(child, SIGKILL);
            waitpid(child, nullptr, 0);
        }
        if (!dir.empty()) {
            unlink((dir + "/control").c_str());
            unlink((dir + "/log").c_str());
            rmdir(dir.c_str());
        }
    }
};

int fail_usage(const std::string &why) {
    fprintf(stderr, "hotrestart verify: %s\n%s", why.c_str(), kUsage);
    return kExitLauncherError;
}

// The last lines of the launcher's log, on stderr, when something went wrong.
void show_log(const std::string &path, int lines) {
    FILE *f = fopen(path.c_str(), "r");
    if (!f) return;
    std::vector<std::string> all;
    char buf[4096];
    while (fgets(buf, sizeof buf, f)) all.push_back(buf);
    fclose(f);
    size_t from = all.size() > size_t(lines) ? all.size() - size_t(lines) : 0;
    if (from < all.size()) fprintf(stderr, "hotrestart verify: the launcher's last log lines:\n");
    for (size_t i = from; i < all.size(); ++i) fprintf(stderr, "  %s", all[i].c_str());
}

// The stream sockets a status names (`listeners`), as targets.
std::vector<Target> stream_listeners(const JValue &status) {
    std::vector<Target> out;
    const JValue *ls = status.get("listeners");
    for (const auto &l : ls ? ls->arr : std::vector<JValue>()) {
        if (l.type != JValue::STR || l.str.compare(0, 4, "udp:") == 0 || l.str.compare(0, 11, "unix-dgram:") == 0)
            continue;
        Target t;
        std::string why;
        if (parse_target(l.str, &t, &why)) out.push_back(t);
    }
    return out;
}

int verify_main(int argc, char **argv) {
    int reloads = 5, clients = 8;
    bool json = false;
    ProbeSpec probe;
    probe.text = "/";
    std::vector<std::string> connects, launcher_opts, program;
    int i = 2;
    for (; i < argc; ++i) {
        std::string a = argv[i], value;
        if (a == "--") {
            for (++i; i < argc; ++i) program.push_back(argv[i]);
            break;
        }
        size_t eq = a.find('=');
        std::string name = a.compare(0, 2, "--") == 0 ? a.substr(0, eq) : a;
        bool inline_value = a.compare(0, 2, "--") == 0 && eq != std::string::npos;
        auto take = [&]() -> bool {
            if (inline_value) return value = a.substr(eq + 1), true;
            if (i + 1 >= argc) return false;
            value = argv[++i];
            return true;
        };
        auto count = [&](int lo, int hi, int *out) -> bool {
            if (!take() || value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos)
                return false;
            *out = atoi(value.c_str());
            return *out >= lo && *out <= hi;
        };
        if (a == "-h" || a == "--help") {
            fputs(kUsage, stdout);
            return 0;
        } else if (a == "--json") {
            json = true;
        } else if (name == "--reloads") {
            if (!count(0, 10000, &reloads)) return fail_usage("invalid --reloads '" + value + "': expected 0 to 10000");
        } else if (name == "--clients") {
            if (!count(1, 1000, &clients)) return fail_usage("invalid --clients '" + value + "': expected 1 to 1000");
        } else if (name == "--probe") {
            if (!take()) return fail_usage("--probe needs http[:PATH], tcp or line:TEXT");
            if (value == "http") {
                probe.probe = PROBE_HTTP;
            } else if (value.compare(0, 5, "http:") == 0 && value.size() > 5 && value[5] == '/') {
                probe.probe = PROBE_HTTP;
                probe.text = value.substr(5);
                if (probe.text.find_first_of(" \r\n") != std::string::npos)
                    return fail_usage("invalid --probe '" + value + "': the PATH may not hold spaces or newlines");
            } else if (value == "tcp") {
                probe.probe = PROBE_TCP;
            } else if (value.compare(0, 5, "line:") == 0 && value.find('\n') == std::string::npos) {
                probe.probe = PROBE_LINE;
                probe.text = value.substr(5);
            } else {
                return fail_usage("invalid --probe '" + value + "': expected http, http:/PATH, tcp or line:TEXT");
            }
        } else if (name == "--connect") {
            if (!take() || value.empty()) return fail_usage("--connect needs an address");
            connects.push_back(value);
        } else {
            launcher_opts.push_back(a); // the launcher's own (and their values): it checks them below
        }
    }
    if (program.empty()) return fail_usage("no PROGRAM: put it after --");
    std::vector<Target> targets;
    const bool own_targets = !connects.empty();
    for (const auto &c : connects) {
        Target t;
        std::string why;
        if (!parse_target(c, &t, &why)) return fail_usage("invalid --connect '" + c + "': " + why);
        targets.push_back(t);
    }

    // The launcher's options, checked here as the launcher will (a usage error is ours to report).
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "hotrestart verify: unable to find this executable (/proc/self/exe): %s\n", strerror(errno));
        return kExitLauncherError;
    }
    self[sl] = '\0';
    Cleanup cleanup;
    Options opts;
    std::vector<std::string> largv{self};
    largv.insert(largv.end(), launcher_opts.begin(), launcher_opts.end());
    {
        std::vector<std::string> check = largv;
        check.push_back("--");
        check.insert(check.end(), program.begin(), program.end());
        std::vector<char *> cargv;
        for (auto &s : check) cargv.push_back(&s[0]);
        cargv.push_back(nullptr);
        std::string msg;
        ParseResult pr = parse_options(int(cargv.size() - 1), cargv.data(), &opts, &msg);
        if (pr == PARSE_ERROR) return fail_usage(msg);
        if (pr == PARSE_EXIT_OK) return fail_usage("--help and --version are not launcher options here");
    }
    std::string control_path = opts.control;
    const char *tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/hotrestart-verify.XXXXXX";
    if (!mkdtemp(&dir[0])) {
        fprintf(stderr, "hotrestart verify: unable to create a directory in %s: %s (set TMPDIR)\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return kExitLauncherError;
    }
    cleanup.dir = dir;
    if (control_path.empty()) {
        control_path = dir + "/control";
        largv.push_back("--control");
        largv.push_back(control_path);
    }
    largv.push_back("--");
    largv.insert(largv.end(), program.begin(), program.end());
    const std::string log_path = dir + "/log";
    int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "hotrestart verify: unable to create %s: %s\n", log_path.c_str(), strerror(errno));
        return kExitLauncherError;
    }
    std::vector<char *> cargv;
    for (auto &s : largv) cargv.push_back(&s[0]);
    cargv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "hotrestart verify: fork: %s\n", strerror(errno));
        close(logfd);
        return kExitLauncherError;
    }
    if (child == 0) {
        // The launcher stops (gracefully) if verify dies; its output goes to the log.
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(kExitLauncherError);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(self, cargv.data());
        _exit(kExitLauncherError);
    }
    close(logfd);
    cleanup.child = child;
    const int64_t t_begin = mono_us();
    auto exited = [&](int *st) {
        int ws;
        if (waitpid(child, &ws, WNOHANG) != child) return false;
        cleanup.child = -1;
        *st = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        return true;
    };

    // Until it serves: the control socket has no event for that, so its status is asked every 20 ms.
    std::map<int, pid_t> gen_pid; // generation -> main pid (and process group)
    {
        const int64_t deadline = mono_us() + int64_t((opts.ready_timeout + 10) * 1e6);
        JValue st;
        for (;;) {
            int ls;
            if (exited(&ls)) {
                fprintf(stderr, "hotrestart verify: the launcher exited with status %d before %s served\n", ls,
                        program[0].c_str());
                show_log(log_path, 20);
                return kExitLauncherError;
            }
            int status;
            std::string body;
            st = JValue();
            if (control(control_path, "status json\n", 5000, &status, &body) && status == 0 &&
                JParser(body).parse(&st) && st.get("serving") && st.get("serving")->type == JValue::OBJ)
                break;
            if (mono_us() > deadline) {
                fprintf(stderr, "hotrestart verify: %s did not serve within %g s (--ready-timeout + 10 s)\n",
                        program[0].c_str(), opts.ready_timeout + 10);
                show_log(log_path, 20);
                return kExitLauncherError;
            }
            timespec ts{0, 20 * 1000000};
            nanosleep(&ts, nullptr);
        }
        const JValue *sv = st.get("serving");
        gen_pid[int(sv->number("generation"))] = pid_t(sv->number("pid"));
        if (targets.empty()) {
            targets = stream_listeners(st);
            if (targets.empty()) {
                fprintf(stderr, "hotrestart verify: %s serves no stream socket the launcher holds; give --connect ADDR\n",
                        program[0].c_str());
                show_log(log_path, 20);
                return kExitLauncherError;
            }
        }
    }

    // Load, reloads, stop.
    Load load(targets, probe, clients);
    std::vector<Reload> done_reloads;
    std::atomic<int> progress_reload{0};
    std::atomic<bool> finished{false};
    std::mutex pmu;
    std::condition_variable pcv;
    std::thread progress;
    if (isatty(2)) {
        progress = std::thread([&] {
            std::unique_lock<std::mutex> lk(pmu);
            while (!finished.load()) {
                fprintf(stderr, "\rhotrestart verify: reload %d/%d, %lld requests, %lld failed\033[K",
                        progress_reload.load(), reloads, (long long)load.done(), (long long)load.failed());
                pcv.wait_for(lk, std::chrono::milliseconds(200));
            }
            fprintf(stderr, "\r\033[K");
        });
    }
    // Requests outside reloads: 2 per client before the first reload, between reloads and after the last
    // (at most 5 s each time: a server too slow for that still gets its reloads).
    const int quiet_ms = 5000;
    load.wait_done(0, 2 * clients, quiet_ms);
    bool all_reloads_ok = true, launcher_gone = false;
    const int report_timeout_ms =
        int((opts.ready_timeout + opts.rollback_window + opts.drain_timeout + opts.kill_timeout + 30) * 1000);
    for (int k = 1; k <= reloads; ++k) {
        progress_reload.store(k);
        Reload r;
        r.number = k;
        r.start_us = mono_us();
        const int64_t done_at_start = load.done();
        std::string body;
        int status = -1;
        if (!control(control_path, "reload json\n", report_timeout_ms, &status, &body)) {
            r.end_us = mono_us();
            r.text = "no report: the launcher did not answer";
            done_reloads.push_back(r);
            all_reloads_ok = false;
            launcher_gone = true;
            break;
        }
        r.status = status;
        JValue rep;
        if (status == 0 || status == 1) {
            if (JParser(body).parse(&rep) && rep.type == JValue::OBJ) {
                r.json = body;
                r.text = rep.string("text");
                int gen = int(rep.number("generation"));
                if (gen > 0 && rep.number("pid") > 0) gen_pid[gen] = pid_t(rep.number("pid"));
            } else {
                r.text = body;
            }
        } else {
            r.text = body; // the launcher's own error (125)
        }
        if (status == 0) {
            // The window lasts until the previous generation is gone: what it does while draining and
            // stopping belongs to this reload.
            auto prev = gen_pid.find(int(rep.number("previous_generation")));
            if (prev != gen_pid.end()) wait_gone(prev->second, report_timeout_ms);
            // The report once the drain is over (status has it, with how the drain went).
            JValue st;
            int ss;
            std::string sb;
            if (control(control_path, "status json\n", 5000, &ss, &sb) && ss == 0 && JParser(sb).parse(&st)) {
                const JValue *last = st.get("last_reload");
                if (last && last->type == JValue::OBJ && last->number("reload") == rep.number("reload")) {
                    r.json = to_json(*last);
                    r.text = last->string("text");
                }
                // The first generation is ready once it listens on one socket; a new one, once it took over
                // all of them: from now on every socket the program listens on is known.
                if (!own_targets)
                    for (const auto &t : stream_listeners(st)) load.add_target(t);
            }
        } else {
            all_reloads_ok = false;
        }
        r.end_us = mono_us();
        const int64_t in_window = load.done() - done_at_start;
        done_reloads.push_back(r);
        // As many requests outside this reload as there were during it (percentiles of alike samples).
        load.wait_done(load.done(), std::max<int64_t>(2 * clients, in_window), quiet_ms);
        if (status != 0 && status != 1) break;
    }
    load.stop();
    targets = load.targets();
    finished.store(true);
    pcv.notify_all();
    if (progress.joinable()) progress.join();

    // A graceful stop; its answer comes when the launcher has exited, with its exit status.
    int stop_status = -1;
    {
        std::string body;
        int st;
        if (!launcher_gone && control(control_path, "stop\n", report_timeout_ms, &st, &body)) stop_status = st;
        int es;
        if (wait_gone(child, 10000) && exited(&es)) stop_status = es;
    }
    const int64_t t_end = mono_us();

    // Attribution: a request belongs to a reload if it was in flight at any time during its window.
    std::vector<Result> res = load.results();
    int64_t counts[K_KINDS] = {};
    std::vector<double> lat_during, lat_outside;
    std::map<int, int64_t> by_gen;
    int64_t unknown_gen = 0, shown_gen = 0;
    std::map<pid_t, int> gen_of;
    for (const auto &g : gen_pid) gen_of[g.second] = g.first;
    std::vector<std::pair<const Result *, int>> failed; // (result, reload number or 0)
    int failures_outside = 0;
    for (const auto &r : res) {
        ++counts[r.kind];
        int during = 0;
        for (const auto &w : done_reloads)
            if (r.t0 <= w.end_us && r.t1 >= w.start_us) {
                during = w.number;
                break;
            }
        if (r.kind == K_OK) {
            (during ? lat_during : lat_outside).push_back(double(r.t1 - r.t0) / 1000.0);
            if (r.pid > 0) {
                ++shown_gen;
                auto g = gen_of.find(r.pid);
                if (g == gen_of.end()) g = gen_of.find(r.pgrp);
                if (g != gen_of.end()) ++by_gen[g->second];
                else ++unknown_gen;
            }
        } else {
            failed.emplace_back(&r, during);
            if (during) ++done_reloads[size_t(during - 1)].failures;
            else ++failures_outside;
        }
    }
    const int64_t total = int64_t(res.size());
    const int64_t nfailed = total - counts[K_OK];
    const bool pass = nfailed == 0 && all_reloads_ok && total > 0;
    auto at_s = [&](int64_t us) { return double(us - t_begin) / 1e6; };

    if (json) {
        std::string out = "{\"ok\":" + std::string(pass ? "true" : "false");
        out += ",\"requests\":" + std::to_string(total) + ",\"succeeded\":" + std::to_string(counts[K_OK]);
        out += ",\"failures\":{";
        for (int k = K_REFUSED; k < K_KINDS; ++k) out += jstr(kKindName[k]) + ":" + std::to_string(counts[k]) + ",";
        out += "\"total\":" + std::to_string(nfailed) + ",\"outside_reloads\":" + std::to_string(failures_outside) + "}";
        out += ",\"generations\":{";
        bool first = true;
        for (const auto &g : by_gen) {
            out += std::string(first ? "" : ",") + "\"" + std::to_string(g.first) + "\":" + std::to_string(g.second);
            first = false;
        }
        out += "},\"replies_from_other_processes\":" + std::to_string(unknown_gen);
        out += ",\"replies_without_pid\":" + std::to_string(counts[K_OK] - shown_gen);
        auto lat = [&](const std::vector<double> &v) {
            std::string o = "{\"requests\":" + std::to_string(v.size());
            if (v.empty()) return o + ",\"p50\":null,\"p99\":null}";
            return o + ",\"p50\":" + fmt("%.3f", percentile(v, 0.5)) + ",\"p99\":" + fmt("%.3f", percentile(v, 0.99)) + "}";
        };
        out += ",\"latency_ms\":{\"during_reloads\":" + lat(lat_during) + ",\"outside_reloads\":" + lat(lat_outside) + "}";
        out += ",\"reloads\":[";
        for (size_t k = 0; k < done_reloads.size(); ++k) {
            const Reload &r = done_reloads[k];
            out += std::string(k ? "," : "") + "{\"reload\":" + std::to_string(r.number) + ",\"completed\":" +
                   (r.status == 0 ? "true" : "false") + ",\"failures\":" + std::to_string(r.failures) +
                   ",\"started_at_s\":" + fmt("%.3f", at_s(r.start_us)) + ",\"window_s\":" +
                   fmt("%.3f", double(r.end_us - r.start_us) / 1e6) + ",\"report\":" +
                   (r.json.empty() ? "null" : r.json) + ",\"text\":" + jstr(r.text) + "}";
        }
        out += "],\"reloads_requested\":" + std::to_string(reloads);
        out += ",\"connect\":[";
        for (size_t k = 0; k < targets.size(); ++k) out += std::string(k ? "," : "") + jstr(targets[k].name);
        out += "],\"failed_requests\":[";
        for (size_t k = 0; k < failed.size() && k < size_t(kMaxFailuresListed); ++k) {
            const Result &r = *failed[k].first;
            out += std::string(k ? "," : "") + "{\"at_s\":" + fmt("%.3f", at_s(r.t1)) + ",\"started_at_s\":" +
                   fmt("%.3f", at_s(r.t0)) + ",\"kind\":" + jstr(kKindName[r.kind]) + ",\"error\":" + jstr(r.error) +
                   ",\"connect\":" + jstr(targets[size_t(r.target)].name) + ",\"reload\":" +
                   (failed[k].second ? std::to_string(failed[k].second) : "null") + "}";
        }
        out += "],\"duration_s\":" + fmt("%.3f", double(t_end - t_begin) / 1e6);
        out += ",\"exit_status\":" + (stop_status < 0 ? std::string("null") : std::to_string(stop_status)) + "}";
        printf("%s\n", out.c_str());
    } else {
        int completed = 0;
        for (const auto &r : done_reloads) completed += r.status == 0;
        printf("hotrestart verify: %s: %d of %d reloads completed, %lld requests, %lld failed\n",
               pass ? "PASS" : "FAIL", completed, reloads, (long long)total, (long long)nfailed);
        printf("failures: refused %lld, reset %lld, timeout %lld, bad reply %lld\n", (long long)counts[K_REFUSED],
               (long long)counts[K_RESET], (long long)counts[K_TIMEOUT], (long long)counts[K_BAD]);
        if (shown_gen) {
            std::string g;
            for (const auto &x : by_gen) g += (g.empty() ? "" : ", ") + ("gen " + std::to_string(x.first)) + ": " + std::to_string(x.second);
            if (unknown_gen) g += (g.empty() ? "" : ", ") + ("other processes: " + std::to_string(unknown_gen));
            printf("generations that answered: %s\n", g.c_str());
        } else {
            printf("generations that answered: not shown by the replies (no pid=N in them)\n");
        }
        auto lat = [&](const char *what, const std::vector<double> &v) {
            if (v.empty()) printf("latency %s: no requests\n", what);
            else printf("latency %s: p50 %.2f ms, p99 %.2f ms (%zu requests)\n", what, percentile(v, 0.5),
                        percentile(v, 0.99), v.size());
        };
        lat("during reloads", lat_during);
        lat("outside reloads", lat_outside);
        for (const auto &r : done_reloads) {
            printf("%s", r.text.empty() ? ("reload " + std::to_string(r.number) + ": no report").c_str() : r.text.c_str());
            if (r.failures) printf(" -- %d failed request%s during it", r.failures, r.failures == 1 ? "" : "s");
            printf("\n");
        }
        if (failures_outside) printf("%d failed request%s outside reloads\n", failures_outside, failures_outside == 1 ? "" : "s");
        for (size_t k = 0; k < failed.size() && k < 10; ++k) {
            const Result &r = *failed[k].first;
            printf("  failed at %.3f s (sent at %.3f s) %s: %s: %s\n", at_s(r.t1), at_s(r.t0),
                   failed[k].second ? ("during reload " + std::to_string(failed[k].second)).c_str() : "outside reloads",
                   kKindText[r.kind], r.error.c_str());
        }
        if (failed.size() > 10) printf("  ... and %zu more (--json lists %d)\n", failed.size() - 10, kMaxFailuresListed);
        if (stop_status >= 0) printf("stopped: the launcher exited with status %d\n", stop_status);
        else printf("stopped: the launcher did not answer the stop\n");
    }
    fflush(stdout);
    if (!pass) show_log(log_path, 20);
    return pass ? 0 : kExitFailed;
}

} // namespace

bool run_verify(int argc, char **argv, int *status) {
    if (argc < 2 || strcmp(argv[1], "verify") != 0) return false;
    signal(SIGPIPE, SIG_IGN);
    *status = verify_main(argc, argv);
    return true;
}

} // namespace hr
