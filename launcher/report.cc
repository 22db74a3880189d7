#include "report.h"

#include <stdio.h>
#include <time.h>

namespace hr {
namespace {

std::string fmt(const char *f, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string plural(int n, const char *what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// A JSON string literal.
std::string jstr(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char buf[8];
                snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += char(c);
            }
        }
    }
    return out + "\"";
}

// Builds one JSON object, keys in the order they are added.
class Obj {
public:
    Obj &raw(const char *key, const std::string &value) {
        out_ += (out_.size() > 1 ? "," : "") + jstr(key) + ":" + value;
        return *this;
    }
    Obj &str(const char *key, const std::string &v) { return raw(key, jstr(v)); }
    Obj &num(const char *key, int64_t v) { return raw(key, std::to_string(v)); }
    Obj &real(const char *key, double v) { return raw(key, fmt("%.3f", v)); }
    Obj &boolean(const char *key, bool v) { return raw(key, v ? "true" : "false"); }
    Obj &null(const char *key) { return raw(key, "null"); }
    std::string done() const { return out_ + "}"; }

private:
    std::string out_ = "{";
};

std::string jarr(const std::vector<std::string> &items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
    return out + "]";
}

std::string gen_json(const GenStatus &g) {
    Obj o;
    o.num("generation", g.generation).num("pid", g.pid).str("state", g.state).num("connections", g.connections);
    o.str("since", rfc3339(g.since_ms));
    if (g.stop_in_s >= 0) o.real("stop_in_s", g.stop_in_s);
    else o.null("stop_in_s");
    return o.done();
}

std::string duration(double s) {
    long t = long(s);
    if (t < 60) return fmt("%.1fs", s);
    if (t < 3600) return std::to_string(t / 60) + "m" + std::to_string(t % 60) + "s";
    if (t < 86400) return std::to_string(t / 3600) + "h" + std::to_string(t / 60 % 60) + "m";
    return std::to_string(t / 86400) + "d" + std::to_string(t / 3600 % 24) + "h";
}

} // namespace

int64_t realtime_ms() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string rfc3339(int64_t ms) {
    time_t secs = time_t(ms / 1000);
    tm t;
    gmtime_r(&secs, &t);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
             t.tm_hour, t.tm_min, t.tm_sec, int(ms % 1000));
    return buf;
}

