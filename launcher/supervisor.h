// The supervisor: one thread, one poll loop with a deadline, signals read from a signalfd. It owns the
// generations and the registry, turns what happens (signals, child exits, shim messages, deadlines) into
// events of the generation state machine (genstate.h), and carries out the actions it returns.
#pragma once

#include "genstate.h"
#include "options.h"
#include "protocol.h"
#include "registry.h"

#include <memory>
#include <signal.h>
#include <stdint.h>
#include <string>
#include <vector>

namespace hr {

struct Gen {
    int n = 0;
    pid_t pid = -1;
    GenState st = GS_STARTING;
    int ctl = -1;   // launcher's end of the control socketpair
    int wake = -1;  // eventfd: written once to wake the generation's acceptors when draining
    int shmfd = -1;
    Shared *shm = nullptr;
    std::vector<uint64_t> passed; // registry ids handed to this generation, in order
    std::vector<bool> claimed;
    bool hello = false;
    bool accepting = false; // some process accepts or waits for connections on a shared socket
    int registered = 0;     // sockets this generation listened on itself
    bool main_exited = false;
    int status = 0;         // wait status of the main process
    int exec_error = 0;     // errno if PROGRAM could not be executed
    int64_t started_ms = 0;
    int64_t deadline_ms = 0; // of the current state (ready, drain, kill); 0: none
    int64_t drain_started_ms = 0;
    int64_t next_check_ms = 0;   // draining: when to re-check idle without an event
    int64_t next_reclaim_ms = 0; // when to free slots of dead processes next
    int64_t kernel_zero_since_ms = 0; // draining: since when the kernel has seen no connection
    bool idle_hint = false;      // MSG_IDLE received this loop turn
};

class Supervisor {
public:
    Supervisor(const Options &opts, const std::string &shim);
    ~Supervisor();
    // Runs until the last generation is gone; returns the launcher's exit status.
    int run();

private:
    bool setup();
    Gen *start_generation();
    void fire(Gen &g, GenEvent e);
    void drain(Gen &g);
    bool idle(Gen &g);
    void on_signal(int sig);
    void on_child_exits();
    void on_ctl(Gen &g, bool hangup);
    void on_deadlines(int64_t now);
    void check_ready(Gen &g);
    void check_empty();
    void begin_shutdown();
    void after_step();
    bool reload_in_progress() const;
    std::string unclaimed(const Gen &g) const;
    void release(Gen &g);
    void write_pid_file();
    void remove_pid_file();

    Options opts_;
    std::string shim_;
    Registry registry_;
    std::vector<std::unique_ptr<Gen>> gens_;
    Gen *serving_ = nullptr;
    Gen *next_ = nullptr;
    int gen_counter_ = 0;
    int sigfd_ = -1;
    sigset_t orig_mask_;
    struct sigaction orig_sigpipe_ {};
    bool reload_pending_ = false;
    int shutdown_requests_ = 0;
    int status_gen_ = 0;     // whose exit status becomes the launcher's
    int exit_status_ = 0;
    bool done_ = false;
};

int64_t now_ms();
// 0..255 from a wait status: the exit code, or 128+N for signal N.
int exit_code_of(int status);
std::string describe_status(int status);

} // namespace hr
