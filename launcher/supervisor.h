// The supervisor: one thread, one poll loop with a deadline, signals read from a signalfd. It owns the
// generations and the registry, turns what happens (signals, child exits, shim messages, notifications,
// control requests, deadlines) into events of the generation state machine (genstate.h), and carries out
// the actions it returns. A reload is data (report.h) filled in as it goes; SIGHUP and `hotrestart reload`
// reach the same request_reload().
#pragma once

#include "control.h"
#include "ctlmsg.h"
#include "genstate.h"
#include "options.h"
#include "procs.h"
#include "progkind.h"
#include "protocol.h"
#include "registry.h"
#include "rendezvous.h"
#include "report.h"
#include "sdnotify.h"
#include "runas.h"
#include "seccomp_accept.h"
#include "sentinel.h"

#include <deque>
#include <memory>
#include <signal.h>
#include <stdint.h>
#include <string>
#include <vector>

namespace hr {

struct SpawnRequest;
struct SpawnResult;

struct Gen {
    int n = 0;
    pid_t pid = -1;
    GenState st = GS_STARTING;
    int ctl = -1;    // launcher's end of the control socketpair
    int ctl_peer = -1; // the generation's end until the rendezvous hands it to its main process (then closed:
                       // when the generation's last holder closes it, ctl hangs up)
    std::vector<int> ctl_old; // launcher's ends given to earlier images of the main process (before an exec):
                              // processes forked before it may still write there
    Config cfg;        // what the rendezvous tells its main process (fds: the numbers it inherits them at)
    int handed = 0;    // answers given at the rendezvous (the second and later: after an exec)
    int wake = -1;   // eventfd: readable while the generation must not accept (reset when it resumes)
    int shmfd = -1;
    int notify = -1; // its NOTIFY_SOCKET (--ready notify)
    int pidfd = -1;  // its main process (signals to it can never reach a recycled pid)
    // Processes it started that left its process group (setsid, double fork) and were reparented to us:
    // stopped with it. Each is held by a pidfd.
    struct Stray {
        pid_t pid;
        int pidfd;
        pid_t pgid;
    };
    std::vector<Stray> strays;
    bool daemonized = false; // its main process exited 0 while processes it started lived on
    Shared *shm = nullptr;
    std::vector<uint64_t> passed; // registry ids handed to this generation, in order
    std::vector<bool> claimed;
    size_t nclaimed = 0; // how many of claimed are true
    bool hello = false;
    bool accepting = false; // some process accepts or waits for connections on a shared socket
    int registered = 0;     // sockets this generation listened on itself
    bool notified_ready = false; // READY=1 from one of its processes
    bool main_exited = false;
    int status = 0;         // wait status of the main process
    int exec_error = 0;     // errno if PROGRAM could not be executed
    int reload = 0;         // the reload that started it (0: the first generation)
    int64_t started_ms = 0;
    int64_t started_wall_ms = 0;
    int64_t serving_wall_ms = 0;  // since when it serves (CLOCK_REALTIME)
    int64_t deadline_ms = 0; // of the current state (ready, drain, kill); 0: none
    int64_t listen_ok_ms = 0; // --ready SEC: when the listen condition first held
    int64_t trial_end_ms = 0; // on trial: end of the rollback window
    int64_t promoted_ms = 0;
    pid_t check_pid = -1;     // its --ready-check, while running
    int64_t check_deadline_ms = 0;
    bool check_done = false;
    std::string check_failure;
    // Its drain, reported for the reload that superseded it (drain_reload).
    int drain_reload = 0;
    int64_t paused_ms = 0;    // when it stopped accepting
    int conns_at_pause = -1;
    int64_t stop_sent_ms = 0;
    bool killed = false;
    int64_t next_check_ms = 0;   // draining: when to re-check idle without an event
    int64_t next_reclaim_ms = 0; // when to free slots of dead processes next
    int64_t kernel_zero_since_ms = 0; // draining: since when the kernel has seen no connection
    int64_t next_kernel_check_ms = 0; // draining with connections counted: when to ask the kernel next
    bool idle_hint = false;      // MSG_IDLE received this loop turn
    WarnLimit warn;              // for the warnings its processes can cause at will
    // Single-instance guards (guards.cc): its main process's start time (/proc/PID/stat, for Shared::older),
    // the lock an older generation held when it tried to take it, and --instance-lock files whose flock()
    // was answered as taken: the launcher takes each lock on that open file once it is free.
    unsigned long long start_ticks = 0;
    std::string lock_conflict;
    struct PendingLock {
        int fd;
        std::string path;
    };
    std::vector<PendingLock> pending_locks;
    // A program the shim cannot run in (static, setuid/setgid, file capabilities): no private
    // descriptors, sockets by convention only, drained by its own stop signal.
    bool shimless = false;
    // --seccomp (a shimless generation): its filter's notification descriptor, served in the poll loop
    // while any of its processes runs under the filter (seccomp.h).
    bool seccomp = false;
    int notif = -1;
};

class Supervisor {
public:
    Supervisor(const Options &opts, const std::string &shim);
    ~Supervisor();
    // Runs until the last generation is gone; returns the launcher's exit status.
    int run();

private:
    bool setup();
    Gen *start_generation(int reload);
    void fire(Gen &g, GenEvent e);
    void drain(Gen &g);
    void pause(Gen &g, bool for_report);
    void drain_over(Gen &g, int64_t now);
    bool idle(Gen &g);
    void on_signal(int sig);
    void on_child_exits();
    void on_ctl(Gen &g, int &fd, bool hangup);
    bool new_ctl(Gen &g);
    void on_notify(Gen &g);
    void on_rendezvous();
    void on_seccomp(Gen &g);
    bool may_take(int n) const;
    void on_control(const ControlRequest &r);
    void on_deadlines(int64_t now);
    void check_ready(Gen &g);
    void start_check(Gen &g);
    void maybe_confirm(Gen &g);
    void check_empty();
    void adopt_strays(Gen &g, const std::vector<ProcEntry> &snap);
    bool gen_empty(const Gen &g) const;
    bool strays_gone(const Gen &g) const; // gen_empty() once its group is known to be empty
    void signal_gen(Gen &g, int sig);
    void request_reload(const char *who, int client, bool json);
    void start_reload();
    void finish_reload(const char *outcome, const std::string &reason);
    void request_stop(const char *who);
    bool schedule_restart(const Gen &g, bool failure);
    void start_restart();
    void begin_shutdown();
    void after_step();
    bool reload_in_progress() const;
    ReloadReport *find_report(int number);
    std::string rollback_reason(const Gen &g, GenEvent e) const;
    std::string foreign_listeners(const Gen &g) const;
    StatusReport status() const;
    std::string unclaimed(const Gen &g) const;
    void release(Gen &g);
    // guards.cc: what a generation's shim reports about its probe sockets and single-instance guards.
    void publish_older(Gen &g);
    void forget_older(const Gen &gone);
    void on_closed(Gen &g, const Msg &m);
    void on_locked(Gen &g, const Msg &m);
    void on_lock_handover(Gen &g, int fd, const Msg &m);
    void hand_over_locks();
    std::string lock_hint(const Gen &g) const;
    void write_pid_file();
    void remove_pid_file();
    bool take_given_sockets();
    // False (start_refused_ says why, logged) where the sockets cannot all be handed over.
    bool add_conventional(Gen &g, SpawnRequest *req);
    Gen *start_shimless(std::unique_ptr<Gen> g);
    Gen *started(std::unique_ptr<Gen> g, const SpawnResult &r);
    void drain_shimless(Gen &g);
    std::string shimless_refusal(const ProgInfo &p) const;

