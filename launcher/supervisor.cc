#include "supervisor.h"

#include "kernelscan.h"
#include "log.h"
#include "spawn.h"
#include "state.h"

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

namespace hr {

namespace {

// How often draining and stopping generations are re-checked for what sends no event: a process that
// died without closing its connections (its slot), a process of the group that was not our child.
constexpr int kTickMs = 100;
// How long the kernel must keep saying "no connection" before a shim count that it contradicts is taken
// as stale (closes the shim could not see).
constexpr int64_t kStaleAfterMs = 2000;
// At most this many control messages are handled per loop turn: a process that floods its control
// socket cannot keep the launcher from its signals and deadlines.
constexpr int kMaxMessagesPerTurn = 64;
constexpr int64_t kReclaimMs = 5000;

bool process_alive(int32_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

bool group_empty(pid_t pgid) { return kill(-pgid, 0) < 0 && errno == ESRCH; }

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
    else if (WIFSIGNALED(status)) snprintf(buf, sizeof buf, "was killed by %s", strsignal(WTERMSIG(status)));
    else snprintf(buf, sizeof buf, "ended with wait status %#x", status);
    return buf;
}

Supervisor::Supervisor(const Options &opts, const std::string &shim) : opts_(opts), shim_(shim) {
    sigemptyset(&orig_mask_);
}

Supervisor::~Supervisor() {
    for (auto &g : gens_) release(*g);
    if (sigfd_ >= 0) close(sigfd_);
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
    for (int s : {SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&mask, s);
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
    std::string tmp = opts_.pid_file + ".tmp." + std::to_string(getpid());
    FILE *f = fopen(tmp.c_str(), "we");
    bool ok = f && fprintf(f, "%d\n", int(getpid())) > 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok || rename(tmp.c_str(), opts_.pid_file.c_str()) < 0) {
        logf("warning: unable to write pid file %s: %s", opts_.pid_file.c_str(), strerror(errno));
        unlink(tmp.c_str());
    }
}

void Supervisor::remove_pid_file() {
    if (opts_.pid_file.empty()) return;
    FILE *f = fopen(opts_.pid_file.c_str(), "re");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1) pid = 0;
        fclose(f);
    }
    if (pid == int(getpid())) unlink(opts_.pid_file.c_str());
}

// Makes the private descriptors of a new generation and fork/execs it with the registry's sockets.
Gen *Supervisor::start_generation() {
    auto g = std::make_unique<Gen>();
    g->n = ++gen_counter_;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        logf("error: unable to create the control socket for gen %d: %s", g->n, strerror(errno));
        return nullptr;
    }
    g->ctl = sv[0];
    fcntl(g->ctl, F_SETFL, O_NONBLOCK);
    g->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->shmfd = memfd_create("hotrestart-gen", MFD_CLOEXEC);
    void *mem = MAP_FAILED;
    if (g->wake >= 0 && g->shmfd >= 0 && ftruncate(g->shmfd, kSharedSize) == 0)
        mem = mmap(nullptr, kSharedSize, PROT_READ | PROT_WRITE, MAP_SHARED, g->shmfd, 0);
    if (mem == MAP_FAILED) {
        logf("error: unable to create the shared state for gen %d: %s", g->n, strerror(errno));
        close(sv[1]);
        release(*g);
        return nullptr;
    }
    g->shm = new (mem) Shared();
    g->shm->magic = kMagic;
    g->shm->version = kProtocolVersion;

    SpawnRequest req;
    req.argv = opts_.argv;
    req.shim = shim_;
    req.sigmask = orig_mask_;
    req.sigpipe = orig_sigpipe_;
    req.cfg.ctl = sv[1];
    req.cfg.wake = g->wake;
    req.cfg.shm = g->shmfd;
    req.cfg.gen = g->n;
    req.cfg.launcher_pid = getpid();
    req.cfg.verbose = opts_.verbose > 1 ? opts_.verbose - 1 : 0;
    req.pass_fds = {sv[1], g->wake, g->shmfd};
    for (const auto &name : registry_.drop_unusable()) logf("warning: dropped %s: no longer a listening socket", name.c_str());
    for (const auto &l : registry_.all()) {
        if (req.cfg.nfds == kMaxInherited) {
            logf("warning: gen %d inherits only the first %d listening sockets", g->n, kMaxInherited);
            break;
        }
        req.cfg.fds[req.cfg.nfds++] = l.fd;
        req.pass_fds.push_back(l.fd);
        g->passed.push_back(l.id);
    }
    g->claimed.assign(g->passed.size(), false);
    g->started_ms = now_ms();
    SpawnResult r = spawn_generation(req);
    close(sv[1]);
    if (r.pid < 0) {
        logf("error: unable to %s gen %d: %s", r.what, g->n, strerror(r.error));
        release(*g);
        return nullptr;
    }
    g->pid = r.pid;
    g->exec_error = r.error;
    g->deadline_ms = g->started_ms + int64_t(opts_.ready_timeout * 1000);
    if (r.error == 0) logf("gen %d started (pid %d)", g->n, int(g->pid));
    else logf("error: unable to execute '%s': %s", opts_.argv[0].c_str(), strerror(r.error));
    gens_.push_back(std::move(g));
    return gens_.back().get();
}

