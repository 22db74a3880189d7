#include "supervisor.h"

#include "ctlmsg.h"
#include "kernelscan.h"
#include "listen.h"
#include "log.h"
#include "nofile.h"
#include "notify.h"
#include "pidfile.h"
#include "procs.h"
#include "rendezvous.h"
#include "sdnotify.h"
#include "seccomp.h"
#include "spawn.h"
#include "state.h"

#include <algorithm>
#include <cstdint>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <unordered_map>

namespace hr {

namespace {

// How often draining and stopping generations are re-checked for what sends no event: a process that
// died without closing its connections (its slot), a process of the group that was not our child.
constexpr int kTickMs = 100;
// How long the kernel must keep saying "no connection" before a shim count that it contradicts is taken
// as stale (closes the shim could not see).
constexpr int64_t kStaleAfterMs = 2000;
constexpr int64_t kKernelRecheckMs = 500;
// At most this many control messages are handled per loop turn: a process that floods its control
// socket cannot keep the launcher from its signals and deadlines.
constexpr int kMaxMessagesPerTurn = 64;
constexpr int64_t kReclaimMs = 5000;
// Crash restarts back off: at once, then 100 ms, doubling up to 10 s; a generation that served 10 s
// ends the streak.
constexpr int64_t kBackoffFirstMs = 100;
constexpr int64_t kBackoffMaxMs = 10000;
constexpr int64_t kStableMs = 10000;

bool process_alive(int32_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// No process has process group pgid (cheap; a group that seems alive may be a recycled number: see
// Supervisor::gen_empty()).
bool no_such_group(pid_t pgid) { return kill(-pgid, 0) < 0 && errno == ESRCH; }

} // namespace

int64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return kExitLauncherError;
}

std::string describe_status(int status) {
    char buf[64];
    if (WIFEXITED(status)) snprintf(buf, sizeof buf, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(buf, sizeof buf, "was killed by %s", signal_name(WTERMSIG(status)));
    else snprintf(buf, sizeof buf, "ended with wait status %#x", status);
    return buf;
}

Supervisor::Supervisor(const Options &opts, const std::string &shim) : opts_(opts), shim_(shim) {
    sigemptyset(&orig_mask_);
}

Supervisor::~Supervisor() {
    for (auto &g : gens_) release(*g);
    if (sigfd_ >= 0) close(sigfd_);
    if (rdv_ >= 0) close(rdv_);
}

// Launcher start-up: every descriptor we inherited becomes close-on-exec (only what we pass on purpose
// reaches a generation), signals are blocked and read from a signalfd, and we become the subreaper of
// the generations so that orphaned workers are still ours to wait for.
bool Supervisor::setup() {
    if (close_range(3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 1024; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&mask, s);
    if (sigprocmask(SIG_BLOCK, &mask, &orig_mask_) < 0) {
        logf("fatal: unable to block signals: %s", strerror(errno));
        return false;
    }
    // A dead reader of our stderr (hotrestart ... 2>&1 | logger) must not kill the launcher and, through
    // PDEATHSIG, the serving generation. The child gets the original disposition back before exec.
    struct sigaction ign{};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &orig_sigpipe_);
    sigfd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd_ < 0) {
        logf("fatal: unable to create a signalfd: %s", strerror(errno));
        return false;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) logf("warning: unable to become a child subreaper: %s", strerror(errno));
    return true;
}

void Supervisor::write_pid_file() {
    if (opts_.pid_file.empty()) return;
    if (!pid_file_write(opts_.pid_file, int(getpid())))
        logf("warning: unable to write pid file %s: %s", opts_.pid_file.c_str(), strerror(errno));
}

void Supervisor::remove_pid_file() {
    if (!opts_.pid_file.empty()) pid_file_remove(opts_.pid_file, int(getpid()));
}

// Makes the private descriptors of a new generation and fork/execs it with the registry's sockets. The
// private descriptors stay close-on-exec: its main process fetches them at the rendezvous (on_rendezvous).
Gen *Supervisor::start_generation(int reload) {
    start_refused_.clear();
    // What PROGRAM is now (a reload may find another binary): the shim cannot run in every program.
    const std::string path = prog_resolve(opts_.argv[0], opts_.chdir);
    const ProgInfo prog = path.empty() ? ProgInfo()
                          : prog_classify(path, runas_.set ? runas_.uid : getuid(), runas_.set ? runas_.gid : getgid());
    auto g = std::make_unique<Gen>();
    g->n = ++gen_counter_;
    g->reload = reload;
    if (prog_shimless(prog.kind)) {
        if (std::string why = shimless_refusal(prog); !why.empty()) {
            start_refused_ = "was refused: " + why;
            logf("error: gen %d %s", g->n, start_refused_.c_str());
            return nullptr;
        }
        g->shimless = true;
        g->seccomp = opts_.seccomp;
        if (g->seccomp) {
            logf("gen %d: %s is %s: the shim cannot run in it; its bind and listen are answered by seccomp "
                 "(--seccomp) and it is stopped by %s once a newer generation is ready", g->n,
                 escape_text(prog.path).c_str(), prog_kind_text(prog.kind), signal_name(opts_.stop_signal));
            return start_shimless(std::move(g));
        }
        logf("gen %d: %s is %s: the shim cannot run in it; it gets its sockets by LISTEN_FDS and "
             "SERVER_STARTER_PORT and is stopped by %s once a newer generation is ready", g->n,
             escape_text(prog.path).c_str(), prog_kind_text(prog.kind), signal_name(opts_.stop_signal));
        return start_shimless(std::move(g));
    }
    if (!new_ctl(*g)) {
        release(*g);
        return nullptr;
    }
    g->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->shmfd = memfd_create("hotrestart-gen", MFD_CLOEXEC);
    void *mem = MAP_FAILED;
    if (g->wake >= 0 && g->shmfd >= 0 && ftruncate(g->shmfd, kSharedSize) == 0)
        mem = mmap(nullptr, kSharedSize, PROT_READ | PROT_WRITE, MAP_SHARED, g->shmfd, 0);
    if (mem == MAP_FAILED) {
        logf("error: unable to create the shared state for gen %d: %s", g->n, strerror(errno));
        release(*g);
        return nullptr;
    }
    g->shm = new (mem) Shared();
    g->shm->magic = kMagic;
    g->shm->version = kProtocolVersion;

    SpawnRequest req;
    if (opts_.ready == READY_NOTIFY) {
        std::string where;
        g->notify = notify_open(g->n, &where);
        if (g->notify < 0) {
            logf("error: unable to create the notification socket for gen %d: %s", g->n, strerror(errno));
            release(*g);
            return nullptr;
        }
        req.env.push_back("NOTIFY_SOCKET=" + where);
    }
    // Which lock files are single-instance guards (guards.cc).
    if (!opts_.instance_locks.empty()) {
        std::string locks;
        for (const auto &l : opts_.instance_locks) locks += (locks.empty() ? "" : "\n") + l;
        req.env.push_back("HOTRESTART_INSTANCE_LOCKS=" + locks);
    }
    publish_older(*g);
    req.argv = opts_.argv;
    req.shim = shim_;
    req.sigmask = orig_mask_;
    req.sigpipe = orig_sigpipe_;
    // Placeholders: the shim uses the descriptors it receives at the rendezvous; numbers of the launcher's
    // could collide with the generation's sockets at 3, 4... (the decoder wants them all distinct).
    req.cfg.ctl = kMaxFdNumber;
    req.cfg.wake = kMaxFdNumber - 1;
    req.cfg.shm = kMaxFdNumber - 2;
    req.cfg.gen = g->n;
    req.cfg.launcher_pid = getpid();
    req.cfg.verbose = opts_.verbose > 1 ? opts_.verbose - 1 : 0;
    // No private descriptor crosses the exec: the main process fetches them at the rendezvous, with g->cfg.
    if (!add_conventional(*g, &req)) {
        release(*g);
        return nullptr;
    }
    for (int i = 0; i < int(req.conv_fds.size()); ++i) req.cfg.fds[req.cfg.nfds++] = 3 + i; // where the child has them
    g->cfg = req.cfg;
    SpawnResult r = spawn_generation(req);
    return started(std::move(g), r);
}

// The registry's sockets for g by convention (descriptors from 3 up, LISTEN_*, SERVER_STARTER_PORT), and
// what every generation's request shares (--user, signal state).
bool Supervisor::add_conventional(Gen &g, SpawnRequest *req) {
    req->argv = opts_.argv;
    req->shim = shim_;
    req->sigmask = orig_mask_;
    req->sigpipe = orig_sigpipe_;
    req->runas = runas_;
    // Who it is, for a program that wants a directory of its own per generation (a lock or a pid file that
    // must not be the previous generation's).
    req->env.push_back("HOTRESTART_GENERATION=" + std::to_string(g.n));
    if (runas_.set)
        for (const std::string &v : {"HOME=" + runas_.home, "USER=" + runas_.name, "LOGNAME=" + runas_.name})
            req->env.push_back(v);
    for (const auto &name : registry_.drop_unusable()) logf("warning: dropped %s: no longer a listening socket", name.c_str());
    std::vector<ConventionSocket> conv;
    const auto &all = registry_.all();
    int limit = int(all.size()) < kMaxInherited ? int(all.size()) : kMaxInherited;
    // A generation given only some of its sockets would fail to bind the others (the older generation
    // holds them): refuse it before it starts, so that the one serving keeps on and the report says why.
    // A --seccomp generation gets its sockets one bind at a time, not by descriptor numbers.
    std::string why;
    if (limit > 0 && !g.seccomp && !nofile_fits(limit, nofile_max_fd(), &why)) {
        start_refused_ = "was refused: " + why;
        logf("error: gen %d %s", g.n, start_refused_.c_str());
        return false;
    }
    for (const auto &l : all) {
        if (req->conv_fds.size() == size_t(limit)) {
            logf("warning: gen %d inherits only the first %d listening sockets", g.n, limit);
            break;
        }
        req->conv_fds.push_back(l.fd);
        conv.push_back({l.fdname.empty() ? "unknown" : l.fdname, starter_key(l.fd)});
        g.passed.push_back(l.id);
    }
    for (const auto &v : convention_env(conv)) req->env.push_back(v);
    g.claimed.assign(g.passed.size(), false);
    g.nclaimed = 0;
    g.started_ms = now_ms();
    g.started_wall_ms = realtime_ms();
    return true;
}

// A generation the shim cannot run in: only its sockets by convention and, with --ready notify, its
// NOTIFY_SOCKET. Ready by --ready notify or --ready SEC (counted from its start).
Gen *Supervisor::start_shimless(std::unique_ptr<Gen> g) {
    SpawnRequest req;
    req.shimless = true;
    if (opts_.ready == READY_NOTIFY) {
        std::string where;
        g->notify = notify_open(g->n, &where);
        if (g->notify < 0) {
            logf("error: unable to create the notification socket for gen %d: %s", g->n, strerror(errno));
            release(*g);
            return nullptr;
        }
        req.env.push_back("NOTIFY_SOCKET=" + where);
    }
    if (!add_conventional(*g, &req)) {
        release(*g);
        return nullptr;
    }
    if (g->seccomp) {
        // It binds its sockets itself: no descriptors or variables by convention. Each is its once its
        // bind is answered with the registry's socket, taken over once it listens on it (on_seccomp).
        req.conv_fds.clear();
        std::vector<std::string> env;
        for (auto &v : req.env)
            if (v.compare(0, 7, "LISTEN_") != 0 && v.compare(0, 20, "SERVER_STARTER_PORT=") != 0) env.push_back(v);
        req.env.swap(env);
        req.seccomp = opts_.seccomp_accept ? seccomp_accept_filter() : seccomp_filter();
        g->hello = true; // nothing to wait for before its sockets count (check_ready)
    } else {
        // Nothing reports its sockets taken over: they are its from the start.
        g->claimed.assign(g->passed.size(), true);
        g->nclaimed = g->passed.size();
        for (uint64_t id : g->passed) registry_.mark_used(id, g->n);
    }
    SpawnResult r = spawn_generation(req);
    Gen *out = started(std::move(g), r);
    if (out) out->notif = r.notif;
    else if (r.notif >= 0) close(r.notif);
    if (out && opts_.ready == READY_DELAY && !out->seccomp) out->listen_ok_ms = out->started_ms;
    return out;
}

Gen *Supervisor::started(std::unique_ptr<Gen> g, const SpawnResult &r) {
    if (r.pid < 0) {
        logf("error: unable to %s gen %d: %s", r.what, g->n, strerror(r.error));
        release(*g);
        return nullptr;
    }
    g->pid = r.pid;
    g->cfg.main_pid = r.pid;
    g->pidfd = pidfd_open(r.pid); // our unreaped child: the pid is still the one we started
    g->start_ticks = process_start_ticks(r.pid);
    sentinel_.watch(g->pid);
    g->exec_error = r.error;
    g->deadline_ms = g->started_ms + int64_t(opts_.ready_timeout * 1000);
    if (r.error == 0) logf("gen %d started (pid %d)", g->n, int(g->pid));
    else logf("error: unable to %s '%s': %s%s", r.what, escape_text(opts_.argv[0]).c_str(), strerror(r.error),
              r.error == EPERM && strstr(r.what, "--user") ? " (only a launcher with root, or CAP_SETUID and "
                                                             "CAP_SETGID, can run generations as another user)" : "");
    gens_.push_back(std::move(g));
    return gens_.back().get();
}

// A control socketpair for g's main process to fetch at the rendezvous: the launcher keeps ctl (an earlier
// one, if any, goes to ctl_old and is still read) and holds ctl_peer only until it is handed over.
bool Supervisor::new_ctl(Gen &g) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        logf("error: unable to create the control socket for gen %d: %s", g.n, strerror(errno));
        return false;
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    if (!ctl_pass_credentials(sv[0])) {
        logf("error: unable to enable credentials on the control socket for gen %d: %s", g.n, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    if (g.ctl >= 0) g.ctl_old.push_back(g.ctl);
    if (g.ctl_peer >= 0) close(g.ctl_peer);
    g.ctl = sv[0];
    g.ctl_peer = sv[1];
    return true;
}

void Supervisor::release(Gen &g) {
    for (int fd : g.ctl_old) if (fd >= 0) close(fd);
    g.ctl_old.clear();
    g.warn.flush(g.n);
    for (int *fd : {&g.ctl, &g.ctl_peer, &g.wake, &g.shmfd, &g.notify, &g.pidfd, &g.notif}) {
        if (*fd >= 0) close(*fd);
        *fd = -1;
    }
    for (auto &s : g.strays) close(s.pidfd);
    g.strays.clear();
    for (auto &l : g.pending_locks) close(l.fd);
    g.pending_locks.clear();
    if (g.shm) munmap(g.shm, kSharedSize);
    g.shm = nullptr;
}

// Idle: no connection of this generation is open any more. The shim's count is the fast path (its last
// closer sends MSG_IDLE); the kernel has the last word, because the shim cannot see everything: a process
// that died holding connections (its slot is then ignored), a close by raw syscall, a connection passed to a
// process the shim does not run in (an exec'd worker, SCM_RIGHTS).
bool Supervisor::idle(Gen &g) {
    if (g.shimless) return false; // it stops on its own stop signal: done when it is gone
    if (!g.shm) return true;
    auto shim_zero = [&] {
        return shared_total_conns(g.shm) <= 0 ||
               (!g.shm->slotless.load() && shared_live_conns(g.shm, process_alive) == 0);
    };
    bool zero = shim_zero();
    // While the shim counts connections, the kernel is asked only for counts it may be missing (see
    // below), which kStaleAfterMs bounds anyway: every kKernelRecheckMs, not on every tick or close (a
    // scan reads every process of the group; thousands of them cost a core's percents).
    const int64_t now = now_ms();
    if (!zero && now < g.next_kernel_check_ms) return false;
    int kernel = kernel_live_conns(g.pid, registry_);
    if (!zero) g.next_kernel_check_ms = now + kKernelRecheckMs;
    if (zero) return kernel <= 0; // -1: the kernel cannot tell us (processes of another user)
    // The last close may have come during the scan (it takes a while with many processes): counts only
    // fall while draining, so zero now and no connection seen by the scan is idle too.
    if (kernel <= 0 && shim_zero()) return true;
    // The shim counts more than the kernel holds: closes it did not see. But a count can also be a
    // connection between its reservation and accept() returning (in the queue, not yet held), or one in
    // flight over SCM_RIGHTS: trust the kernel only when it has said zero on every check for a while.
    if (kernel != 0) {
        g.kernel_zero_since_ms = 0;
        return false;
    }
    if (g.kernel_zero_since_ms == 0) g.kernel_zero_since_ms = now;
    return now - g.kernel_zero_since_ms >= kStaleAfterMs;
}

// Stop accepting: the wake-up first, then the flag (the shim re-checks it around every accept). The
// wake-up reaches the epoll sets that hold an exclusive shared registration (see shim/epoll.cc): they drop
// EPOLLEXCLUSIVE before the flag can make them hide a new connection's only wake-up. A waiter woken before
// the flag is up accepts as before, at most until the flag is up a moment later. A paused generation may
// still resume (standby); for_report: its drain is the current reload's.
void Supervisor::pause(Gen &g, bool for_report) {
    if (g.wake >= 0) {
        uint64_t one = 1;
        ssize_t w = write(g.wake, &one, sizeof one);
        (void)w;
    }
    if (g.shm) g.shm->draining.store(for_report ? kStandby : kDraining, std::memory_order_seq_cst);
    g.paused_ms = now_ms();
    int live = g.shm ? shared_total_conns(g.shm) : 0;
    g.conns_at_pause = g.shimless ? -1 : live < 0 ? 0 : live; // without the shim nobody counts them
    if (for_report && current_) {
        g.drain_reload = current_->number;
        current_->drained_connections = g.conns_at_pause;
    }
}

// Drain for good: arm the drain deadline (counted from when it stopped accepting) and check idle now.
void Supervisor::drain(Gen &g) {
    if (g.shimless) {
        drain_shimless(g);
        return;
    }
    if (!g.paused_ms) pause(g, false);
    if (g.shm) g.shm->draining.store(kDraining, std::memory_order_seq_cst); // for good: no more quick re-checks
    const int64_t now = now_ms();
    g.deadline_ms = std::max(now, g.paused_ms + int64_t(opts_.drain_timeout * 1000));
    g.next_check_ms = 0;
    int live = g.shm ? shared_total_conns(g.shm) : 0;
    logf("gen %d draining (%d connection%s open)", g.n, live < 0 ? 0 : live, live == 1 ? "" : "s");
    if (idle(g)) fire(g, EV_IDLE);
}

// A generation without the shim cannot be told to stop accepting: its own stop signal is its drain (a
// graceful shutdown, like Go's http.Server.Shutdown). Sent once, now; SIGKILL follows --drain-timeout +
// --kill-timeout later (DRAINING's deadline, then STOPPING's, which sends nothing again).
void Supervisor::drain_shimless(Gen &g) {
    const int64_t now = now_ms();
    if (!g.paused_ms) pause(g, false);
    g.deadline_ms = now + int64_t(opts_.drain_timeout * 1000);
    if (g.stop_sent_ms || gen_empty(g)) return;
    logf("gen %d draining: sending %s to process group %d (its own graceful stop; SIGKILL after %g s)", g.n,
         signal_name(opts_.stop_signal), int(g.pid), opts_.drain_timeout + opts_.kill_timeout);
    signal_gen(g, opts_.stop_signal);
    g.stop_sent_ms = now;
}

// Why a program the shim cannot run in may not start as configured (empty: it may): it needs a
// readiness it can give without the shim, and sockets it gets by convention (binding its own would leave
// two sockets on the port after a reload, each with half the connections).
std::string Supervisor::shimless_refusal(const ProgInfo &p) const {
    if (opts_.seccomp) {
        // no_new_privs makes exec ignore set-id bits and file capabilities: it would run without them.
        if (p.kind != PK_STATIC && geteuid() != 0)
            return escape_text(p.path) + " is " + prog_kind_text(p.kind) + ", which --seccomp run by a user other "
                   "than root would exec with no_new_privs, ignoring what it is set to gain: run the launcher as "
                   "root or drop --seccomp";
        return "";
    }
    const bool ready_ok = opts_.ready != READY_LISTEN, sockets_ok = !registry_.all().empty();
    if (ready_ok && sockets_ok) return "";
    std::string add = !ready_ok ? "--ready notify (it sends READY=1) or --ready SEC" : "";
    if (!sockets_ok) add += std::string(add.empty() ? "" : ", and ") + "--listen ADDR (or socket activation) for the sockets it reads from LISTEN_FDS";
    return escape_text(p.path) + " is " + prog_kind_text(p.kind) + ", which the shim cannot run in: add " + add;
}

std::string Supervisor::unclaimed(const Gen &g) const {
    std::string out;
    for (size_t i = 0; i < g.passed.size(); ++i) {
        if (g.claimed[i]) continue;
        const Listener *l = registry_.find(g.passed[i]);
        if (!out.empty()) out += ", ";
        out += l ? l->name : "?";
    }
    return out;
}

// Listening sockets of g that the shim never reported, with what that means; empty if none.
std::string Supervisor::foreign_listeners(const Gen &g) const {
    std::string list;
    for (const auto &l : kernel_foreign_listeners(g.pid, registry_)) list += (list.empty() ? "" : ", ") + escape_text(l);
    if (list.empty()) return list;
    return "listens on " + list + ", in a process where the shim is not active: a wrapper that forks (runuser, "
           "su, sudo, a shell running it as a child) or a static or setuid program started it; use an exec-style "
           "wrapper (setpriv, chpst, s6-setuidgid, exec in the shell) or let the server drop privileges itself";
}

std::string Supervisor::rollback_reason(const Gen &g, GenEvent e) const {
    char secs[32];
    snprintf(secs, sizeof secs, "%g", opts_.ready_timeout);
    if (e == EV_CHECK_FAILED) return g.check_failure;
    if (e == EV_READY_TIMEOUT) {
        std::string why = "was not ready after " + std::string(secs) + " s: ";
        if (std::string where = foreign_listeners(g); !where.empty()) return why + "it " + where;
        if (opts_.ready == READY_NOTIFY) return why + "it never sent READY=1 to $NOTIFY_SOCKET";
        if (!g.hello) return why + "the shim never reported in (static or setuid program, or LD_PRELOAD removed?)";
        if (g.passed.empty() && g.registered == 0) return why + "it listened on no socket";
        return why + "never claimed " + unclaimed(g) + lock_hint(g);
    }
    if (g.exec_error) return "could not be executed: " + std::string(strerror(g.exec_error));
    if (g.daemonized) return "daemonized (its main process exited 0, what it started lives on): run it in the foreground";
    if (g.st == GS_TRIAL || g.promoted_ms)
        return describe_status(g.status) + ", " + std::to_string(now_ms() - g.promoted_ms) +
               " ms after it took over";
    std::string why = describe_status(g.status) + " before it was ready";
    if (!unclaimed(g).empty()) why += " (unclaimed: " + unclaimed(g) + ")";
    return why + lock_hint(g);
}

void Supervisor::fire(Gen &g, GenEvent e) {
    Transition t = gen_transition(g.st, e);
    if (t.action == A_INVALID) {
        logf("warning: gen %d: ignoring event %s in state %s", g.n, gen_event_name(e), gen_state_name(g.st));
        return;
    }
    GenState prev = g.st;
    // The reason is worded from the state the generation was in.
    std::string why = t.action == A_ROLLBACK ? rollback_reason(g, e) : std::string();
    g.st = t.next;
    if (prev != t.next) debugf("gen %d: %s -> %s (%s)", g.n, gen_state_name(prev), gen_state_name(t.next), gen_event_name(e));
    const int64_t now = now_ms();
    // Leaving the trial, whatever the way: its --ready-check has nothing left to prove.
    if (prev == GS_TRIAL && g.check_pid > 0) {
        kill(-g.check_pid, SIGKILL);
        g.check_pid = -1;
    }
    switch (t.action) {
    case A_NONE:
    case A_INVALID: break;
    case A_PROMOTE: {
        g.deadline_ms = 0;
        // Inherited sockets it did not take over (a dropped port): its processes close their copies
        // now; the launcher closes its own once the reload completes.
        for (size_t i = 0; i < g.claimed.size(); ++i)
            if (!g.claimed[i] && g.shm) shared_release(g.shm, int(i));
        Gen *old = serving_;
        serving_ = &g;
        if (next_ == &g) next_ = nullptr;
        g.promoted_ms = now;
        g.serving_wall_ms = realtime_ms();
        if (current_ && current_->generation == g.n) current_->ready_ms = now - g.started_ms;
        if (old) {
            logf("gen %d ready in %lld ms; gen %d stops accepting", g.n, (long long)(now - g.started_ms), old->n);
            standby_ = old;
            fire(*old, EV_STANDBY);
        } else {
            logf("gen %d ready in %lld ms", g.n, (long long)(now - g.started_ms));
        }
        g.trial_end_ms = now + (old ? int64_t(opts_.rollback_window * 1000) : 0);
        if (!opts_.ready_check.empty()) start_check(g);
        maybe_confirm(g); // last: it may fire the next event on g
        break;
    }
    case A_CONFIRM: {
        g.deadline_ms = 0;
        if (Gen *old = standby_) {
            standby_ = nullptr;
            fire(*old, EV_RELEASE);
        }
        if (current_ && current_->generation == g.n) finish_reload("ok", current_->reason);
        else sd_.serving("gen " + std::to_string(g.n) + " (pid " + std::to_string(g.pid) + ") serving");
        prune_due_ = true;
        ever_served_ = true;
        last_serving_gen_ = g.n;
        break;
    }
    case A_ROLLBACK: {
        if (next_ == &g) next_ = nullptr;
        if (serving_ == &g) serving_ = nullptr;
        if (Gen *old = standby_) {
            standby_ = nullptr;
            fire(*old, EV_RESUME);
        }
        if (serving_) {
            if (current_) finish_reload("rolled_back", why);
            else logf("gen %d %s; gen %d keeps serving", g.n, why.c_str(), serving_->n);
        } else {
            if (!g.daemonized) logf("gen %d %s", g.n, why.c_str()); // else said already, with the fix
            if (current_) {
                current_->resumed = false;
                finish_reload("rolled_back", why);
            }
            if (g.daemonized) {
                exit_status_ = kExitLauncherError;
                exit_status_fixed_ = true;
            } else if (schedule_restart(g, true)) {
                // a crash restart that failed too: the next one backs off
            } else if (g.main_exited) {
                exit_status_ = g.exec_error ? (g.exec_error == ENOENT ? kExitNotFound : kExitNotExecutable)
                                            : exit_code_of(g.status);
            } else if (e == EV_CHECK_FAILED) {
                exit_status_ = 1;
                exit_status_fixed_ = true;
            }
            if (!restart_pending_) begin_shutdown();
        }
        drain(g);
        break;
    }
    case A_LOST: {
        logf("gen %d (pid %d) %s on its own", g.n, int(g.pid), describe_status(g.status).c_str());
        const bool was_serving = serving_ == &g;
        if (was_serving) {
            serving_ = nullptr;
            exit_status_ = exit_code_of(g.status);
            status_gen_ = g.n;
        }
        if (standby_ == &g) standby_ = nullptr;
        const bool failed = !WIFEXITED(g.status) || WEXITSTATUS(g.status) != 0;
        if (g.daemonized && was_serving) {
            // Restarting it would only daemonize again. Not the program's status: ours.
            exit_status_ = kExitLauncherError;
            exit_status_fixed_ = true;
            begin_shutdown();
        } else if (!serving_ && !next_ && !(was_serving && schedule_restart(g, failed))) {
            begin_shutdown();
        }
        drain(g);
        break;
    }
    case A_PAUSE: pause(g, true); break;
    case A_RESUME: {
        // The wake-up first (waiters must not see it readable once accepting), then the flag.
        uint64_t v;
        if (g.wake >= 0 && read(g.wake, &v, sizeof v) < 0) debugf("gen %d: wake-up already clear", g.n);
        if (g.shm) g.shm->draining.store(kAccepting, std::memory_order_seq_cst);
        g.paused_ms = 0;
        g.conns_at_pause = -1;
        g.drain_reload = 0;
        g.kernel_zero_since_ms = 0;
        if (current_) current_->drained_connections = -1;
        serving_ = &g;
        last_serving_gen_ = g.n;
        logf("gen %d accepts again", g.n);
        break;
    }
    case A_DRAIN:
    case A_CONTINUE: drain(g); break;
    case A_STOP:
        if (gen_empty(g)) {
            // Nothing left to signal (it exited on its own): its group is empty, and the number may be
            // another process's by now. The next check of empty groups makes it gone.
            debugf("gen %d: no process left to stop", g.n);
        } else if (g.shimless && g.stop_sent_ms) {
            logf("gen %d: still running %g s after %s (--drain-timeout)", g.n, opts_.drain_timeout,
                 signal_name(opts_.stop_signal));
        } else {
            logf("gen %d: sending %s to process group %d%s", g.n, signal_name(opts_.stop_signal), int(g.pid),
                 g.strays.empty() ? "" : " and the processes that left it");
            signal_gen(g, opts_.stop_signal);
            if (!g.stop_sent_ms) g.stop_sent_ms = now;
        }
        drain_over(g, now);
        g.deadline_ms = now + int64_t(opts_.kill_timeout * 1000);
        break;
    case A_KILL:
        if (prev == GS_KILLING) logf("warning: gen %d: processes still present after SIGKILL", g.n);
        else if (e == EV_FORCE_STOP) logf("gen %d: stopping now: sending SIGKILL", g.n);
        else logf("gen %d: still running %g s after %s; sending SIGKILL", g.n, opts_.kill_timeout, signal_name(opts_.stop_signal));
        signal_gen(g, SIGKILL);
        g.killed = true;
        if (ReloadReport *r = g.drain_reload ? find_report(g.drain_reload) : nullptr) r->killed = true;
        g.deadline_ms = now + int64_t(opts_.kill_timeout * 1000);
        break;
    case A_GONE:
        logf("gen %d gone", g.n);
        g.deadline_ms = 0;
        sentinel_.forget(g.pid);
        for (const auto &s : g.strays) sentinel_.forget(s.pgid);
        release(g);
        registry_.drop_user(g.n);
        if (serving_ == &g) serving_ = nullptr;
        if (next_ == &g) next_ = nullptr;
        if (standby_ == &g) standby_ = nullptr;
        drain_over(g, now);
        break;
    }
}

// A superseded generation's drain is over (the stop signal went out, or it exited first): its reload's
// report gets the numbers, and the log a line if that report is already out.
void Supervisor::drain_over(Gen &g, int64_t now) {
    ReloadReport *r = g.drain_reload ? find_report(g.drain_reload) : nullptr;
    if (!r || r->drain_ms >= 0) return;
    r->drain_ms = now - g.paused_ms;
    r->stopped_by = g.stop_sent_ms ? signal_name(opts_.stop_signal) : "its own exit";
    if (r->outcome == "ok") logf("%s", drain_text(*r).c_str());
}

// Ready per --ready. listen: the shim is active and the generation claimed every socket it inherited, or it
// claimed or opened some and has started accepting (a new configuration that drops a port never claims
// that one; once the program accepts, its set-up is done); a generation that took over or opened nothing
// is never ready by this rule. SEC: that, then still alive SEC later. notify: it sent READY=1.
void Supervisor::check_ready(Gen &g) {
    if (g.st != GS_STARTING) return;
    if (opts_.ready == READY_NOTIFY) {
        if (g.notified_ready) fire(g, EV_READY);
        return;
    }
    if (!g.listen_ok_ms) {
        if (!g.hello) return;
        const size_t claimed = g.nclaimed; // counted as they come: a thousand sockets, a thousand messages
        if (claimed + size_t(g.registered) == 0) return;
        // Sockets it opened itself count once it accepts or waits on one: a socket it listened on and
        // closed again at once (a probe of a free port) must not make it ready before its real listener.
        // A generation that closed its end of the control socket (every descriptor, by raw syscalls) can
        // tell us nothing more: what it registered is what it has.
        if (claimed == 0 && !g.accepting && g.ctl >= 0) return;
        if (claimed < g.passed.size()) {
            if (!g.accepting) return;
            logf("gen %d accepts without taking over %s (dropped by its configuration?): released once the "
                 "reload completes", g.n, unclaimed(g).c_str());
        }
        g.listen_ok_ms = now_ms();
    }
    if (opts_.ready == READY_DELAY && now_ms() < g.listen_ok_ms + int64_t(opts_.ready_delay * 1000)) return;
    fire(g, EV_READY);
}

void Supervisor::start_check(Gen &g) {
    SpawnRequest req;
    req.sigmask = orig_mask_;
    req.sigpipe = orig_sigpipe_;
    req.env = {"HOTRESTART_GENERATION=" + std::to_string(g.n), "HOTRESTART_PID=" + std::to_string(g.pid)};
    SpawnResult r = spawn_command(opts_.ready_check, req);
    if (r.pid < 0 || r.error) {
        g.check_failure = std::string("failed its --ready-check: unable to ") + r.what + " /bin/sh: " + strerror(r.error);
        return;
    }
    g.check_pid = r.pid;
    g.check_deadline_ms = now_ms() + int64_t(opts_.ready_timeout * 1000);
    debugf("gen %d: --ready-check running (pid %d)", g.n, int(r.pid));
}

// On trial: a failed check rolls back at once; otherwise the trial ends with the window and the check.
void Supervisor::maybe_confirm(Gen &g) {
    if (g.st != GS_TRIAL || g.check_pid > 0) return;
    if (!g.check_failure.empty()) {
        // Rolling back to nothing would stop the only generation left: the one it replaced exited
        // meanwhile. Keep it, and say so (the first generation has nothing to keep: it stops).
        if (!standby_ && gen_counter_ > 1 && current_ && current_->generation == g.n) {
            logf("warning: gen %d %s, but gen %d, which it replaced, is gone: keeping gen %d", g.n,
                 g.check_failure.c_str(), current_->previous_generation, g.n);
            current_->reason = g.check_failure + ", but gen " + std::to_string(current_->previous_generation) +
                               " it replaced is gone: nothing to roll back to";
            g.check_failure.clear();
            fire(g, EV_CONFIRMED);
            return;
        }
        fire(g, EV_CHECK_FAILED);
        return;
    }
    if (now_ms() >= g.trial_end_ms) fire(g, EV_CONFIRMED);
}

void Supervisor::on_ctl(Gen &g, int &fd, bool hangup) {
    const bool current = &fd == &g.ctl;
    for (int handled = 0; handled < kMaxMessagesPerTurn; ++handled) {
        CtlRecord rec;
        CtlRead got = ctl_read(fd, &rec);
        if (got == CTL_AGAIN) return;
        if (got == CTL_EMPTY) {
            // The end (every process of the generation closed its end, perhaps by raw syscalls or by an
            // exec), or a zero-length record, which the shim never sends. After a hang-up the socket stays
            // readable for ever: close it, or poll() would wake us at once again and again.
            if (!hangup) continue;
            debugf("gen %d: %scontrol socket closed by the generation", g.n, current ? "" : "an earlier ");
            close(fd);
            fd = -1;
            if (current) check_ready(g);
            return;
        }
        // Who sent it is what the kernel says (SCM_CREDENTIALS), never Msg::pid.
        if (const char *bad = ctl_check(rec, g.pid)) {
            rec.close_fds(); // before the line that says so: whoever reads it may rely on it
            g.warn.warn(g.n, "rejected a message from pid %d: %s", int(rec.sender), bad);
            continue;
        }
        const Msg &m = rec.m;
        const int sender = int(rec.sender);
        switch (m.type) {
        case MSG_HELLO: // from the main process (ctl_check)
            debugf("gen %d: shim active in pid %d", g.n, sender);
            g.hello = true;
            check_ready(g);
            break;
        case MSG_CLAIMED:
            if (size_t(m.arg) < g.passed.size() && !g.claimed[size_t(m.arg)]) {
                g.claimed[size_t(m.arg)] = true;
                ++g.nclaimed;
                registry_.mark_used(g.passed[size_t(m.arg)], g.n);
                const Listener *l = registry_.find(g.passed[size_t(m.arg)]);
                debugf("gen %d took over %s", g.n, l ? l->name.c_str() : "?");
                check_ready(g);
            }
            break;
        case MSG_REGISTER: {
            AddResult r = registry_.add(rec.fds[0], g.n, rec.sender);
            rec.nfds = 0; // the registry's now (closed if refused)
            if (r.added) logf("gen %d listening on %s", g.n, r.added->name.c_str());
            if (r.refused) g.warn.warn(g.n, "refused a socket from pid %d: %s", sender, r.refused);
            else ++g.registered;
            check_ready(g);
            break;
        }
        case MSG_IDLE:
            g.idle_hint = true; // checked once per loop turn (each check may scan /proc)
            break;
        case MSG_ACCEPTING:
            g.accepting = true;
            check_ready(g);
            break;
        case MSG_CLOSED: on_closed(g, m); break;
        case MSG_LOCKED: on_locked(g, m); break;
        case MSG_LOCK_HANDOVER:
            on_lock_handover(g, rec.fds[0], m);
            rec.nfds = 0; // ours now
            break;
        case MSG_BINDFAIL: {
            SockKey k;
            char name[160] = "?";
            if (key_from_sockaddr(reinterpret_cast<const sockaddr *>(&m.addr), m.addrlen, SOCK_STREAM, 0, &k))
                key_format(k, name, sizeof name);
            logf("gen %d (pid %d): bind %s failed: %s", g.n, sender, escape_text(name).c_str(), strerror(m.err));
            break;
        }
        }
    }
}

// The rendezvous: the main process of a generation fetches its private descriptors (when its shim starts,
// and again after each exec). Only the main process of a generation, our child and not yet reaped (so its
// pid cannot be a recycled one), gets them; every other peer has its connection closed.
void Supervisor::on_rendezvous() {
    for (int handled = 0; handled < kMaxMessagesPerTurn; ++handled) {
        pid_t peer;
        int c = rendezvous_accept(rdv_, &peer);
        if (c < 0) return;
        Gen *owner = nullptr;
        for (auto &g : gens_)
            if (peer > 0 && g->pid == peer && !g->main_exited && g->wake >= 0 && g->shmfd >= 0) owner = g.get();
        if (!owner) {
            rdv_log_.refused(peer, "it is not the main process of a generation");
            close(c);
            continue;
        }
        // The inherited sockets are where the launcher put them only until the first image took them over
        // (and perhaps moved them): a later image (after an exec) learns their numbers from its predecessor.
        Config cfg = owner->cfg;
        if (owner->handed++)
            for (int i = 0; i < cfg.nfds; ++i) cfg.fds[i] = -1;
        // Each image gets a control socket of its own, and the launcher keeps no copy of the generation's
        // end once handed over: when every process of the generation has closed it, the launcher sees it.
        if (owner->ctl_peer < 0 && !new_ctl(*owner)) {
            close(c);
            continue;
        }
        const bool answered = rendezvous_answer(c, cfg, owner->ctl_peer, owner->wake, owner->shmfd);
        close(owner->ctl_peer);
        owner->ctl_peer = -1;
        if (answered)
            debugf("gen %d: private descriptors handed to pid %d%s", owner->n, int(peer),
                   owner->handed > 1 ? " (after an exec)" : "");
        else
            owner->warn.warn(owner->n, "unable to answer its main process at the rendezvous: %s", strerror(errno));
        close(c);
    }
}

// sd_notify datagrams: only from a process of this generation's process group, as the kernel says.
void Supervisor::on_notify(Gen &g) {
    for (int handled = 0; handled < kMaxMessagesPerTurn; ++handled) {
        NotifyMessage m;
        if (!notify_read(g.notify, &m)) return;
        if (m.sender <= 0 || (m.sender != g.pid && getpgid(m.sender) != g.pid)) {
            // Anyone can reach an abstract socket: rate-limited like the generation's other warnings.
            g.warn.warn(g.n, "ignored a notification from pid %d, which is not one of its processes", int(m.sender));
            continue;
        }
        if (!m.status.empty()) debugf("gen %d: STATUS=%s", g.n, escape_text(m.status).c_str());
        if (m.ready && !g.notified_ready) {
            g.notified_ready = true;
            debugf("gen %d: READY=1 from pid %d", g.n, int(m.sender));
            check_ready(g);
        }
    }
}

// --seccomp-accept: whether generation n may take connections (not superseded, draining or stopping).
bool Supervisor::may_take(int n) const {
    for (auto &g : gens_)
        if (g->n == n) return g->st == GS_STARTING || g->st == GS_TRIAL || g->st == GS_SERVING;
    return false;
}

// --seccomp: the trapped calls of a generation's processes, answered now (each waits in the kernel).
void Supervisor::on_seccomp(Gen &g) {
    for (int handled = 0; handled < kMaxMessagesPerTurn && g.notif >= 0; ++handled) {
        SeccompOutcome o = seccomp_serve(g.notif, registry_);
        if (!o.warning.empty()) g.warn.warn(g.n, "%s", o.warning.c_str());
        const Listener *l = o.id ? registry_.find(o.id) : nullptr;
        size_t at = g.passed.size();
        for (size_t i = 0; i < g.passed.size(); ++i)
            if (o.id && g.passed[i] == o.id) at = i;
        switch (o.kind) {
        case SeccompOutcome::EMPTY: return;
        case SeccompOutcome::NONE: break;
        case SeccompOutcome::GONE:
            debugf("gen %d: no process runs under its seccomp filter any more", g.n);
            accepts_.forget(g.n);
            close(g.notif);
            g.notif = -1;
            return;
        case SeccompOutcome::ADOPTED:
            registry_.mark_used(o.id, g.n);
            debugf("gen %d (pid %d): bind answered with %s", g.n, int(o.pid), l ? l->name.c_str() : "?");
            if (o.dgram && at < g.passed.size() && !g.claimed[at]) {
                g.claimed[at] = true;
                ++g.nclaimed;
                check_ready(g);
            }
            break;
        case SeccompOutcome::LISTENED:
            registry_.mark_used(o.id, g.n);
            if (at < g.passed.size() && !g.claimed[at]) {
                g.claimed[at] = true;
                ++g.nclaimed;
                debugf("gen %d took over %s", g.n, l ? l->name.c_str() : "?");
            }
            g.accepting = true;
            check_ready(g);
            break;
        case SeccompOutcome::OWN: {
            AddResult r = registry_.add(o.fd, g.n, o.pid); // the registry's now (closed if refused)
            if (r.added) logf("gen %d listening on %s", g.n, r.added->name.c_str());
            if (r.refused) g.warn.warn(g.n, "refused a socket from pid %d: %s", int(o.pid), r.refused);
            else ++g.registered;
            g.accepting = true;
            check_ready(g);
            break;
        }
        case SeccompOutcome::KEPT:
            logf("gen %d (pid %d): shutdown of %s answered without shutting it down: other generations listen on it",
                 g.n, int(o.pid), l ? l->name.c_str() : "?");
            break;
        case SeccompOutcome::DISCONNECT_KEPT:
            logf("gen %d (pid %d): connect(AF_UNSPEC) of %s answered without disconnecting it: other generations "
                 "listen on it", g.n, int(o.pid), l ? l->name.c_str() : "?");
            break;
        case SeccompOutcome::ACCEPT:
            if (l) accepts_.on_accept(g.n, g.notif, o.req, *l, may_take(g.n));
            break;
        }
    }
}

void Supervisor::on_child_exits() {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        if (pid == sentinel_.pid()) {
            logf("warning: the sentinel (pid %d) %s: if the launcher dies now, its generations are not stopped",
                 int(pid), describe_status(status).c_str());
            sentinel_.lost();
            continue;
        }
        for (auto &g : gens_) {
            if (g->check_pid == pid) {
                g->check_pid = -1;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                    g->check_failure = "failed its --ready-check: " + describe_status(status);
                else
                    debugf("gen %d: --ready-check passed", g->n);
                maybe_confirm(*g);
                break;
            }
            if (g->pid != pid || g->main_exited) continue;
            g->main_exited = true;
            g->status = status;
            forget_older(*g);
            if (g->n == status_gen_ && !exit_status_fixed_) exit_status_ = exit_code_of(status);
            debugf("gen %d: main process %d %s", g->n, int(pid), describe_status(status).c_str());
            // A main process that exits 0 on its own while what it started lives on (in its group, or
            // out of it after setsid or a double fork) is a program that daemonized. Within a snapshot a
            // child in the middle of its setsid() is seen in one place or the other. /proc is listed in
            // batches before each process is read, so a process forked just before its parent exited can
            // be missing from the listing that showed that parent; a second snapshot, listed after the
            // first was read, has it.
            const std::vector<ProcEntry> snap = proc_snapshot();
            adopt_strays(*g, snap);
            const std::vector<ProcEntry> again = proc_snapshot();
            adopt_strays(*g, again);
            if ((g->st == GS_STARTING || g->st == GS_TRIAL || g->st == GS_SERVING) && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0 &&
                (!g->strays.empty() || group_has_descendants(snap, g->pid) || group_has_descendants(again, g->pid))) {
                g->daemonized = true;
                logf("gen %d: the program daemonized (its main process exited 0, the processes it started live "
                     "on): run it in the foreground (nginx: -g 'daemon off;', redis-server: --daemonize no, "
                     "memcached: without -d, apache2: -DFOREGROUND); stopping what it left", g->n);
            }
            fire(*g, EV_EXITED);
        }
    }
    check_empty();
}

void Supervisor::check_empty() {
    for (auto &g : gens_) {
        if (!g->main_exited || g->st == GS_GONE) continue;
        // Not empty while its group has a member: checked first, stopping at the first one found (a
        // generation of thousands of processes exits in many batches of SIGCHLD). Strays that left the
        // group are looked for once the group is empty: the generation is not gone before they are.
        if (!no_such_group(g->pid) && has_descendant_group_member(g->pid)) continue;
        adopt_strays(*g, proc_snapshot());
        if (strays_gone(*g)) fire(*g, EV_EMPTY);
    }
}

// Our children that are no generation's main process, no --ready-check and in no generation's group:
// processes a generation started that left its group and were reparented to us (we are the subreaper).
// They belong to g, whose main process has exited, and are stopped with it.
void Supervisor::adopt_strays(Gen &g, const std::vector<ProcEntry> &snap) {
    // A stray is a live descendant of ours whose line up to us meets no generation's main process or group
    // member, no --ready-check and not the sentinel: orphans reparented to us and what they started. The
    // snapshot is read process by process, so a daemon's intermediate may already be a zombie (our child)
    // while its child was still listed under it: the line goes through zombies too.
    const pid_t self = getpid();
    std::unordered_map<pid_t, const ProcEntry *> by_pid;
    for (const auto &e : snap) by_pid[e.pid] = &e;
    auto managed = [&](const ProcEntry &e) {
        if (e.pid == sentinel_.pid()) return true;
        for (auto &o : gens_) {
            if (o->pid == e.pid || o->check_pid == e.pid || o->pid == e.pgrp) return true;
            for (const auto &s : o->strays)
                if (s.pid == e.pid) return true;
        }
        return false;
    };
    // As PID 1 of a pid namespace (a container's entrypoint) every orphan of the namespace is reparented to
    // us, not only what the generations started: a process that entered from outside (docker exec,
    // nsenter) is in a process group of the parent namespace, which reads as 0 here, and so is what it
    // starts; no generation's process can be in such a group. Those are only reaped (on_child_exits),
    // never taken for a generation's.
    for (const ProcEntry &e : snap) {
        if (e.state == 'Z' || e.pid == self || managed(e)) continue;
        bool ours = false;
        const ProcEntry *up = &e;
        for (int depth = 0; depth < 64; ++depth) {
            if (up->pgrp == 0) break; // from outside our pid namespace (see above)
            if (up->ppid == self) {
                ours = true;
                break;
            }
            auto it = by_pid.find(up->ppid);
            if (it == by_pid.end() || managed(*it->second)) break;
            up = it->second;
        }
        if (!ours) continue;
        const pid_t pid = e.pid, pgrp = e.pgrp;
        int fd = pidfd_open(pid);
        if (fd < 0) continue;
        if (g.strays.size() >= 64) { // bounded; the rest are found once these are gone
            close(fd);
            break;
        }
        g.strays.push_back({pid, fd, pgrp});
        sentinel_.watch(pgrp);
        logf("gen %d: pid %d, which it started, is out of its process group (in %d): stopped with it", g.n,
             int(pid), int(pgrp));
        // Found while it is being stopped: it gets what the others got.
        if (g.st == GS_STOPPING || g.st == GS_KILLING) {
            pidfd_signal(fd, g.st == GS_KILLING ? SIGKILL : opts_.stop_signal);
            signal_descendant_group(pgrp, g.st == GS_KILLING ? SIGKILL : opts_.stop_signal);
        }
    }
}

// Nothing of g runs any more: its main process is reaped, no descendant of ours is in its group, and
// every stray (with the group it leads) is gone.
bool Supervisor::gen_empty(const Gen &g) const {
    if (!g.main_exited) return false;
    // Once the main process is reaped its number may be reused: a group that seems to exist is ours only
    // if its members descend from us.
    if (!no_such_group(g.pid) && has_descendant_group_member(g.pid)) return false;
    return strays_gone(g);
}

// Every stray of g, and the group it leads, is gone.
bool Supervisor::strays_gone(const Gen &g) const {
    for (const auto &s : g.strays) {
        if (!pidfd_exited(s.pidfd)) return false;
        if (!no_such_group(s.pgid) && has_descendant_group_member(s.pgid)) return false;
    }
    return true;
}

// Signals everything of g: its process group (by number while its main process is not reaped: the
// number cannot be reused then; after that, member by member through pidfds) and its strays.
void Supervisor::signal_gen(Gen &g, int sig) {
    if (!g.main_exited) kill(-g.pid, sig);
    else signal_descendant_group(g.pid, sig);
    for (auto &s : g.strays) {
        pidfd_signal(s.pidfd, sig);
        signal_descendant_group(s.pgid, sig); // what it started in its new group
    }
}

void Supervisor::on_deadlines(int64_t now) {
    for (size_t i = 0; i < gens_.size(); ++i) {
        Gen &g = *gens_[i];
        // Slots of processes that died without the shim freeing them (killed, or exec'd into a program
        // without it): free them now and then, so a fork-per-request server never runs out.
        if (g.shm && now >= g.next_reclaim_ms) {
            g.next_reclaim_ms = now + kReclaimMs;
            shared_reclaim_slots(g.shm, process_alive);
        }
        if (g.st == GS_DRAINING && now >= g.next_check_ms) {
            g.next_check_ms = now + kTickMs;
            if (idle(g)) fire(g, EV_IDLE);
        }
        if (g.st == GS_STARTING && g.listen_ok_ms) check_ready(g); // --ready SEC
        if (g.st == GS_TRIAL) {
            if (g.check_pid > 0 && now >= g.check_deadline_ms) {
                kill(-g.check_pid, SIGKILL);
                g.check_pid = -1;
                char secs[32];
                snprintf(secs, sizeof secs, "%g", opts_.ready_timeout);
                g.check_failure = "failed its --ready-check: still running after " + std::string(secs) +
                                  " s (--ready-timeout)";
            }
            maybe_confirm(g);
        }
        if (g.deadline_ms == 0 || now < g.deadline_ms) continue;
        g.deadline_ms = 0;
        switch (g.st) {
        case GS_STARTING:
            if (!serving_ && gen_counter_ == 1 && !g.main_exited) {
                // Nothing to roll back to: keep the first generation, without hot restart if it never said hello.
                if (std::string where = foreign_listeners(g); !where.empty())
                    logf("warning: gen 1 %s; hot restart will not work", where.c_str());
                else if (opts_.ready == READY_NOTIFY) logf("warning: gen 1 has not sent READY=1 after %g s", opts_.ready_timeout);
                else if (!g.hello) logf("warning: gen 1: the shim never reported in (static or setuid program?); "
                                        "hot restart will not work");
                else if (g.registered > 0)
                    logf("warning: gen 1 listens but has not accepted or waited on its sockets after %g s", opts_.ready_timeout);
                else logf("warning: gen 1 has not listened on any socket after %g s", opts_.ready_timeout);
                g.hello = true;
                std::fill(g.claimed.begin(), g.claimed.end(), true);
                fire(g, EV_READY);
            } else {
                fire(g, EV_READY_TIMEOUT);
            }
            break;
        case GS_DRAINING:
            logf("gen %d: drain timeout (%g s) with %d connection(s) still open", g.n, opts_.drain_timeout,
                 g.shm ? int(shared_total_conns(g.shm)) : 0);
            fire(g, EV_DRAIN_TIMEOUT);
            break;
        case GS_STOPPING:
        case GS_KILLING: fire(g, EV_KILL_TIMEOUT); break;
        default: break;
        }
    }
    check_empty();
}

// --restart: nothing serves any more because gen g failed (or, with always, exited). Keeps every socket
// and starts a new generation, at once or after the back-off. False when the policy says no, the
// launcher is stopping, or the program never served (a failing first start is reported, not retried).
bool Supervisor::schedule_restart(const Gen &g, bool failure) {
    if (shutdown_requests_ || !ever_served_ || opts_.restart == RESTART_NO) return false;
    if (opts_.restart == RESTART_ON_FAILURE && !failure) return false;
    const int64_t now = now_ms();
    if (g.promoted_ms && now - g.promoted_ms >= kStableMs) crash_streak_ = 0;
    const int64_t delay =
        crash_streak_ == 0 ? 0 : std::min(kBackoffMaxMs, kBackoffFirstMs << std::min(crash_streak_ - 1, 8));
    ++crash_streak_;
    restart_pending_ = true;
    restart_at_ms_ = now + delay;
    sd_.status("gen " + std::to_string(g.n) + " " + describe_status(g.status) + "; restarting (--restart)");
    if (delay) logf("restarting in %lld ms (--restart %s, failure %d in a row)", (long long)delay,
                    opts_.restart == RESTART_ALWAYS ? "always" : "on-failure", crash_streak_);
    else logf("restarting at once (--restart %s)", opts_.restart == RESTART_ALWAYS ? "always" : "on-failure");
    return true;
}

void Supervisor::start_restart() {
    restart_pending_ = false;
    ++restarts_;
    Gen *g = start_generation(0);
    if (!g) {
        begin_shutdown();
        return;
    }
    next_ = g;
}

// A reload is in progress from its start until its report: while a generation starts or is on trial.
// Older generations draining do not hold the next reload up.
bool Supervisor::reload_in_progress() const {
    return current_ != nullptr || next_ != nullptr || serving_ == nullptr || serving_->st != GS_SERVING;
}

ReloadReport *Supervisor::find_report(int number) {
    if (current_ && current_->number == number) return current_.get();
    for (auto &r : history_)
        if (r.number == number) return &r;
    return nullptr;
}

// The one entry point for SIGHUP and `hotrestart reload`. client >= 0: a control connection waiting for
// the outcome of a reload that starts after this request.
void Supervisor::request_reload(const char *who, int client, bool json) {
    if (shutdown_requests_) {
        logf("%s: reload ignored: stopping", who);
        if (client >= 0) {
            ReloadReport r;
            r.outcome = "aborted";
            r.reason = "the launcher is stopping";
            control_.reply(client, "1\n" + (json ? reload_json(r) : reload_text(r)) + "\n", true);
        }
        return;
    }
    if (client >= 0) pending_waiters_.push_back({client, json});
    // A reload during a restart's back-off replaces the restart: a fix-forward for a crash loop.
    const bool restart_waiting = restart_pending_ && !next_ && !serving_;
    if (reload_in_progress() && !restart_waiting) {
        if (!reload_pending_) logf("%s: reload queued until the current one completes", who);
        reload_pending_ = true;
        return;
    }
    logf("%s: reloading", who);
    start_reload();
}

void Supervisor::start_reload() {
    reload_pending_ = false;
    restart_pending_ = false;
    current_waiters_ = std::move(pending_waiters_);
    pending_waiters_.clear();
    current_.reset(new ReloadReport());
    current_->number = ++reload_counter_;
    current_->previous_generation = serving_ ? serving_->n : last_serving_gen_;
    current_->started_at_ms = realtime_ms();
    sd_.reloading("reload " + std::to_string(current_->number) + ": starting gen " + std::to_string(gen_counter_ + 1));
    Gen *g = start_generation(current_->number);
    if (!g) {
        current_->generation = gen_counter_;
        finish_reload("rolled_back", start_refused_.empty() ? "could not be started (see the error above)" : start_refused_);
        return;
    }
    current_->generation = g->n;
    current_->pid = g->pid;
    next_ = g;
}

// The reload's outcome is known: one summary line in the log, the same text (or JSON) to every requester.
void Supervisor::finish_reload(const char *outcome, const std::string &reason) {
    if (!current_) return;
    ReloadReport &r = *current_;
    r.outcome = outcome;
    r.reason = reason;
    ++reloads_total_;
    if (r.outcome != "ok") ++reloads_failed_;
    const std::string text = reload_text(r);
    logf("%s", text.c_str());
    sd_.reloaded(text); // before the replies: an ExecReload= client exits on its reply
    const std::string code = r.outcome == "ok" ? "0\n" : "1\n";
    for (const auto &w : current_waiters_) control_.reply(w.first, code + (w.second ? reload_json(r) : text) + "\n", true);
    current_waiters_.clear();
    history_.push_back(r);
    if (history_.size() > 16) history_.pop_front();
    current_.reset();
}

void Supervisor::begin_shutdown() {
    if (shutdown_requests_ == 0) shutdown_requests_ = 1;
    reload_pending_ = false;
    restart_pending_ = false;
    if (serving_) status_gen_ = serving_->n;
    finish_reload("aborted", "the launcher is stopping");
    sd_.stopping("stopping");
    for (const auto &w : pending_waiters_) {
        ReloadReport r;
        r.outcome = "aborted";
        r.reason = "the launcher is stopping";
        control_.reply(w.first, "1\n" + (w.second ? reload_json(r) : reload_text(r)) + "\n", true);
    }
    pending_waiters_.clear();
    standby_ = nullptr;
    for (size_t i = 0; i < gens_.size(); ++i) {
        Gen &g = *gens_[i];
        if (g.st == GS_STARTING || g.st == GS_TRIAL || g.st == GS_SERVING || g.st == GS_STANDBY) fire(g, EV_SUPERSEDE);
    }
    // No generation will take over: new connections are refused at once, as when a server closes its
    // listener, so that clients and load balancers go elsewhere instead of waiting out the drain.
    // Connections already accepted finish; those queued but not accepted are reset (the server no longer
    // accepts), exactly what closing the listener does without hotrestart.
    for (const auto &name : registry_.refuse_new()) logf("stopping: new connections to %s are refused", name.c_str());
}

// SIGTERM, SIGINT, SIGQUIT and `hotrestart stop`: the first is graceful, the next stops now.
void Supervisor::request_stop(const char *who) {
    ++shutdown_requests_;
    if (shutdown_requests_ == 1) {
        logf("%s: stopping gracefully", who);
        begin_shutdown();
    } else {
        logf("%s again: stopping now", who);
        for (size_t i = 0; i < gens_.size(); ++i) fire(*gens_[i], EV_FORCE_STOP);
    }
}

void Supervisor::on_signal(int sig) {
    switch (sig) {
    case SIGCHLD: on_child_exits(); break;
    case SIGHUP: request_reload("SIGHUP", -1, false); break;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT: request_stop(signal_name(sig)); break; // QUIT: container images' STOPSIGNAL for nginx
    case SIGUSR1:
    case SIGUSR2:
        if (serving_) pidfd_signal(serving_->pidfd, sig);
        break;
    }
}

StatusReport Supervisor::status() const {
    StatusReport s;
    const int64_t now = now_ms();
    s.launcher_pid = getpid();
    s.program = opts_.argv;
    s.uptime_s = double(now - started_ms_) / 1000;
    s.state = shutdown_requests_ ? "stopping" : restart_pending_ ? "restarting" : !serving_ ? "starting"
             : reload_in_progress() ? "reloading" : "running";
    auto describe = [&](const Gen &g) {
        GenStatus st;
        st.generation = g.n;
        st.pid = g.pid;
        st.state = gen_state_name(g.st);
        int live = g.shm ? int(shared_total_conns(g.shm)) : 0;
        st.connections = live < 0 ? 0 : live;
        st.since_ms = g.serving_wall_ms ? g.serving_wall_ms : g.started_wall_ms;
        if (g.st == GS_DRAINING && g.deadline_ms) st.stop_in_s = double(std::max<int64_t>(0, g.deadline_ms - now)) / 1000;
        return st;
    };
    for (const auto &g : gens_) {
        if (g.get() == serving_) {
            s.has_serving = true;
            s.serving = describe(*g);
        } else {
            s.generations.push_back(describe(*g));
        }
    }
    for (const auto &l : registry_.all()) s.listeners.push_back(l.name);
    s.reloads_total = reloads_total_;
    s.reloads_failed = reloads_failed_;
    s.restarts = restarts_;
    if (!history_.empty()) {
        s.has_last = true;
        s.last = history_.back();
    }
    return s;
}

void Supervisor::on_control(const ControlRequest &r) {
    if (r.command == "status") {
        StatusReport s = status();
        control_.reply(r.client, "0\n" + (r.json ? status_json(s) + "\n" : status_text(s)), true);
    } else if (r.command == "reload") {
        request_reload("control", r.client, r.json);
    } else if (r.command == "stop") {
        // Idempotent: a deploy script that asks again (after its --timeout) waits for the same stop;
        // only signals escalate to stopping now.
        stop_waiters_.push_back(r.client);
        if (!shutdown_requests_) request_stop("control");
    } else {
        control_.reply(r.client, "125\nhotrestart: unknown control command '" + escape_text(r.command) + "'\n", true);
    }
}

// After every batch of events: forget generations that are gone, release sockets nobody uses once no
// reload is in flight, start a queued reload, and decide whether the launcher is done.
void Supervisor::after_step() {
    hand_over_locks();
    for (size_t i = 0; i < gens_.size();) {
        if (gens_[i]->st == GS_GONE) {
            accepts_.forget(gens_[i]->n);
            gens_.erase(gens_.begin() + long(i));
            prune_due_ = true;
        } else {
            ++i;
        }
    }
    if (shutdown_requests_) {
        if (gens_.empty()) done_ = true;
        return;
    }
    if (!serving_ && !next_) {
        if (restart_pending_) {
            if (reload_pending_) {
                logf("starting the queued reload instead of the restart");
                start_reload();
            } else if (now_ms() >= restart_at_ms_) {
                start_restart();
            }
            return;
        }
        // The serving generation is lost and nothing replaces it.
        begin_shutdown();
        if (gens_.empty()) done_ = true;
        return;
    }
    if (reload_in_progress()) return;
    if (prune_due_) {
        prune_due_ = false;
        for (const auto &l : registry_.prune()) {
            logf("released %s: no generation uses it", l.name.c_str());
            // The serving generation still holds the copy it inherited: tell it to close it.
            for (size_t i = 0; i < serving_->passed.size(); ++i)
                if (serving_->passed[i] == l.id && serving_->shm)
                    shared_release(serving_->shm, int(i));
        }
    }
    if (reload_pending_) {
        logf("starting the queued reload");
        start_reload();
    }
}

// Before the first generation: sockets handed to the launcher by socket activation, those --listen names,
// and the --user identity. Any failure is fatal (exit 125), with one line naming it.
bool Supervisor::take_given_sockets() {
    std::vector<int> fds;
    std::vector<std::string> names;
    std::string why;
    if (!activation_fds(&fds, &names, &why)) {
        logf("fatal: socket activation: %s", why.c_str());
        return false;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
        AddResult r = registry_.add_given(fds[i], names[i], true);
        if (!r.added) {
            logf("fatal: socket activation: descriptor %d (%s) %s", fds[i], escape_text(names[i]).c_str(),
                 r.dup_of ? "is the same socket as an earlier one" : "is not a listening socket (Accept=no sockets only)");
            return false;
        }
        logf("socket activation: %s (fd %d, %s)", r.added->name.c_str(), fds[i], escape_text(names[i]).c_str());
    }
    for (const auto &spec : opts_.listen) {
        int fd = listen_open(spec, &why);
        AddResult r = fd < 0 ? AddResult() : registry_.add_given(fd, "unknown", false);
        if (!r.added) {
            logf("fatal: --listen %s: %s", escape_text(spec).c_str(),
                 fd < 0 ? why.c_str() : r.dup_of ? "given twice" : r.refused ? r.refused : "refused");
            return false;
        }
        logf("listening on %s (--listen)", r.added->name.c_str());
    }
    if (!opts_.user.empty() && !runas_resolve(opts_.user, &runas_, &why)) {
        logf("fatal: --user %s: %s", escape_text(opts_.user).c_str(), why.c_str());
        return false;
    }
    return true;
}

int Supervisor::run() {
    if (!setup()) return kExitLauncherError;
    started_ms_ = now_ms();
    if (!opts_.control.empty()) {
        std::string err;
        if (!control_.open(opts_.control, &err)) {
            logf("fatal: %s", err.c_str());
            return kExitLauncherError;
        }
    }
    {
        std::string err;
        rdv_ = rendezvous_open(&err);
        if (rdv_ < 0) {
            logf("fatal: %s", err.c_str());
            control_.shutdown();
            return kExitLauncherError;
        }
    }
    // Before any generation: whatever the launcher's end, nothing it started may go on without it.
    if (!sentinel_.start(opts_.stop_signal, opts_.kill_timeout))
        logf("warning: unable to start the sentinel (%s): if the launcher is killed, its generations are not "
             "stopped", strerror(errno));
    if (std::string err; !sd_.open_from_env(&err)) logf("warning: %s", err.c_str());
    if (!take_given_sockets()) {
        control_.shutdown();
        return kExitLauncherError;
    }
    if (opts_.seccomp) {
        if (std::string missing = seccomp_probe(); !missing.empty()) {
            logf("fatal: --seccomp: %s; run it on Linux 5.14 or later, or without --seccomp", missing.c_str());
            control_.shutdown();
            return kExitLauncherError;
        }
        debugf("--seccomp: this kernel has seccomp user notification with SECCOMP_ADDFD_FLAG_SETFD");
        if (opts_.seccomp_accept && !seccomp_accept_missing().empty()) {
            logf("fatal: --seccomp-accept: %s; run it on Linux 6.6 or later, or without --seccomp-accept",
                 seccomp_accept_missing().c_str());
            control_.shutdown();
            return kExitLauncherError;
        }
    }
    write_pid_file();
    Gen *first = start_generation(0);
    if (!first || first->exec_error) {
        int e = first ? first->exec_error : 0;
        if (first) waitpid(first->pid, nullptr, 0);
        gens_.clear();
        remove_pid_file();
        control_.shutdown();
        return !first ? kExitLauncherError : e == ENOENT ? kExitNotFound : kExitNotExecutable;
    }
    next_ = first;
    sd_.starting("gen 1 (pid " + std::to_string(first->pid) + ") starting");
    while (!done_) {
        // One poll over every source; each has its handler, called in this order: generations' messages
        // and notifications first (a last IDLE or CLAIMED may precede an exit), then control requests,
        // then signals.
        std::vector<pollfd> pfds;
        std::vector<Gen *> notify_owner, seccomp_owner;
        std::vector<std::pair<Gen *, size_t>> ctl_owner; // which control socket: SIZE_MAX ctl, else ctl_old[i]
        for (auto &g : gens_) {
            auto &old = g->ctl_old;
            old.erase(std::remove(old.begin(), old.end(), -1), old.end());
            if (g->ctl >= 0) {
                pfds.push_back({g->ctl, POLLIN, 0});
                ctl_owner.push_back({g.get(), SIZE_MAX});
            }
            for (size_t k = 0; k < old.size(); ++k) {
                pfds.push_back({old[k], POLLIN, 0});
                ctl_owner.push_back({g.get(), k});
            }
        }
        for (auto &g : gens_) {
            if (g->notify < 0) continue;
            pfds.push_back({g->notify, POLLIN, 0});
            notify_owner.push_back(g.get());
        }
        for (auto &g : gens_) {
            if (g->notif < 0) continue;
            pfds.push_back({g->notif, POLLIN, 0});
            seccomp_owner.push_back(g.get());
        }
        const SeccompAccepts::MayTake taker = [this](int n) { return may_take(n); };
        accepts_.add_pollfds(&pfds, registry_, taker); // readable: pump() below hands the connection over
        const size_t rdv_at = pfds.size();
        pfds.push_back({rdv_, POLLIN, 0});
        int64_t now = now_ms();
        const size_t control_at = pfds.size();
        control_.add_pollfds(&pfds, now);
        const size_t signal_at = pfds.size();
        pfds.push_back({sigfd_, POLLIN, 0});

        int64_t wake_at = control_.next_deadline();
        auto wake_by = [&](int64_t t) {
            if (t > 0 && (wake_at < 0 || t < wake_at)) wake_at = t;
        };
        if (restart_pending_) wake_by(restart_at_ms_);
        wake_by(sd_.retry_at());
        for (auto &g : gens_) {
            wake_by(g->deadline_ms);
            if (g->st == GS_STARTING && g->listen_ok_ms && opts_.ready == READY_DELAY)
                wake_by(g->listen_ok_ms + int64_t(opts_.ready_delay * 1000));
            if (g->st == GS_TRIAL) wake_by(g->check_pid > 0 ? g->check_deadline_ms : g->trial_end_ms);
            if (g->st == GS_DRAINING || g->st == GS_STOPPING || g->st == GS_KILLING || g->main_exited)
                wake_by(now + kTickMs);
        }
        int timeout = wake_at < 0 ? -1 : int(wake_at > now ? wake_at - now : 0);
        int n = poll(pfds.data(), pfds.size(), timeout);
        if (n < 0 && errno != EINTR) {
            logf("fatal: unable to poll: %s", strerror(errno));
            break;
        }
        if (n < 0) {
            for (auto &p : pfds) p.revents = 0;
        }
        size_t i = 0;
        for (auto &[g, k] : ctl_owner) {
            short rev = pfds[i++].revents;
            int &fd = k == SIZE_MAX ? g->ctl : g->ctl_old[k];
            if (rev && fd >= 0) on_ctl(*g, fd, rev & (POLLHUP | POLLERR));
        }
        for (Gen *g : notify_owner)
            if (pfds[i++].revents && g->notify >= 0) on_notify(*g);
        for (Gen *g : seccomp_owner)
            if (pfds[i++].revents && g->notif >= 0) on_seccomp(*g);
        accepts_.pump(registry_, taker);
        if (pfds[rdv_at].revents) on_rendezvous();
        for (auto &g : gens_) {
            if (!g->idle_hint) continue;
            g->idle_hint = false;
            if (g->st == GS_DRAINING && idle(*g)) fire(*g, EV_IDLE);
        }
        if (control_.active())
            for (const auto &r : control_.service(pfds, control_at, now_ms())) on_control(r);
        if (pfds[signal_at].revents) {
            signalfd_siginfo si;
            while (read(sigfd_, &si, sizeof si) == sizeof si) on_signal(int(si.ssi_signo));
        }
        on_deadlines(now_ms());
        after_step();
        sd_.flush();
    }
    remove_pid_file();
    logf("exiting with status %d", exit_status_);
    sentinel_.finish();
    for (int c : stop_waiters_) control_.reply(c, std::to_string(exit_status_) + "\n", false);
    control_.shutdown();
    return exit_status_;
}

} // namespace hr
