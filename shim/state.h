// Per-process shim state: the fd table and the connection accounting. Everything here is lock-free and
// allocation-free so it can be used from any wrapper, in a signal handler, and in a freshly forked child.
#pragma once

#include "protocol.h"

#include <atomic>
#include <stddef.h>
#include <stdint.h>

namespace hr {

// What the shim knows about one descriptor number of this process.
enum FdKind : uint8_t {
    FD_NONE = 0,     // untracked: every wrapper passes straight through
    FD_LISTENER = 1, // a listening socket shared with the launcher (inherited and claimed, or registered)
    FD_CONN = 2,     // a connection accepted from an FD_LISTENER: counted in Shared::conns
    FD_PRIVATE = 3,  // the shim's own fd (ctl, wake, shm, an unclaimed inherited socket): hidden from close()
    FD_DGRAM = 4,    // a bound datagram socket shared with the launcher
};
constexpr uint8_t kKindMask = 0x0f;
constexpr uint8_t kWantNonblock = 0x10; // shared socket: the program believes it is O_NONBLOCK
constexpr uint8_t kShut = 0x20;         // shared listener this process shut down (or disconnected)

// A flat array indexed by fd. Memory comes from the caller (mmap in the shim, calloc in tests) so the
// table works before any allocator is safe to use. Numbers >= size are untracked.
struct FdTable {
    std::atomic<uint8_t> *slots = nullptr;
    size_t size = 0;

    void attach(void *mem, size_t n) {
        slots = static_cast<std::atomic<uint8_t> *>(mem);
        size = n;
    }
    bool in_range(int fd) const { return fd >= 0 && size_t(fd) < size; }
    uint8_t get(int fd) const { return in_range(fd) ? slots[fd].load(std::memory_order_acquire) : 0; }
    uint8_t kind(int fd) const { return get(fd) & kKindMask; }
    void set(int fd, uint8_t v) {
        if (in_range(fd)) slots[fd].store(v, std::memory_order_release);
    }
    // Sets the state and returns what was there before (used by close so exactly one caller releases).
    uint8_t exchange(int fd, uint8_t v) {
        return in_range(fd) ? slots[fd].exchange(v, std::memory_order_acq_rel) : 0;
    }
};

// Connection accounting of this process within its generation (see the rule in protocol.h).
struct Accounting {
    Shared *shared = nullptr;
    std::atomic<int32_t> local{0};   // FD_CONN descriptors held by this process
    std::atomic<int> slot{-1};       // this process's slot in shared->slots, -1 if none could be had
    std::atomic<bool> gone{false};   // leave() ran: the process is exiting, it takes and counts nothing more

    void attach(Shared *s) { shared = s; }
    // Takes a free slot for pid and records the connections this process already holds (after fork).
    void claim_slot(int32_t pid);
    // Before accept(): counts the connection to come. False (and nothing counted) when draining or
    // leaving; then *became_idle tells whether undoing the count made the generation idle.
    bool reserve(bool *became_idle = nullptr);
    // The accept() failed: undo reserve(). Returns true when this made the generation idle while draining.
    bool unreserve();
    // The accept() succeeded: the reservation becomes a live connection owned by this process.
    void commit();
    // dup() of a connection: one more descriptor refers to it.
    void add_dup();
    // A connection descriptor was closed. Returns true when this made the generation idle while draining.
    bool release();
    // The process is about to exit or exec: give back all its connections at once.
    bool release_all();
    // The process is about to exit: its slot is free for another process (after release_all()).
    void free_slot();
    // The process is about to exit (exit(), _exit()) while its other threads still run: from now on it
    // takes no connection (reserve() fails, as when draining: whatever it accepted now would be reset
    // when the exit completes) and counts nothing (a late reserve, close or dup would land on a slot it
    // gave back); then it gives back its connections (as release_all()) and its slot (free_slot()). Only
    // the first call acts. Returns true when this made the generation idle while draining.
    bool leave();
    bool leaving() const { return gone.load(std::memory_order_seq_cst); }
    void add(int32_t n);
    bool sub(int32_t n);
    bool drop(int32_t n); // sub() without the leaving() check (leave() itself)
    bool draining() const { return shared && shared->draining.load(std::memory_order_seq_cst) != kAccepting; }
    // Paused, not drained for good: waits re-check often so that a resume is acted on at once.
    bool standby() const { return shared && shared->draining.load(std::memory_order_relaxed) == kStandby; }
};

// Launcher side: the generation's count, the sum of every process's (slot counts and the fallback counter).
int32_t shared_total_conns(Shared *s);
// Launcher side: live connections of the generation, counting only slots whose process still exists
// (alive(pid) decides, asked only of slots that count something; their slots are freed). This is the
// fallback for processes that exited without closing (the kernel closed their sockets, the shim never saw
// it). The fallback counter is not included.
int32_t shared_live_conns(Shared *s, bool (*alive)(int32_t pid));
// Launcher side: frees the slots of processes that are gone (a fork-per-request server would run out).
void shared_reclaim_slots(Shared *s, bool (*alive)(int32_t pid));

} // namespace hr