void Supervisor::release(Gen &g) {
    if (g.ctl >= 0) close(g.ctl);
    if (g.wake >= 0) close(g.wake);
    if (g.shm) munmap(g.shm, kSharedSize);
    if (g.shmfd >= 0) close(g.shmfd);
    g.ctl = g.wake = g.shmfd = -1;
    g.shm = nullptr;
}

// Idle: no connection of this generation is open any more. The shim's count is the fast path (its last
// closer sends MSG_IDLE); the kernel has the last word, because the shim cannot see everything: a process
// that died holding connections (its slot is then ignored), a close by raw syscall, a connection passed to a
// process the shim does not run in (an exec'd worker, SCM_RIGHTS).
bool Supervisor::idle(Gen &g) {
    if (!g.shm) return true;
    bool shim_zero = g.shm->conns.load(std::memory_order_seq_cst) <= 0 ||
                     (!g.shm->slotless.load() && shared_live_conns(g.shm, process_alive) == 0);
    int kernel = kernel_live_conns(g.pid, registry_);
    if (shim_zero) return kernel <= 0; // -1: the kernel cannot tell us (processes of another user)
    // The shim counts more than the kernel holds: closes it did not see. But a count can also be a
    // connection between its reservation and accept() returning (in the queue, not yet held), or one in
    // flight over SCM_RIGHTS: trust the kernel only when it has said zero on every check for a while.
    if (kernel != 0) {
        g.kernel_zero_since_ms = 0;
        return false;
    }
    const int64_t now = now_ms();
    if (g.kernel_zero_since_ms == 0) g.kernel_zero_since_ms = now;
    return now - g.kernel_zero_since_ms >= kStaleAfterMs;
}

