// The one protocol between the launcher and the shim (version 3: the Shared layout below).
//
// Each generation has three private descriptors:
//   ctl   one end of an AF_UNIX SOCK_SEQPACKET socketpair; the shim sends Msg records on it
//   wake  an eventfd the launcher makes readable (for good) when the generation must stop accepting
//   shm   a memfd holding one Shared record (drain flag and connection counters), mapped by both sides
// None of them crosses an exec, and no variable describes them: a program that does not run the shim (a
// static one, or one the main process execs) and its children never see them. The shim's constructor in
// the generation's main process fetches them at the rendezvous: it connects to its parent's abstract
// SOCK_SEQPACKET socket (rendezvous_address()), whose listener must be that parent (SO_PEERCRED); the
// launcher answers only a peer whose SO_PEERCRED pid is the main process of one of its generations (its
// child, not yet reaped: the pid cannot have been reused) with one record: the configuration as text,
// encoded by config_encode(), with ctl, wake and shm attached (SCM_RIGHTS, in that order):
//   v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-
// (ctl, wake and shm there are the launcher's numbers: the shim uses those it received). Anyone else gets
// the connection closed. The inherited listening sockets (`fds`, in registry order) are the program's own
// and do cross exec, at those numbers; "-" marks a slot that is not to be adopted. After an exec by the
// main process (a wrapper that execs the server, a server that re-execs itself) the new image asks again
// (the launcher then lists every slot as "-"), and takes the numbers its sockets have now from
// Shared::exec_state, which the image before it wrote just before the exec: the same encoding, plus the
// optional `own` field: the program's own descriptors that are shared sockets, each with its kind and the
// program's idea of O_NONBLOCK: l/L listener blocking/non-blocking, d/D datagram (e.g. own=6l,7D).
// Everything here is free of heap allocation so the shim can use it in its constructor and in a forked
// child.
#pragma once

#include <atomic>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

