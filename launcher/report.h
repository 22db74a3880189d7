// A reload's outcome and the launcher's status as data, printed as text or JSON by one function each.
// The supervisor fills the structs as things happen; the control socket and the log only print them.
#pragma once

#include <stdint.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

struct ReloadReport {
    int number = 0;            // 1, 2, ... in the order reloads started; 0: never started (aborted)
    std::string outcome;       // "ok", "rolled_back", "aborted"; empty while in progress
    int generation = 0;        // the new generation
    pid_t pid = 0;             // its main process
    int previous_generation = 0;
    int64_t started_at_ms = 0; // CLOCK_REALTIME, ms
    int64_t ready_ms = -1;     // start to ready; -1: it never was
    std::string reason;        // why it was rolled back or aborted (or, ok, what was odd)
    bool resumed = true;       // rolled back: the previous generation serves again (false: none is left)
    // The previous generation's drain, filled in as it goes on after the report (see `status`).
    int drained_connections = -1; // connections it held when it stopped accepting; -1: it never stopped
    int64_t drain_ms = -1;        // from stopping accepting to the stop signal (or its exit); -1: still draining
    bool killed = false;          // it needed SIGKILL
    std::string stopped_by;       // "SIGTERM" (the stop signal), "its own exit"
};

// "reload 7: gen 8 (pid 4242) serving; ready in 12 ms; gen 7 draining 3 connections", or
// "reload 7 failed: gen 8 exited with status 1 before it was ready; rolled back, gen 7 keeps serving".
std::string reload_text(const ReloadReport &r);
// "reload 7: gen 7 drained 3 connections in 0.84 s, stopped by SIGQUIT" (once the drain is over).
std::string drain_text(const ReloadReport &r);
std::string reload_json(const ReloadReport &r);

struct GenStatus {
    int generation = 0;
    pid_t pid = 0;
    std::string state;      // gen_state_name()
    int connections = 0;    // live connections the shim counts
    int64_t since_ms = 0;   // CLOCK_REALTIME, ms: when it started (starting) or began serving
    double stop_in_s = -1;  // draining: seconds left before the stop signal; -1: not applicable
};

struct StatusReport {
    pid_t launcher_pid = 0;
    std::vector<std::string> program;
    double uptime_s = 0;
    std::string state;        // "starting", "running", "reloading", "stopping"
    bool has_serving = false;
    GenStatus serving;
    std::vector<GenStatus> generations; // every other generation (starting, trial, standby, draining...)
    std::vector<std::string> listeners; // as the registry names them: control characters already escaped
    int reloads_total = 0;
    int reloads_failed = 0;
    int restarts = 0;         // crash restarts (--restart)
    bool has_last = false;
    ReloadReport last;
};

std::string status_text(const StatusReport &s);
std::string status_json(const StatusReport &s);

// "2026-11-26T14:40:52.123Z" from CLOCK_REALTIME milliseconds.
std::string rfc3339(int64_t realtime_ms);
int64_t realtime_ms();
// Control characters (and backslashes) written as \xNN: anything a program or a peer chose that goes
// into a log line or a reply stays one line.
std::string escape_text(const std::string &s);

} // namespace hr