// Stop accepting: the flag first (the shim re-checks it around every accept), then the wake-up.
void Supervisor::drain(Gen &g) {
    if (g.shm) g.shm->draining.store(1, std::memory_order_seq_cst);
    if (g.wake >= 0) {
        uint64_t one = 1;
        ssize_t w = write(g.wake, &one, sizeof one);
        (void)w;
    }
    g.drain_started_ms = now_ms();
    g.deadline_ms = g.drain_started_ms + int64_t(opts_.drain_timeout * 1000);
    int live = g.shm ? g.shm->conns.load() : 0;
    logf("gen %d draining (%d connection%s open)", g.n, live < 0 ? 0 : live, live == 1 ? "" : "s");
    if (idle(g)) fire(g, EV_IDLE);
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

void Supervisor::fire(Gen &g, GenEvent e) {
    Transition t = gen_transition(g.st, e);
    if (t.action == A_INVALID) {
        logf("warning: gen %d: ignoring event %s in state %s", g.n, gen_event_name(e), gen_state_name(g.st));
        return;
    }
    GenState prev = g.st;
    g.st = t.next;
    if (prev != t.next) debugf("gen %d: %s -> %s (%s)", g.n, gen_state_name(prev), gen_state_name(t.next), gen_event_name(e));
    const int64_t now = now_ms();
    switch (t.action) {
    case A_NONE:
    case A_INVALID: break;
    case A_PROMOTE: {
        g.deadline_ms = 0;
        // Inherited sockets it did not take over (a dropped port): its processes close their copies
        // now; the launcher closes its own once the reload completes.
        for (size_t i = 0; i < g.claimed.size(); ++i)
            if (!g.claimed[i] && g.shm) g.shm->released.fetch_or(uint64_t(1) << i, std::memory_order_seq_cst);
        Gen *old = serving_;
        serving_ = &g;
        if (next_ == &g) next_ = nullptr;
        if (old) {
            logf("gen %d ready in %lld ms; gen %d stops accepting", g.n, (long long)(now - g.started_ms), old->n);
            fire(*old, EV_SUPERSEDE);
        } else {
            logf("gen %d ready in %lld ms", g.n, (long long)(now - g.started_ms));
        }
        break;
    }
    case A_ROLLBACK: {
        if (next_ == &g) next_ = nullptr;
        std::string why;
        if (e == EV_READY_TIMEOUT) {
            char secs[32];
            snprintf(secs, sizeof secs, "%g", opts_.ready_timeout);
            why = "was not ready after " + std::string(secs) + " s: ";
            why += g.hello ? "never claimed " + unclaimed(g)
                           : "the shim never reported in (static or setuid program, or LD_PRELOAD removed?)";
        } else if (g.exec_error) {
            why = "could not be executed: " + std::string(strerror(g.exec_error));
        } else {
            why = describe_status(g.status) + " before it was ready";
            if (!unclaimed(g).empty()) why += " (unclaimed: " + unclaimed(g) + ")";
        }
        if (serving_) {
            logf("reload failed: gen %d %s; rolled back, gen %d keeps serving", g.n, why.c_str(), serving_->n);
        } else {
            logf("gen %d %s", g.n, why.c_str());
            if (g.main_exited) exit_status_ = g.exec_error ? (g.exec_error == ENOENT ? kExitNotFound : kExitNotExecutable)
                                                           : exit_code_of(g.status);
            begin_shutdown();
        }
        drain(g);
        break;
    }
    case A_LOST: {
        logf("gen %d (pid %d) %s on its own", g.n, int(g.pid), describe_status(g.status).c_str());
        if (serving_ == &g) serving_ = nullptr;
        exit_status_ = exit_code_of(g.status);
        status_gen_ = g.n;
        if (!next_) begin_shutdown();
        drain(g);
        break;
    }
    case A_DRAIN: drain(g); break;
    case A_STOP:
        logf("gen %d: sending %s to process group %d", g.n, signal_name(opts_.stop_signal), int(g.pid));
        kill(-g.pid, opts_.stop_signal);
        g.deadline_ms = now + int64_t(opts_.kill_timeout * 1000);
        break;
    case A_KILL:
        if (prev == GS_KILLING) logf("warning: gen %d: processes still present after SIGKILL", g.n);
        else if (e == EV_FORCE_STOP) logf("gen %d: stopping now: sending SIGKILL", g.n);
        else logf("gen %d: still running %g s after %s; sending SIGKILL", g.n, opts_.kill_timeout, signal_name(opts_.stop_signal));
        kill(-g.pid, SIGKILL);
        g.deadline_ms = now + int64_t(opts_.kill_timeout * 1000);
        break;
    case A_GONE:
        logf("gen %d gone", g.n);
        g.deadline_ms = 0;
        release(g);
        registry_.drop_user(g.n);
        if (serving_ == &g) serving_ = nullptr;
        if (next_ == &g) next_ = nullptr;
        break;
    }
}

// Ready: the shim is active and the generation claimed every socket it inherited, or it claimed or opened
// some and has started accepting (a new configuration that drops a port never claims that one; once the
// program accepts, its set-up is done). A first generation inherits nothing: it is ready once it listens.
void Supervisor::check_ready(Gen &g) {
    if (g.st != GS_STARTING || !g.hello) return;
    size_t claimed = 0;
    for (bool c : g.claimed) claimed += c;
    if (g.passed.empty() && !serving_ && g.registered == 0) return;
    if (claimed < g.passed.size()) {
        if (!g.accepting || (claimed == 0 && g.registered == 0)) return;
        logf("gen %d accepts without taking over %s (dropped by its configuration?): released once the "
             "reload completes", g.n, unclaimed(g).c_str());
    }
    fire(g, EV_READY);
}

void Supervisor::on_ctl(Gen &g, bool hangup) {
    for (int handled = 0; handled < kMaxMessagesPerTurn; ++handled) {
        Msg m;
        iovec iov{&m, sizeof m};
        alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 8)];
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(g.ctl, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; // EAGAIN: all read
        }
        if (n == 0) {
            // A zero-length record, or the end: every process of the generation closed its end.
            if (!hangup) continue;
            close(g.ctl);
            g.ctl = -1;
            return;
        }
        int fds[8];
        int nfds = 0;
        for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && nfds < 8; ++i) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        const char *bad = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? "truncated message" : msg_check(&m, size_t(n), nfds);
        if (bad) {
            logf("warning: gen %d: rejected a message: %s", g.n, bad);
            for (int i = 0; i < nfds; ++i) close(fds[i]);
            continue;
        }
        switch (m.type) {
        case MSG_HELLO:
            debugf("gen %d: shim active in pid %d", g.n, m.pid);
            if (m.pid == g.pid) g.hello = true;
            check_ready(g);
            break;
        case MSG_CLAIMED:
            if (size_t(m.arg) < g.passed.size() && !g.claimed[size_t(m.arg)]) {
                g.claimed[size_t(m.arg)] = true;
                registry_.mark_used(g.passed[size_t(m.arg)], g.n);
                const Listener *l = registry_.find(g.passed[size_t(m.arg)]);
                debugf("gen %d took over %s", g.n, l ? l->name.c_str() : "?");
                check_ready(g);
            }
            break;
        case MSG_REGISTER: {
            const Listener *dup = nullptr;
            const Listener *l = registry_.add(fds[0], g.n, &dup);
            if (l) logf("gen %d listening on %s", g.n, l->name.c_str());
            ++g.registered;
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
        case MSG_BINDFAIL: {
            SockKey k;
            char name[160] = "?";
            if (key_from_sockaddr(reinterpret_cast<sockaddr *>(&m.addr), m.addrlen, SOCK_STREAM, 0, &k))
                key_format(k, name, sizeof name);
            logf("gen %d (pid %d): bind %s failed: %s", g.n, m.pid, name, strerror(m.err));
            break;
        }
        }
    }
}

