#include "state.h"

#include <algorithm>

namespace hr {

void Accounting::claim_slot(int32_t pid) {
    slot.store(-1, std::memory_order_relaxed);
    if (!shared) return;
    // A forked child inherits its parent's connection descriptors: they count once more.
    int32_t n = local.load(std::memory_order_relaxed);
    for (int i = 0; i < kSlots; ++i) {
        int32_t expected = 0;
        if (shared->slots[i].pid.compare_exchange_strong(expected, pid, std::memory_order_seq_cst)) {
            // Known to the launcher's sums before the slot counts anything.
            int32_t used = shared->slots_used.load(std::memory_order_seq_cst);
            while (used < i + 1 &&
                   !shared->slots_used.compare_exchange_weak(used, i + 1, std::memory_order_seq_cst)) {
            }
            shared->slots[i].conns.store(n, std::memory_order_seq_cst);
            slot.store(i, std::memory_order_release);
            return;
        }
    }
    // No slot: count in the shared fallback counter (slower under contention, still exact), and tell the
    // launcher that slot counts alone are incomplete for this generation.
    shared->slotless.store(1, std::memory_order_seq_cst);
    if (n) shared->conns.fetch_add(n, std::memory_order_seq_cst);
}

namespace {

// This process's own counter: its slot, or the fallback counter without one.
std::atomic<int32_t> &counter(Shared *shared, int s) { return s >= 0 ? shared->slots[s].conns : shared->conns; }

} // namespace

// Each change goes to this process's own counter only. None once the process left (its slot is given back).
void Accounting::add(int32_t n) {
    if (leaving()) return;
    counter(shared, slot.load(std::memory_order_acquire)).fetch_add(n, std::memory_order_seq_cst);
}

// True when the change left this process's counter at zero while draining: the generation may be idle
// now (the last closer of a generation always brings its own counter to zero), the launcher sums to know.
bool Accounting::drop(int32_t n) {
    int32_t left = counter(shared, slot.load(std::memory_order_acquire)).fetch_sub(n, std::memory_order_seq_cst) - n;
    return left == 0 && draining();
}

bool Accounting::sub(int32_t n) { return !leaving() && drop(n); }

bool Accounting::reserve(bool *became_idle) {
    if (became_idle) *became_idle = false;
    if (leaving()) return false;
    if (!shared) return true;
    add(1);
    // Leaving since the check above: add() counted nothing, nor does sub().
    if (shared->draining.load(std::memory_order_seq_cst) || leaving()) {
        bool idle = sub(1);
        if (became_idle) *became_idle = idle;
        return false;
    }
    return true;
}

bool Accounting::unreserve() { return shared ? sub(1) : false; }

void Accounting::commit() { local.fetch_add(1, std::memory_order_relaxed); }

void Accounting::add_dup() {
    local.fetch_add(1, std::memory_order_relaxed);
    if (shared) add(1);
}

bool Accounting::release() {
    local.fetch_sub(1, std::memory_order_relaxed);
    return shared ? sub(1) : false;
}

bool Accounting::release_all() {
    int32_t n = local.exchange(0, std::memory_order_relaxed);
    if (!shared || n == 0) return false;
    return sub(n);
}

bool Accounting::leave() {
    // The flag first: from here on the other threads reserve nothing, and what they do with a reservation
    // made just before (commit, unreserve) changes no count. Then the counts go down, with drop(): sub()
    // does nothing any more.
    if (gone.exchange(true, std::memory_order_seq_cst)) return false;
    int32_t n = local.exchange(0, std::memory_order_relaxed);
    const bool idle = shared && n != 0 && drop(n);
    free_slot();
    return idle;
}

void Accounting::free_slot() {
    int s = slot.exchange(-1, std::memory_order_acq_rel);
    if (!shared || s < 0) return;
    shared->slots[s].conns.store(0, std::memory_order_seq_cst);
    shared->slots[s].pid.store(0, std::memory_order_seq_cst);
}

int32_t shared_total_conns(Shared *s) {
    int32_t total = s->conns.load(std::memory_order_seq_cst);
    const int used = std::min(s->slots_used.load(std::memory_order_seq_cst), kSlots);
    for (int i = 0; i < used; ++i) total += s->slots[i].conns.load(std::memory_order_seq_cst);
    return total;
}

// Checks whether a slot's process lives only where it matters: slots that count something.
int32_t shared_live_conns(Shared *s, bool (*alive)(int32_t pid)) {
    int32_t total = 0;
    const int used = std::min(s->slots_used.load(std::memory_order_seq_cst), kSlots);
    for (int i = 0; i < used; ++i) {
        int32_t n = s->slots[i].conns.load(std::memory_order_seq_cst);
        if (n <= 0) continue;
        int32_t pid = s->slots[i].pid.load(std::memory_order_seq_cst);
        if (pid == 0) continue;
        if (!alive(pid)) {
            s->slots[i].conns.store(0, std::memory_order_seq_cst);
            s->slots[i].pid.compare_exchange_strong(pid, 0, std::memory_order_seq_cst);
            continue;
        }
        total += n;
    }
    return total;
}

void shared_reclaim_slots(Shared *s, bool (*alive)(int32_t pid)) {
    const int used = std::min(s->slots_used.load(std::memory_order_seq_cst), kSlots);
    for (int i = 0; i < used; ++i) {
        int32_t pid = s->slots[i].pid.load(std::memory_order_seq_cst);
        if (pid == 0 || alive(pid)) continue;
        s->slots[i].conns.store(0, std::memory_order_seq_cst);
        s->slots[i].pid.compare_exchange_strong(pid, 0, std::memory_order_seq_cst);
    }
}

} // namespace hr