    Options opts_;
    std::string shim_;
    RunAs runas_;                 // --user
    std::string start_refused_;   // why the last start_generation() refused to start the program
    Registry registry_;
    SeccompAccepts accepts_; // --seccomp-accept: the generations' trapped accepts held by the launcher
    Control control_;
    Sentinel sentinel_;
    SdNotify sd_; // the launcher's own NOTIFY_SOCKET (systemd), if any
    std::vector<std::unique_ptr<Gen>> gens_;
    Gen *serving_ = nullptr; // serving or on trial
    Gen *next_ = nullptr;    // starting
    Gen *standby_ = nullptr; // superseded by the one on trial; resumes if that one fails
    int gen_counter_ = 0;
    int sigfd_ = -1;
    int rdv_ = -1;         // the rendezvous (rendezvous.h)
    RefusalLog rdv_log_;
    sigset_t orig_mask_;
    struct sigaction orig_sigpipe_ {};
    // Reloads: the one in progress, requests that wait for the next one, and the last reports.
    std::unique_ptr<ReloadReport> current_;
    std::vector<std::pair<int, bool>> current_waiters_; // (control client, json)
    std::vector<std::pair<int, bool>> pending_waiters_;
    std::vector<int> stop_waiters_;
    std::deque<ReloadReport> history_;
    int reload_counter_ = 0;
    int reloads_total_ = 0;
    int reloads_failed_ = 0;
    bool reload_pending_ = false;
    bool prune_due_ = false;
    // Crash restart (--restart): pending restart, its time, the number so far, and the current crash streak.
    bool ever_served_ = false;
    int last_serving_gen_ = 0;
    bool restart_pending_ = false;
    int64_t restart_at_ms_ = 0;
    int restarts_ = 0;
    int crash_streak_ = 0;
    int shutdown_requests_ = 0;
    int status_gen_ = 0;     // whose exit status becomes the launcher's
    int exit_status_ = 0;
    bool exit_status_fixed_ = false; // set by a failure of the launcher's own (not the program's status)
    int64_t started_ms_ = 0;
    bool done_ = false;
};

int64_t now_ms();
// When pid started (field 22 of /proc/PID/stat, clock ticks since boot); 0 if unknown (guards.cc).
unsigned long long process_start_ticks(pid_t pid);
// 0..255 from a wait status: the exit code, or 128+N for signal N.
int exit_code_of(int status);
std::string describe_status(int status);

} // namespace hr