std::string escape_text(const std::string &s) {
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f || c == '\\') {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

std::string drain_text(const ReloadReport &r) {
    std::string out = "reload " + std::to_string(r.number) + ": gen " + std::to_string(r.previous_generation) +
                      " drained " + plural(r.drained_connections < 0 ? 0 : r.drained_connections, "connection") +
                      " in " + fmt("%.2f", double(r.drain_ms) / 1000) + " s";
    if (!r.stopped_by.empty()) out += ", stopped by " + r.stopped_by;
    if (r.killed) out += ", killed with SIGKILL";
    return out;
}

std::string reload_text(const ReloadReport &r) {
    const std::string n = std::to_string(r.number), gen = std::to_string(r.generation),
                      prev = std::to_string(r.previous_generation);
    if (r.outcome == "aborted")
        return (r.number ? "reload " + n + " aborted: " : "reload aborted: ") + escape_text(r.reason);
    if (r.outcome == "rolled_back") {
        std::string out = "reload " + n + " failed: gen " + gen + " " + escape_text(r.reason);
        if (r.previous_generation && r.resumed) out += "; rolled back, gen " + prev + " keeps serving";
        else out += "; no generation is left to serve: stopping";
        return out;
    }
    std::string out = "reload " + n + ": gen " + gen + " (pid " + std::to_string(r.pid) + ") serving; ready in " +
                      std::to_string(r.ready_ms) + " ms";
    if (r.drain_ms >= 0) {
        std::string d = drain_text(r);
        out += "; " + d.substr(d.find(": ") + 2);
    } else if (r.drained_connections >= 0) {
        out += "; gen " + prev + " draining " + plural(r.drained_connections, "connection");
    }
    if (!r.reason.empty()) out += "; warning: gen " + gen + " " + escape_text(r.reason);
    return out;
}

std::string reload_json(const ReloadReport &r) {
    Obj o;
    if (r.outcome.empty()) o.str("outcome", "in_progress");
    else o.str("outcome", r.outcome);
    o.num("reload", r.number).num("generation", r.generation).num("pid", r.pid);
    o.num("previous_generation", r.previous_generation);
    o.str("started_at", rfc3339(r.started_at_ms));
    if (r.ready_ms >= 0) o.num("ready_ms", r.ready_ms);
    else o.null("ready_ms");
    if (r.reason.empty()) o.null("reason");
    else o.str("reason", r.reason);
    if (r.drained_connections >= 0) o.num("drained_connections", r.drained_connections);
    else o.null("drained_connections");
    if (r.drain_ms >= 0) {
        o.num("drain_ms", r.drain_ms).boolean("killed", r.killed).str("stopped_by", r.stopped_by);
    } else {
        o.null("drain_ms").null("killed").null("stopped_by");
    }
    o.str("text", reload_text(r));
    return o.done();
}

std::string status_text(const StatusReport &s) {
    std::string prog;
    for (const auto &a : s.program) prog += (prog.empty() ? "" : " ") + escape_text(a);
    std::string out = "launcher pid " + std::to_string(s.launcher_pid) + ", " + s.state + ", up " +
                      duration(s.uptime_s) + ": " + prog + "\n";
    if (s.has_serving)
        out += "serving: gen " + std::to_string(s.serving.generation) + " (pid " + std::to_string(s.serving.pid) +
               ") since " + rfc3339(s.serving.since_ms) + ", " + plural(s.serving.connections, "connection") + "\n";
    else
        out += "serving: none\n";
    for (const auto &g : s.generations) {
        out += "gen " + std::to_string(g.generation) + " (pid " + std::to_string(g.pid) + ") " + g.state + ", " +
               plural(g.connections, "connection");
        if (g.stop_in_s >= 0) out += ", stop signal in " + fmt("%.1f", g.stop_in_s) + " s";
        out += "\n";
    }
    std::string ls;
    for (const auto &l : s.listeners) ls += " " + l; // already escaped (the registry's names)
    out += "listeners:" + (ls.empty() ? std::string(" none") : ls) + "\n";
    out += "reloads: " + std::to_string(s.reloads_total) + " total, " + std::to_string(s.reloads_failed) + " failed";
    out += "; restarts: " + std::to_string(s.restarts) + "\n";
    if (s.has_last) out += "last reload: " + reload_text(s.last) + "\n";
    return out;
}

std::string status_json(const StatusReport &s) {
    Obj o;
    o.num("launcher_pid", s.launcher_pid);
    std::vector<std::string> prog;
    for (const auto &a : s.program) prog.push_back(jstr(a));
    o.raw("program", jarr(prog));
    o.str("state", s.state).real("uptime_s", s.uptime_s);
    if (s.has_serving) {
        Obj sv;
        sv.num("generation", s.serving.generation).num("pid", s.serving.pid).str("since", rfc3339(s.serving.since_ms));
        sv.num("connections", s.serving.connections).str("state", s.serving.state);
        o.raw("serving", sv.done());
    } else {
        o.null("serving");
    }
    std::vector<std::string> gens, ls;
    for (const auto &g : s.generations) gens.push_back(gen_json(g));
    for (const auto &l : s.listeners) ls.push_back(jstr(l));
    o.raw("generations", jarr(gens)).raw("listeners", jarr(ls));
    o.raw("reloads", Obj().num("total", s.reloads_total).num("failed", s.reloads_failed).done());
    o.num("restarts", s.restarts);
    if (s.has_last) o.raw("last_reload", reload_json(s.last));
    else o.null("last_reload");
    return o.done();
}

} // namespace hr
