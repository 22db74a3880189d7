// The shim's process-wide state and the services every wrapper family uses: activation, the fd table,
// the inherited sockets, messages to the launcher, logging. Policy functions live in the wrapper files
// (sockets.cc, accept.cc, fdlife.cc, process.cc); the exported libc names are one-line calls into them.
#pragma once

#include "addr.h"
#include "protocol.h"
#include "state.h"

#include <atomic>
#include <unistd.h>

namespace hr {

// One inherited socket of this generation.
struct Inherited {
    std::atomic<int> fd{-1};     // where the shim keeps it (FD_PRIVATE) until claimed; -1 once claimed
    std::atomic<int> claimed{0}; // 1: a bind() took it
    std::atomic<int> prog_fd{-1};// the program's fd it now lives on, until listen() reports it
    std::atomic<int> reported{0};// MSG_CLAIMED sent
    SockKey key;                 // read from the kernel at start-up
};

// The tables that grow with kMaxInherited, all zero at start: in .bss, where pages never touched cost
// nothing, rather than in the library's .data with the rest of g (which has non-zero initial values).
struct ShimTables {
    char unix_paths[kMaxInherited][108] = {};
    SockKey shared_keys[kMaxInherited] = {};
    int shared_key_pid[kMaxInherited] = {};
};
extern ShimTables g_tables;

// Must stay constant-initialised (every member initialised, no user constructor): a dynamic initialiser
// could run after the shim's constructor and wipe the state it set up. The Makefile checks the object
// file has no dynamic initialiser.
struct Shim {
    std::atomic<bool> active{false}; // false: every wrapper is a pure pass-through
    Config cfg;
    FdTable table;
    Accounting acct;
    int ninherited = 0;
    Inherited *inherited = nullptr; // ninherited entries, mapped at start-up (up to kMaxInherited: keep it off .data)
    std::atomic<int> ctl{-1};  // relocated numbers of the private descriptors
    std::atomic<int> wake{-1};
    std::atomic<int> shm{-1};
    std::atomic<int> local_wake{-1}; // this process's own eventfd: shutdown()/close() of a shared socket
    int nunix = 0;                   // unix paths of shared sockets (never unlinked by the program)
    char (*unix_paths)[108] = g_tables.unix_paths;
    char self_path[4096] = {}; // this library's path (for LD_PRELOAD across an exec), set at start-up
    std::atomic<bool> accepting{false}; // MSG_ACCEPTING sent by this process
    std::atomic<bool> idle_hinted{false}; // a refused reservation already sent its one MSG_IDLE
    std::atomic<int> owner_pid{0};   // the process this state belongs to (see owner())
    std::atomic<uint32_t> released_done{0}; // the Shared::released_seq this process has acted on
    std::atomic<int> unreported{0};  // adopted stream sockets not yet reported claimed (see report_adopted())
    int nshared_keys = 0;            // addresses of the sockets this process registered (see remember_key())
    SockKey *shared_keys = g_tables.shared_keys;
    int *shared_key_pid = g_tables.shared_key_pid; // the process that registered it
    char instance_locks[2048] = {};  // HOTRESTART_INSTANCE_LOCKS: --instance-lock paths, one per line
};
extern Shim g;

// Is the caller the process this state belongs to? A vfork()ed child (posix_spawn, Python's subprocess)
// shares our memory but not our descriptors, and pthread_atfork does not run for it: wrappers that change
// state pass straight through there. Costs a getpid(), so it is only asked on tracked descriptors.
inline bool owner() { return getpid() == g.owner_pid.load(std::memory_order_relaxed); }

// The untracked fast path: one bounds check and one atomic load.
inline uint8_t fd_state(int fd) { return g.table.get(fd); }

// Messages to the launcher; errno is preserved. fd < 0: no descriptor attached.
void send_msg(uint16_t type, int32_t arg, int32_t err, const sockaddr *addr, socklen_t addrlen, int fd);
inline void send_idle() { send_msg(MSG_IDLE, 0, 0, nullptr, 0, -1); }
// Closes this process's copies of inherited sockets the launcher released (see Shared::released).
void close_released();
// Reports the inherited stream sockets this process adopted in bind() but never listen()ed on (a program
// that asks SO_ACCEPTCONN first, as haproxy does, skips listen() on a socket that already listens): once it
// accepts or waits on a shared socket, its set-up is done and what it bound is its listener. Sent before
// MSG_ACCEPTING, on the same socket, so the launcher counts them before it judges readiness.
void report_adopted();
// Addresses of sockets this process made shared itself (registered at listen(), or a bound datagram
// socket), and whether key is one of those or of the inherited ones (see policy_bind() while draining).
void remember_key(const SockKey &k);
bool known_key(const SockKey &k);
// The socket named name is one this very process registered (not a copy a forked child inherited).
bool registered_here(const sockaddr *name, socklen_t len);
// The launcher released inherited sockets since this process last acted on it (Shared::released_seq): two
// relaxed loads. Only with the shared state attached.
inline bool released_pending() {
    return g.acct.shared->released_seq.load(std::memory_order_relaxed) != g.released_done.load(std::memory_order_relaxed);
}

// The program accepts, or waits for connections, on a shared socket: tell the launcher once per process,
// and drop inherited sockets the launcher has released since.
inline void note_accepting() {
    if (g.unreported.load(std::memory_order_relaxed) > 0) report_adopted();
    if (!g.accepting.load(std::memory_order_relaxed) && !g.accepting.exchange(true))
        send_msg(MSG_ACCEPTING, 0, 0, nullptr, 0, -1);
    if (g.acct.shared && released_pending()) close_released();
}

// Moves a private descriptor away from number fd (the program is about to dup2/dup3 onto it).
void move_private_away(int fd);

// Blocking emulation on a shared socket (accept on a listener, recv on a datagram socket). Waits until fd
// is readable, honouring SO_RCVTIMEO; once draining, waits as on an idle socket. W_GONE: this process
// shut the socket down or closed it meanwhile (the caller reports EINVAL or EBADF).
enum Wait { W_READY, W_TIMEOUT, W_EINTR, W_GONE, W_SLICE };
Wait wait_readable(int fd, bool draining);
// W_SLICE (draining only): kDrainSliceMs passed without anything happening.
// What a waiting accept()/recv() does after wait_readable(): 0 to try again, or the errno to fail with.
// A signal during a draining accept() gives ECONNABORTED (see accept.cc). Every slice while draining
// gives EINTR if the program has a handler without SA_RESTART: a signal whose handler ran between our
// system calls (it only set a flag, as interpreters' handlers do) is then acted on.
int wait_outcome(Wait w, int fd, bool draining_accept);

// While draining, a poll/select/epoll wait with no (or a long) timeout returns 0 at least this often: a
// stop signal that lands just before the wait blocks (the classic race in interpreters that run handlers
// between calls) would otherwise leave it blocked until SIGKILL, since shared sockets no longer wake it.
// While standing by (the launcher's rollback window) the slice is short: if the newer generation fails,
// the launcher lowers the flag and nothing would wake this wait, so accepting resumes within a slice.
constexpr int kDrainSliceMs = 500;
constexpr int kStandbySliceMs = 20;
inline int drain_slice(int left) {
    const int slice = g.acct.standby() ? kStandbySliceMs : kDrainSliceMs;
    return (left < 0 || left > slice) ? slice : left;
}

// Monotonic milliseconds, and what is left of a caller's timeout (negative: none) that began at start.
int64_t mono_ms();
struct Remaining {
    int timeout;
    int64_t start;
    explicit Remaining(int t) : timeout(t), start(t > 0 ? mono_ms() : 0) {}
    int left() const {
        if (timeout <= 0) return timeout;
        int64_t spent = mono_ms() - start;
        return spent >= timeout ? 0 : int(timeout - spent);
    }
};
// Wakes this process's threads waiting in wait_readable() (after a shutdown or close of a shared socket).
void wake_local();
// True if a program's EINTR should surface: some installed handler lacks SA_RESTART.
bool interrupted_for_program();
// The unix path of a shared socket, as the program may name it to unlink() or connect().
bool is_shared_unix_path(const char *path, bool unclaimed_only);
void add_shared_unix_path(const SockKey &k);

// dup family: nfd now refers to what ofd refers to (fdlife.cc).
void policy_duplicated(int ofd, int nfd);

// fcntl(F_SETLK/F_OFD_SETLK) (guards.cc): a lock an older generation holds is named to the launcher.
int policy_setlk(int fd, int cmd, void *arg);
constexpr char kLocksVar[] = "HOTRESTART_INSTANCE_LOCKS=";
// Reads HOTRESTART_INSTANCE_LOCKS into g.instance_locks and removes it from the environment (start-up only).
void load_instance_locks();

// Removes every epoll registration the program made for fd (it is about to be closed or replaced).
void epoll_forget_fd(int fd);
int policy_close(int fd);
int policy_close_range(unsigned first, unsigned last, int flags);

// Logging: "hotrestart-shim[pid]: <level>: <message>" on stderr, written with one write(2). Only used off
// the hot path (start-up, errors, verbose tracing).
void log_line(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define HR_DEBUG(...)                                                                                  \
    do {                                                                                               \
        if (::hr::g.cfg.verbose >= 2) ::hr::log_line("debug", __VA_ARGS__);                            \
    } while (0)

// Saves errno on construction and restores it on destruction.
struct ErrnoGuard {
    int saved;
    ErrnoGuard();
    ~ErrnoGuard();
};

} // namespace hr

// Exported wrappers: default visibility, no symbol version (so they interpose for every caller).
#define HR_EXPORT extern "C" __attribute__((visibility("default")))