namespace hr {

constexpr int kProtocolVersion = 3;
// Sockets passed to one generation. 1024: the most a program can hold under the default soft RLIMIT_NOFILE
// (1024) and select()'s FD_SETSIZE, so any server that runs plainly with its defaults fits. What grows with it
// is only touched when sockets change hands (start-up, bind, an exec, a release), never on the path of a
// descriptor the shim does not track: the configuration text (kExecStateLen), Shared::released (one bit
// each), the shim's table of inherited sockets (mapped at start-up, as large as the generation's list).
constexpr int kMaxInherited = 1024;
constexpr int kMaxFdNumber = 1 << 20; // largest descriptor number the protocol accepts
// Shared::exec_state; also the longest configuration text: its fixed fields, then at most 8 characters per
// inherited socket ("1048575,") and 9 per own socket ("1048575L,").
constexpr size_t kExecStateLen = 256 + 8 * kMaxInherited + 9 * kMaxInherited;
constexpr int kSlots = 4096;          // processes of one generation that can account connections
constexpr size_t kCacheLine = 64;
constexpr uint32_t kMagic = 0x48525354; // "HRST"
constexpr int kMaxOlder = 16;         // older generations one generation is told of (Shared::older)

// The decoded configuration (the rendezvous' answer, or Shared::exec_state). Immutable once decoded.
struct Config {
    int ctl = -1;
    int wake = -1;
    int shm = -1;
    int gen = 0;
    int main_pid = 0;     // the generation's main process: only it (and re-execs of it) activates the shim
    int launcher_pid = 0; // the peer expected on ctl
    int verbose = 0;
    int nfds = 0;
    int fds[kMaxInherited] = {};  // -1: slot already claimed
    int nown = 0;
    int own[kMaxInherited] = {};
    char own_kind[kMaxInherited] = {}; // 'l', 'L', 'd', 'D'
};

// Strict decoder: every key exactly once, decimal numbers in range, nothing else. On failure returns false
// and writes a short reason into err (always NUL-terminated when errlen > 0).
bool config_decode(const char *text, Config *out, char *err, size_t errlen);
// Writes the encoding into buf; returns its length, or -1 if it does not fit.
int config_encode(const Config &c, char *buf, size_t len);

// The rendezvous of the launcher whose pid is launcher_pid: an abstract name, "hotrestart/<pid>/rendezvous".
// Fills *a and returns the address length to pass to bind() or connect().
socklen_t rendezvous_address(int launcher_pid, sockaddr_un *a);
// How long the shim waits for the launcher at the rendezvous (connect, then the answer), in milliseconds.
constexpr int kRendezvousWaitMs = 5000;

// Messages from the shim to the launcher: one fixed-size record per SEQPACKET datagram.
enum MsgType : uint16_t {
    MSG_HELLO = 1,    // the shim is active in pid (sent again by each image after a re-exec); arg unused, 0
    MSG_CLAIMED = 2,  // arg = index into fds: the program bound and listened on that inherited socket
    MSG_REGISTER = 3, // carries one fd (SCM_RIGHTS): a socket the program bound itself and now listens on
    MSG_IDLE = 4,     // the generation's live connection count fell to zero while draining
    MSG_BINDFAIL = 5, // err = errno of a failed bind() of addr (diagnostics only)
    MSG_ACCEPTING = 6,// the program waits for or accepts connections on a shared socket: its set-up is done
    MSG_CLOSED = 7,   // this process closed a shared listener (addr: its address); the launcher asks the kernel
                      // whether any process of the generation still holds it (a probe socket is closed for good)
    MSG_LOCKED = 8,   // a non-blocking lock on a file failed: process arg (an older generation's) holds it;
                      // addr: AF_UNIX with the file's path (truncated), for the rollback message
    MSG_LOCK_HANDOVER = 9, // carries one fd: an --instance-lock file whose flock() an older generation holds was
                      // answered as taken; the launcher takes the lock on that open file once it is free
};

struct Msg {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    int32_t pid;      // the sender's getpid(), for its own sake only: the launcher believes SCM_CREDENTIALS
    int32_t arg;
    int32_t err;
    uint32_t addrlen;
    sockaddr_storage addr;
};

// Checks a received record: exact size, magic, version, known type, and the fd count that type
// requires (1 for MSG_REGISTER, 0 for the others). Returns nullptr when valid, else the reason.
const char *msg_check(const Msg *m, size_t len, int nfds_received);

// Shared between the launcher and every process of one generation (MAP_SHARED memfd).
//
// Accounting rule: a process increments its count (its slot's, or `conns` if it has no slot) *before* it
// calls accept(), then checks draining; the launcher sets draining *before* it reads the counts. With
// sequentially consistent atomics one of the two always sees the other, so no connection can be accepted
// after the launcher saw zero.
//
// Layout for many cores: what every accept reads (draining, released) is written only by the launcher, and
// each process writes only its own slot, alone on its cache line. Nothing shared is written per connection,
// so the cost of an accept/close does not grow with the number of processes accepting. The generation's
// count is the sum the launcher makes (shared_total_conns()).

// Values of Shared::draining.
constexpr uint32_t kAccepting = 0;
constexpr uint32_t kDraining = 1; // for good: a newer generation serves, or the launcher stops
constexpr uint32_t kStandby = 2;  // paused during a rollback window: may go back to kAccepting any moment

struct Shared {
    uint32_t magic;
    uint32_t version;
    std::atomic<uint32_t> draining; // kAccepting, kDraining, kStandby
    std::atomic<uint32_t> slotless; // some process had no slot: it counts in `conns`
    std::atomic<int32_t> slots_used; // slots [0, slots_used) may be or have been taken (set at fork, not per connection)
    // Bumped by the launcher after it set bits of `released`: a process compares it with the last value it
    // acted on (one load, whatever the number of sockets), and only then looks at the bits.
    std::atomic<uint32_t> released_seq;
    // Bit i set by the launcher: inherited socket i was released (no generation claimed it); processes of
    // the generation close their unclaimed copy at their next accept/wait/fork.
    std::atomic<uint64_t> released[kMaxInherited / 64];
    // Live accepted connections (fds) of the processes that found no free slot; shared by all of them.
    alignas(kCacheLine) std::atomic<int32_t> conns;
    struct alignas(kCacheLine) Slot {
        std::atomic<int32_t> pid;   // 0: free
        std::atomic<int32_t> conns; // that process's live connections (and reservations)
    } slots[kSlots];
    // Older generations of the same launcher that are still running (their main process is not reaped),
    // written by the launcher before this generation starts and cleared as they exit: kill(pid, 0) of one of
    // them, or of a process of its group, answers ESRCH in this generation (single-instance guards). start
    // is the process's start time (field 22 of /proc/PID/stat), so that a reused pid never matches.
    struct Older {
        std::atomic<int32_t> pid;   // 0: free
        std::atomic<uint64_t> start;
    } older[kMaxOlder];
    // Written by the main process just before it execs (NUL-terminated configuration text: its inherited
    // and own sockets as numbered in the new image), read and cleared by the new image's shim. The launcher
    // never reads it.
    char exec_state[kExecStateLen];
};
static_assert(sizeof(Shared::Slot) == kCacheLine, "one slot per cache line");
static_assert(std::atomic<int32_t>::is_always_lock_free, "cross-process atomics must be lock-free");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "cross-process atomics must be lock-free");
static_assert(kMaxInherited % 64 == 0, "Shared::released has one bit per inherited socket");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "cross-process atomics must be lock-free");
constexpr size_t kSharedSize = (sizeof(Shared) + 4095) & ~size_t(4095);

// The launcher releases inherited socket i of a generation (see Shared::released).
inline void shared_release(Shared *s, int i) {
    s->released[i / 64].fetch_or(uint64_t(1) << (i % 64), std::memory_order_seq_cst);
    s->released_seq.fetch_add(1, std::memory_order_seq_cst);
}
inline bool shared_released(const Shared *s, int i) {
    return s->released[i / 64].load(std::memory_order_acquire) >> (i % 64) & 1;
}

} // namespace hr
