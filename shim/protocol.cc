// Encoding and strict decoding of the launcher<->shim protocol. No heap, no locale, no stdio: the shim
// calls this from its constructor, possibly in a program that has already wiped or mangled its environment.
#include "protocol.h"

#include <stddef.h>
#include <string.h>

namespace hr {
namespace {

void set_err(char *err, size_t errlen, const char *what) {
    if (errlen == 0) return;
    size_t n = strlen(what);
    if (n >= errlen) n = errlen - 1;
    memcpy(err, what, n);
    err[n] = '\0';
}

// Parses a decimal number in [0, max] from [p, end). Leading zeros and signs are rejected so there is
// exactly one spelling of each value.
bool parse_num(const char *p, const char *end, long max, long *out) {
    if (p == end || end - p > 10) return false;
    if (*p == '0' && end - p > 1) return false;
    long v = 0;
    for (; p < end; ++p) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

bool key_is(const char *k, const char *kend, const char *name) {
    size_t n = strlen(name);
    return size_t(kend - k) == n && memcmp(k, name, n) == 0;
}

bool parse_fds(const char *p, const char *end, Config *c) {
    c->nfds = 0;
    if (p == end) return true;
    for (;;) {
        const char *q = p;
        while (q < end && *q != ',') ++q;
        if (c->nfds == kMaxInherited) return false;
        if (q - p == 1 && *p == '-') {
            c->fds[c->nfds++] = -1;
        } else {
            long v;
            if (!parse_num(p, q, kMaxFdNumber, &v) || v < 3) return false;
            c->fds[c->nfds++] = int(v);
        }
        if (q == end) return true;
        p = q + 1;
        if (p == end) return false; // trailing comma
    }
}

// Appends text to buf at *pos; false if it does not fit.
bool put(char *buf, size_t len, size_t *pos, const char *s, size_t n) {
    if (*pos + n >= len) return false;
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
    return true;
}

bool put_num(char *buf, size_t len, size_t *pos, long v) {
    char tmp[24];
    int n = 0;
    if (v < 0) return put(buf, len, pos, "-", 1);
    do {
        tmp[sizeof tmp - 1 - n] = char('0' + v % 10);
        v /= 10;
        ++n;
    } while (v);
    return put(buf, len, pos, tmp + sizeof tmp - n, size_t(n));
}

bool parse_own(const char *p, const char *end, Config *c) {
    c->nown = 0;
    if (p == end) return true;
    for (;;) {
        const char *q = p;
        while (q < end && *q != ',') ++q;
        if (c->nown == kMaxInherited || q - p < 2) return false;
        char kind = q[-1];
        long v;
        if ((kind != 'l' && kind != 'L' && kind != 'd' && kind != 'D') || !parse_num(p, q - 1, kMaxFdNumber, &v) ||
            v < 3)
            return false;
        c->own[c->nown] = int(v);
        c->own_kind[c->nown++] = kind;
        if (q == end) return true;
        p = q + 1;
        if (p == end) return false;
    }
}

} // namespace

bool config_decode(const char *text, Config *out, char *err, size_t errlen) {
    Config c;
    if (text == nullptr) {
        set_err(err, errlen, "not set");
        return false;
    }
    const char *prefix = "v1;";
    if (strncmp(text, prefix, 3) != 0) {
        set_err(err, errlen, "unknown protocol version");
        return false;
    }
    size_t total = strnlen(text, kExecStateLen);
    if (total == kExecStateLen) {
        set_err(err, errlen, "too long");
        return false;
    }
    const char *p = text + 3;
    const char *end = text + total;
    enum { K_CTL, K_WAKE, K_SHM, K_GEN, K_MAIN, K_LAUNCHER, K_VERBOSE, K_FDS, K_OWN, K_COUNT };
    static const char *const names[K_COUNT] = {"ctl", "wake", "shm", "gen", "main", "launcher", "verbose", "fds", "own"};
    bool seen[K_COUNT] = {};
    while (p < end) {
        const char *fend = p;
        while (fend < end && *fend != ';') ++fend;
        const char *eq = p;
        while (eq < fend && *eq != '=') ++eq;
        if (eq == fend) {
            set_err(err, errlen, "field without '='");
            return false;
        }
        int k = -1;
        for (int i = 0; i < K_COUNT; ++i)
            if (key_is(p, eq, names[i])) k = i;
        if (k < 0) {
            set_err(err, errlen, "unknown field");
            return false;
        }
        if (seen[k]) {
            set_err(err, errlen, "duplicate field");
            return false;
        }
        seen[k] = true;
        const char *v = eq + 1;
        long num = 0;
        bool ok;
        switch (k) {
        case K_FDS: ok = parse_fds(v, fend, &c); break;
        case K_OWN: ok = parse_own(v, fend, &c); break;
        case K_VERBOSE: ok = parse_num(v, fend, 9, &num); c.verbose = int(num); break;
        case K_GEN: ok = parse_num(v, fend, 1L << 30, &num) && num >= 1; c.gen = int(num); break;
        case K_MAIN: ok = parse_num(v, fend, 1L << 30, &num) && num >= 1; c.main_pid = int(num); break;
        case K_LAUNCHER: ok = parse_num(v, fend, 1L << 30, &num) && num >= 1; c.launcher_pid = int(num); break;
        default: {
            ok = parse_num(v, fend, kMaxFdNumber, &num) && num >= 3;
            int *slot = k == K_CTL ? &c.ctl : k == K_WAKE ? &c.wake : &c.shm;
            *slot = int(num);
        }
        }
        if (!ok) {
            set_err(err, errlen, "bad value");
            return false;
        }
        if (fend == end) break;
        p = fend + 1;
        if (p == end) {
            set_err(err, errlen, "trailing ';'");
            return false;
        }
    }
    for (int i = 0; i < K_COUNT; ++i) {
        if (!seen[i] && i != K_OWN) { // own is optional
            set_err(err, errlen, "missing field");
            return false;
        }
    }
    // The private descriptors and the inherited sockets must all be distinct.
    int all[2 * kMaxInherited + 3];
    int n = 0;
    for (int i = 0; i < c.nown; ++i) all[n++] = c.own[i];
    all[n++] = c.ctl;
    all[n++] = c.wake;
    all[n++] = c.shm;
    for (int i = 0; i < c.nfds; ++i)
        if (c.fds[i] >= 0) all[n++] = c.fds[i];
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j)
            if (all[i] == all[j]) {
                set_err(err, errlen, "descriptor listed twice");
                return false;
            }
    *out = c;
    set_err(err, errlen, "");
    return true;
}

int config_encode(const Config &c, char *buf, size_t len) {
    size_t pos = 0;
    if (len == 0) return -1;
    buf[0] = '\0';
    bool ok = put(buf, len, &pos, "v1", 2);
    const struct { const char *k; long v; } nums[] = {
        {";ctl=", c.ctl}, {";wake=", c.wake}, {";shm=", c.shm}, {";gen=", c.gen},
        {";main=", c.main_pid}, {";launcher=", c.launcher_pid}, {";verbose=", c.verbose},
    };
    for (const auto &f : nums) ok = ok && put(buf, len, &pos, f.k, strlen(f.k)) && put_num(buf, len, &pos, f.v);
    ok = ok && put(buf, len, &pos, ";fds=", 5);
    for (int i = 0; ok && i < c.nfds; ++i) {
        if (i) ok = put(buf, len, &pos, ",", 1);
        ok = ok && put_num(buf, len, &pos, c.fds[i]);
    }
    if (ok && c.nown) ok = put(buf, len, &pos, ";own=", 5);
    for (int i = 0; ok && i < c.nown; ++i) {
        if (i) ok = put(buf, len, &pos, ",", 1);
        ok = ok && put_num(buf, len, &pos, c.own[i]) && put(buf, len, &pos, &c.own_kind[i], 1);
    }
    return ok ? int(pos) : -1;
}

socklen_t rendezvous_address(int launcher_pid, sockaddr_un *a) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    char *p = a->sun_path + 1; // sun_path[0] == '\0': abstract, no file
    const char *prefix = "hotrestart/";
    size_t n = strlen(prefix);
    memcpy(p, prefix, n);
    char digits[16];
    int d = 0;
    unsigned v = launcher_pid > 0 ? unsigned(launcher_pid) : 0;
    do {
        digits[d++] = char('0' + v % 10);
        v /= 10;
    } while (v);
    while (d) p[n++] = digits[--d];
    const char *suffix = "/rendezvous";
    memcpy(p + n, suffix, strlen(suffix));
    n += strlen(suffix);
    return socklen_t(offsetof(sockaddr_un, sun_path) + 1 + n);
}

const char *msg_check(const Msg *m, size_t len, int nfds_received) {
    if (len != sizeof(Msg)) return "wrong message size";
    if (m->magic != kMagic) return "bad magic";
    if (m->version != kProtocolVersion) return "unknown protocol version";
    if (m->addrlen > sizeof(m->addr)) return "bad address length";
    int want;
    switch (m->type) {
    case MSG_HELLO:
    case MSG_CLAIMED:
    case MSG_IDLE:
    case MSG_BINDFAIL:
    case MSG_ACCEPTING:
    case MSG_CLOSED:
    case MSG_LOCKED: want = 0; break;
    case MSG_REGISTER:
    case MSG_LOCK_HANDOVER: want = 1; break;
    default: return "unknown message type";
    }
    if (nfds_received != want) return "wrong number of descriptors";
    if (m->type == MSG_CLAIMED && (m->arg < 0 || m->arg >= kMaxInherited)) return "bad listener index";
    return nullptr;
}

} // namespace hr