void Supervisor::on_child_exits() {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        for (auto &g : gens_) {
            if (g->pid != pid || g->main_exited) continue;
            g->main_exited = true;
            g->status = status;
            if (g->n == status_gen_) exit_status_ = exit_code_of(status);
            debugf("gen %d: main process %d %s", g->n, int(pid), describe_status(status).c_str());
            if ((g->st == GS_STARTING || g->st == GS_SERVING) && !group_empty(g->pid))
                logf("gen %d: its main process exited but its process group lives on; if the program "
                     "daemonizes, run it in the foreground (e.g. nginx -g 'daemon off;')", g->n);
            fire(*g, EV_EXITED);
        }
    }
    check_empty();
}

void Supervisor::check_empty() {
    for (auto &g : gens_)
        if (g->main_exited && g->st != GS_GONE && group_empty(g->pid)) fire(*g, EV_EMPTY);
}

void Supervisor::on_deadlines(int64_t now) {
    for (size_t i = 0; i < gens_.size(); ++i) {
        Gen &g = *gens_[i];
        // Slots of processes that died without the shim freeing them (killed, or exec'd into a program
        // without it): free them now and then, so a fork-per-request server never runs out.
        if (g.shm && now >= g.next_reclaim_ms) {
            g.next_reclaim_ms = now + kReclaimMs;
            shared_live_conns(g.shm, process_alive);
        }
        if (g.st == GS_DRAINING && now >= g.next_check_ms) {
            g.next_check_ms = now + kTickMs;
            if (idle(g)) fire(g, EV_IDLE);
        }
        if (g.deadline_ms == 0 || now < g.deadline_ms) continue;
        g.deadline_ms = 0;
        switch (g.st) {
        case GS_STARTING:
            if (!serving_ && gen_counter_ == 1 && !g.main_exited) {
                // Nothing to roll back to: keep the first generation, without hot restart if it never said hello.
                if (!g.hello) logf("warning: gen 1: the shim never reported in (static or setuid program?); "
                                   "hot restart will not work");
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
                 g.shm ? int(g.shm->conns.load()) : 0);
            fire(g, EV_DRAIN_TIMEOUT);
            break;
        case GS_STOPPING:
        case GS_KILLING: fire(g, EV_KILL_TIMEOUT); break;
        default: break;
        }
    }
    check_empty();
}

bool Supervisor::reload_in_progress() const {
    return next_ != nullptr || serving_ == nullptr || gens_.size() > 1;
}

void Supervisor::begin_shutdown() {
    if (shutdown_requests_ == 0) shutdown_requests_ = 1;
    reload_pending_ = false;
    if (serving_) status_gen_ = serving_->n;
    for (size_t i = 0; i < gens_.size(); ++i) {
        Gen &g = *gens_[i];
        if (g.st == GS_STARTING || g.st == GS_SERVING) fire(g, EV_SUPERSEDE);
    }
}

void Supervisor::on_signal(int sig) {
    switch (sig) {
    case SIGCHLD: on_child_exits(); break;
    case SIGHUP:
        if (shutdown_requests_) {
            logf("SIGHUP ignored: stopping");
        } else if (reload_in_progress()) {
            if (!reload_pending_) logf("SIGHUP: reload queued until the current one completes");
            reload_pending_ = true;
        } else {
            logf("SIGHUP: reloading");
            next_ = start_generation();
        }
        break;
    case SIGTERM:
    case SIGINT:
        ++shutdown_requests_;
        if (shutdown_requests_ == 1) {
            logf("%s: stopping gracefully", signal_name(sig));
            begin_shutdown();
        } else {
            logf("%s again: stopping now", signal_name(sig));
            for (size_t i = 0; i < gens_.size(); ++i) fire(*gens_[i], EV_FORCE_STOP);
        }
        break;
    case SIGUSR1:
    case SIGUSR2:
        if (serving_) kill(serving_->pid, sig);
        break;
    }
}

// After every batch of events: forget generations that are gone, release sockets nobody uses once no
// reload is in flight, start a queued reload, and decide whether the launcher is done.
void Supervisor::after_step() {
    bool removed = false;
    for (size_t i = 0; i < gens_.size();) {
        if (gens_[i]->st == GS_GONE) {
            gens_.erase(gens_.begin() + long(i));
            removed = true;
        } else {
            ++i;
        }
    }
    if (shutdown_requests_) {
        if (gens_.empty()) done_ = true;
        return;
    }
    if (!serving_ && !next_) {
        // The serving generation is lost and nothing replaces it.
        begin_shutdown();
        if (gens_.empty()) done_ = true;
        return;
    }
    if (reload_in_progress()) return;
    if (removed) {
        for (const auto &l : registry_.prune()) {
            logf("released %s: no generation uses it", l.name.c_str());
            // The serving generation still holds the copy it inherited: tell it to close it.
            for (size_t i = 0; i < serving_->passed.size(); ++i)
                if (serving_->passed[i] == l.id && serving_->shm)
                    serving_->shm->released.fetch_or(uint64_t(1) << i, std::memory_order_seq_cst);
        }
        if (!reload_pending_) logf("reload complete: gen %d serving", serving_->n);
    }
    if (reload_pending_) {
        reload_pending_ = false;
        logf("starting the queued reload");
        next_ = start_generation();
    }
}

int Supervisor::run() {
    if (!setup()) return kExitLauncherError;
    write_pid_file();
    Gen *first = start_generation();
    if (!first) {
        remove_pid_file();
        return kExitLauncherError;
    }
    if (first->exec_error) {
        int e = first->exec_error;
        waitpid(first->pid, nullptr, 0);
        gens_.clear();
        remove_pid_file();
        return e == ENOENT ? kExitNotFound : kExitNotExecutable;
    }
    next_ = first;
    while (!done_) {
        std::vector<pollfd> pfds;
        pfds.push_back({sigfd_, POLLIN, 0});
        std::vector<Gen *> owners;
        for (auto &g : gens_) {
            if (g->ctl < 0) continue;
            pfds.push_back({g->ctl, POLLIN, 0});
            owners.push_back(g.get());
        }
        int64_t now = now_ms();
        int64_t wake_at = -1;
        for (auto &g : gens_) {
            if (g->deadline_ms && (wake_at < 0 || g->deadline_ms < wake_at)) wake_at = g->deadline_ms;
            if (g->st == GS_DRAINING || g->st == GS_STOPPING || g->st == GS_KILLING || g->main_exited) {
                if (wake_at < 0 || now + kTickMs < wake_at) wake_at = now + kTickMs;
            }
        }
        int timeout = wake_at < 0 ? -1 : int(wake_at > now ? wake_at - now : 0);
        int n = poll(pfds.data(), pfds.size(), timeout);
        if (n < 0 && errno != EINTR) {
            logf("fatal: unable to poll: %s", strerror(errno));
            break;
        }
        // Messages before signals: a generation's last IDLE or CLAIMED may precede its exit.
        for (size_t i = 1; n > 0 && i < pfds.size(); ++i)
            if (pfds[i].revents) on_ctl(*owners[i - 1], (pfds[i].revents & POLLHUP) && !(pfds[i].revents & POLLIN));
        for (auto &g : gens_) {
            if (!g->idle_hint) continue;
            g->idle_hint = false;
            if (g->st == GS_DRAINING && idle(*g)) fire(*g, EV_IDLE);
        }
        if (n > 0 && pfds[0].revents) {
            signalfd_siginfo si;
            while (read(sigfd_, &si, sizeof si) == sizeof si) on_signal(int(si.ssi_signo));
        }
        on_deadlines(now_ms());
        after_step();
    }
    remove_pid_file();
    logf("exiting with status %d", exit_status_);
    return exit_status_;
}

} // namespace hr
