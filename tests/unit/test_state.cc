// Unit tests for shim/state.h + shim/state.cc: FdTable, Accounting and shared_live_conns.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 declares its functions without extern "C" for C++ callers.
extern "C" {
#include <cmocka.h>
}

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state.h"

using hr::Accounting;
using hr::FdTable;
using hr::Shared;

namespace {

// ---------------------------------------------------------------- FdTable

constexpr size_t kN = 64;

void test_fdtable_get_set_kind_exchange(void **) {
    void *mem = calloc(kN, sizeof(std::atomic<uint8_t>));
    assert_non_null(mem);
    FdTable t;
    t.attach(mem, kN);
    assert_int_equal(t.size, kN);
    for (int fd = 0; fd < int(kN); ++fd) {
        assert_int_equal(t.get(fd), 0);
        assert_int_equal(t.kind(fd), hr::FD_NONE);
        assert_true(t.in_range(fd));
    }
    t.set(0, hr::FD_PRIVATE);
    t.set(5, hr::FD_LISTENER);
    t.set(kN - 1, hr::FD_CONN);
    t.set(7, hr::FD_DGRAM);
    assert_int_equal(t.get(0), hr::FD_PRIVATE);
    assert_int_equal(t.kind(5), hr::FD_LISTENER);
    assert_int_equal(t.kind(kN - 1), hr::FD_CONN);
    assert_int_equal(t.kind(7), hr::FD_DGRAM);
    assert_int_equal(t.kind(6), hr::FD_NONE);
    // exchange returns the previous value and stores the new one.
    assert_int_equal(t.exchange(kN - 1, hr::FD_NONE), hr::FD_CONN);
    assert_int_equal(t.get(kN - 1), hr::FD_NONE);
    // a second exchange sees NONE: exactly one caller gets FD_CONN
    assert_int_equal(t.exchange(kN - 1, hr::FD_NONE), hr::FD_NONE);
    assert_int_equal(t.exchange(3, hr::FD_CONN), hr::FD_NONE);
    assert_int_equal(t.kind(3), hr::FD_CONN);
    free(mem);
}

void test_fdtable_out_of_range(void **) {
    // One guard byte after the table: writes to fd == size must not reach it.
    uint8_t *mem = static_cast<uint8_t *>(calloc(kN + 1, sizeof(std::atomic<uint8_t>)));
    assert_non_null(mem);
    FdTable t;
    t.attach(mem, kN);
    const int bad[] = {-1, -1000, INT_MIN, int(kN), int(kN) + 1, INT_MAX};
    for (int fd : bad) {
        assert_false(t.in_range(fd));
        t.set(fd, hr::FD_CONN);
        assert_int_equal(t.get(fd), 0);
        assert_int_equal(t.kind(fd), 0);
        assert_int_equal(t.exchange(fd, hr::FD_LISTENER), 0);
    }
    for (size_t i = 0; i <= kN; ++i) assert_int_equal(mem[i], 0);
    // An unattached table tracks nothing.
    FdTable empty;
    assert_false(empty.in_range(0));
    assert_int_equal(empty.get(0), 0);
    empty.set(0, hr::FD_CONN);
    assert_int_equal(empty.exchange(0, hr::FD_CONN), 0);
    free(mem);
}

void test_fdtable_nonblock_bit(void **) {
    void *mem = calloc(kN, sizeof(std::atomic<uint8_t>));
    assert_non_null(mem);
    FdTable t;
    t.attach(mem, kN);
    t.set(9, uint8_t(hr::FD_LISTENER | hr::kWantNonblock));
    assert_int_equal(t.get(9), hr::FD_LISTENER | hr::kWantNonblock);
    assert_int_equal(t.kind(9), hr::FD_LISTENER);
    assert_true(t.get(9) & hr::kWantNonblock);
    // Clearing the bit keeps the kind.
    t.set(9, uint8_t(t.get(9) & ~hr::kWantNonblock));
    assert_int_equal(t.get(9), hr::FD_LISTENER);
    assert_int_equal(t.exchange(9, uint8_t(hr::FD_LISTENER | hr::kWantNonblock)), hr::FD_LISTENER);
    assert_int_equal(t.exchange(9, hr::FD_NONE) & hr::kKindMask, hr::FD_LISTENER);
    free(mem);
}

// ---------------------------------------------------------------- Accounting

int setup_shared(void **state) {
    static_assert(sizeof(Shared) <= hr::kSharedSize, "kSharedSize holds a Shared");
    static_assert(hr::kSharedSize % 4096 == 0, "kSharedSize is whole pages");
    void *p = mmap(nullptr, hr::kSharedSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    memset(p, 0, hr::kSharedSize);
    Shared *s = static_cast<Shared *>(p);
    s->magic = hr::kMagic;
    s->version = hr::kProtocolVersion;
    *state = s;
    return 0;
}

int teardown_shared(void **state) {
    munmap(*state, hr::kSharedSize);
    return 0;
}

Shared *sh(void **state) { return static_cast<Shared *>(*state); }

int32_t conns(Shared *s) { return hr::shared_total_conns(s); }
int32_t slot_conns(Shared *s, int i) { return s->slots[i].conns.load(); }
int32_t slot_pid(Shared *s, int i) { return s->slots[i].pid.load(); }

// Processes a and b of the generation, attached, each with its slot (pids 1000 and 1001).
void two_processes(Shared *s, Accounting &a, Accounting &b) {
    a.attach(s);
    b.attach(s);
    a.claim_slot(1000);
    b.claim_slot(1001);
}

// n connections accepted by a (each reserved, then committed).
void accepted(Accounting &a, int n) {
    for (int i = 0; i < n; ++i) {
        assert_true(a.reserve());
        a.commit();
    }
}

void test_claim_slot(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(1000);
    assert_int_equal(a.slot.load(), 0);
    assert_int_equal(slot_pid(s, 0), 1000);
    assert_int_equal(slot_conns(s, 0), 0);
    Accounting b;
    b.attach(s);
    b.claim_slot(1001);
    assert_true(b.slot.load() >= 0 && b.slot.load() < hr::kSlots);
    assert_int_not_equal(b.slot.load(), 0);
    assert_int_equal(slot_pid(s, b.slot.load()), 1001);
    assert_int_equal(conns(s), 0);
    assert_int_equal(s->slotless.load(), 0);
}

// One process: reserve/commit/release keep the global and slot counters equal to the live connections.
void test_reserve_commit_release(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(1000);
    const int slot = a.slot.load();
    for (int i = 1; i <= 5; ++i) {
        assert_true(a.reserve());
        assert_int_equal(conns(s), i); // counted before accept()
        assert_int_equal(slot_conns(s, slot), i);
        a.commit();
        assert_int_equal(conns(s), i);
        assert_int_equal(slot_conns(s, slot), i);
        assert_int_equal(a.local.load(), i);
    }
    for (int i = 4; i >= 0; --i) {
        assert_false(a.release()); // not draining: never "idle"
        assert_int_equal(conns(s), i);
        assert_int_equal(slot_conns(s, slot), i);
        assert_int_equal(a.local.load(), i);
    }
    // A failed accept: reserve then unreserve.
    assert_true(a.reserve());
    assert_int_equal(conns(s), 1);
    assert_false(a.unreserve());
    assert_int_equal(conns(s), 0);
    assert_int_equal(slot_conns(s, slot), 0);
    assert_int_equal(a.local.load(), 0);
}

void test_reserve_while_draining(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(1000);
    assert_true(a.reserve());
    a.commit();
    s->draining.store(1);
    assert_true(a.draining());
    assert_false(a.reserve());
    assert_int_equal(conns(s), 1);
    assert_int_equal(slot_conns(s, a.slot.load()), 1);
    assert_int_equal(a.local.load(), 1);
    // Also with nothing live.
    assert_true(a.release()); // 1 -> 0 while draining
    assert_false(a.reserve());
    assert_int_equal(conns(s), 0);
    assert_int_equal(slot_conns(s, a.slot.load()), 0);
}

void test_idle_only_at_zero_while_draining(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(1000);
    // Not draining: reaching 0 is not "idle".
    assert_true(a.reserve());
    assert_false(a.unreserve());
    assert_true(a.reserve());
    a.commit();
    assert_false(a.release());
    // Draining with 2 live: the first release leaves 1 (false), the second reaches 0 (true).
    assert_true(a.reserve());
    a.commit();
    assert_true(a.reserve());
    a.commit();
    s->draining.store(1);
    assert_false(a.release());
    assert_int_equal(conns(s), 1);
    assert_true(a.release());
    assert_int_equal(conns(s), 0);
    s->draining.store(0);
    // A reservation made before the drain started and undone after it: unreserve reports idle.
    assert_true(a.reserve());
    s->draining.store(1);
    assert_true(a.unreserve());
    assert_int_equal(conns(s), 0);
    s->draining.store(0);
    // A pending reservation plus one live connection: neither alone reaches 0.
    assert_true(a.reserve());
    a.commit();
    assert_true(a.reserve());
    s->draining.store(1);
    assert_false(a.release());
    assert_true(a.unreserve());
    assert_int_equal(conns(s), 0);
    assert_int_equal(slot_conns(s, a.slot.load()), 0);
}

void test_add_dup(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(1000);
    assert_true(a.reserve());
    a.commit();
    a.add_dup();
    assert_int_equal(conns(s), 2);
    assert_int_equal(slot_conns(s, a.slot.load()), 2);
    assert_int_equal(a.local.load(), 2);
    s->draining.store(1);
    assert_false(a.release()); // the dup'd descriptor still refers to the connection
    assert_true(a.release());
    assert_int_equal(conns(s), 0);
    assert_int_equal(a.local.load(), 0);
}

void test_release_all(void **state) {
    Shared *s = sh(state);
    Accounting a, b;
    two_processes(s, a, b);
    accepted(a, 3);
    accepted(b, 1);
    assert_int_equal(conns(s), 4);
    // Not draining: never idle.
    assert_false(a.release_all());
    assert_int_equal(conns(s), 1);
    assert_int_equal(slot_conns(s, a.slot.load()), 0);
    assert_int_equal(a.local.load(), 0);
    // Nothing left to give back: false, nothing changes.
    assert_false(a.release_all());
    assert_int_equal(conns(s), 1);
    // Draining: each release_all that empties its process hints (the launcher sums: b still holds one).
    assert_true(a.reserve());
    a.commit();
    a.add_dup();
    s->draining.store(1);
    assert_true(a.release_all());
    assert_int_equal(conns(s), 1);
    assert_true(b.release_all());
    assert_int_equal(conns(s), 0);
    assert_int_equal(slot_conns(s, b.slot.load()), 0);
    assert_false(b.release_all());
}

// leave() (exit() or _exit() while other threads run): the connections and the slot go back once, and
// from then on nothing is reserved or counted: not a new accept, nor what another thread does with a
// reservation it made just before (its slot is free, a count there would be another process's).
void test_leave(void **state) {
    Shared *s = sh(state);
    Accounting a, b;
    two_processes(s, a, b);
    const int slot = a.slot.load();
    accepted(a, 2);
    assert_true(a.reserve()); // another thread's accept() in flight
    accepted(b, 1);
    assert_int_equal(conns(s), 4);
    s->draining.store(1);
    assert_false(a.leave()); // b still holds one: not idle
    assert_true(a.leaving());
    assert_int_equal(a.slot.load(), -1);
    assert_int_equal(slot_pid(s, slot), 0);
    assert_int_equal(slot_conns(s, slot), 0);
    assert_int_equal(conns(s), 1);
    // The accept in flight ends, either way; closes and dups after: no count changes.
    assert_false(a.unreserve());
    a.commit();
    a.add_dup();
    assert_false(a.release());
    assert_false(a.release_all());
    assert_int_equal(conns(s), 1);
    assert_int_equal(s->conns.load(), 0);
    // Nothing is reserved any more, draining or not.
    s->draining.store(0);
    bool idle = true;
    assert_false(a.reserve(&idle));
    assert_false(idle);
    assert_int_equal(conns(s), 1);
    assert_false(a.leave()); // once only
    // The last process of a draining generation to leave makes it idle.
    s->draining.store(1);
    assert_true(b.leave());
    assert_int_equal(conns(s), 0);
}

// A forked child inherits the parent's connection descriptors: its claim_slot counts them once more.
void test_claim_slot_after_simulated_fork(void **state) {
    Shared *s = sh(state);
    Accounting parent;
    parent.attach(s);
    parent.claim_slot(1000);
    for (int i = 0; i < 2; ++i) {
        assert_true(parent.reserve());
        parent.commit();
    }
    assert_int_equal(conns(s), 2);
    Accounting child;
    child.attach(s);
    child.local.store(2);
    child.slot.store(parent.slot.load()); // the child's copy of the parent's state
    child.claim_slot(1001);
    assert_true(child.slot.load() >= 0);
    assert_int_not_equal(child.slot.load(), parent.slot.load());
    assert_int_equal(slot_pid(s, child.slot.load()), 1001);
    assert_int_equal(slot_conns(s, child.slot.load()), 2);
    assert_int_equal(slot_conns(s, parent.slot.load()), 2);
    assert_int_equal(conns(s), 4);
    s->draining.store(1);
    assert_true(child.release_all()); // its own count is zero: a hint; the parent still holds two
    assert_int_equal(conns(s), 2);
    assert_int_equal(slot_conns(s, parent.slot.load()), 2);
    assert_true(parent.release_all());
    assert_int_equal(conns(s), 0);
}

void test_slotless(void **state) {
    Shared *s = sh(state);
    for (int i = 0; i < hr::kSlots; ++i) {
        Accounting a;
        a.attach(s);
        a.claim_slot(10000 + i);
        assert_int_equal(a.slot.load(), i);
    }
    assert_int_equal(s->slotless.load(), 0);
    Accounting late;
    late.attach(s);
    late.local.store(3); // inherited connections are still counted globally
    late.claim_slot(99999);
    assert_int_equal(late.slot.load(), -1);
    assert_int_equal(s->slotless.load(), 1);
    assert_int_equal(conns(s), 3);
    // Without a slot, counting still works on the global counter.
    assert_true(late.reserve());
    late.commit();
    assert_int_equal(conns(s), 4);
    s->draining.store(1);
    assert_true(late.release_all());
    assert_int_equal(conns(s), 0);
    for (int i = 0; i < hr::kSlots; ++i) assert_int_equal(slot_conns(s, i), 0);
}

void test_detached(void **) {
    Accounting a; // no Shared: reserve always succeeds, nothing is ever idle
    a.claim_slot(1000);
    assert_int_equal(a.slot.load(), -1);
    assert_false(a.draining());
    assert_true(a.reserve());
    a.commit();
    a.add_dup();
    assert_int_equal(a.local.load(), 2);
    assert_false(a.unreserve());
    assert_false(a.release());
    assert_false(a.release_all());
    assert_int_equal(a.local.load(), 0);
}

void test_real_fork(void **state) {
    Shared *s = sh(state);
    Accounting a;
    a.attach(s);
    a.claim_slot(int32_t(getpid()));
    const int pslot = a.slot.load();
    assert_true(a.reserve());
    a.commit();
    assert_int_equal(conns(s), 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        // No cmocka asserts here: report through the exit status.
        a.claim_slot(int32_t(getpid()));
        int cs = a.slot.load();
        if (cs < 0 || cs == pslot) _exit(10);
        if (s->slots[cs].pid.load() != getpid()) _exit(11);
        if (s->slots[cs].conns.load() != 1) _exit(12);
        if (hr::shared_total_conns(s) != 2) _exit(13);
        if (a.release()) _exit(14); // not draining
        if (s->slots[cs].conns.load() != 0) _exit(15);
        if (hr::shared_total_conns(s) != 1) _exit(16);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(conns(s), 1);
    assert_int_equal(slot_conns(s, pslot), 1);
    assert_int_equal(slot_pid(s, pslot), getpid());
    assert_int_equal(a.local.load(), 1);
    // The child's slot is still marked with its (now dead) pid until the launcher collects it.
    int found = -1;
    for (int i = 0; i < hr::kSlots; ++i)
        if (slot_pid(s, i) == pid) found = i;
    assert_true(found >= 0);
    assert_int_equal(slot_conns(s, found), 0);
    s->draining.store(1);
    assert_true(a.release());
    assert_int_equal(conns(s), 0);
}

// ---------------------------------------------------------------- shared_live_conns

bool alive_below_2000(int32_t pid) { return pid < 2000; }
bool all_alive(int32_t) { return true; }

void test_shared_live_conns(void **state) {
    Shared *s = sh(state);
    Accounting live1, live2, dead1, dead2;
    live1.attach(s);
    live2.attach(s);
    dead1.attach(s);
    dead2.attach(s);
    live1.claim_slot(1000);
    dead1.claim_slot(2000);
    live2.claim_slot(1001);
    dead2.claim_slot(2001);
    auto open = [](Accounting &a, int n) {
        for (int i = 0; i < n; ++i) {
            assert_true(a.reserve());
            a.commit();
        }
    };
    open(live1, 2);
    open(live2, 3);
    open(dead1, 4);
    open(dead2, 5);
    assert_int_equal(conns(s), 14);
    assert_int_equal(hr::shared_live_conns(s, all_alive), 14);
    assert_int_equal(hr::shared_live_conns(s, alive_below_2000), 5);
    // Dead processes' slots are freed.
    assert_int_equal(slot_pid(s, dead1.slot.load()), 0);
    assert_int_equal(slot_conns(s, dead1.slot.load()), 0);
    assert_int_equal(slot_pid(s, dead2.slot.load()), 0);
    assert_int_equal(slot_conns(s, dead2.slot.load()), 0);
    // Live ones are untouched.
    assert_int_equal(slot_pid(s, live1.slot.load()), 1000);
    assert_int_equal(slot_conns(s, live1.slot.load()), 2);
    assert_int_equal(slot_pid(s, live2.slot.load()), 1001);
    assert_int_equal(slot_conns(s, live2.slot.load()), 3);
    // A second pass gives the same answer; the freed slots can be claimed again.
    assert_int_equal(hr::shared_live_conns(s, alive_below_2000), 5);
    Accounting next;
    next.attach(s);
    next.claim_slot(1002);
    assert_int_equal(next.slot.load(), dead1.slot.load());
    assert_int_equal(hr::shared_live_conns(s, alive_below_2000), 5);
}

// A process that died with nothing counted keeps its slot until the launcher reclaims it; live ones stay.
void test_shared_reclaim_slots(void **state) {
    Shared *s = sh(state);
    Accounting live, dead;
    live.attach(s);
    dead.attach(s);
    live.claim_slot(1000);
    dead.claim_slot(2000);
    assert_int_equal(s->slots_used.load(), 2);
    assert_int_equal(hr::shared_live_conns(s, alive_below_2000), 0); // counts nothing: not asked about
    assert_int_equal(slot_pid(s, dead.slot.load()), 2000);
    hr::shared_reclaim_slots(s, alive_below_2000);
    assert_int_equal(slot_pid(s, dead.slot.load()), 0);
    assert_int_equal(slot_pid(s, live.slot.load()), 1000);
}

// Many cores: nothing a process writes per connection shares a cache line with another process's counter
// or with what every accept reads.
void test_layout_one_line_per_writer(void **) {
    alignas(64) static char buf[sizeof(Shared)];
    const Shared *s = reinterpret_cast<Shared *>(buf);
    auto line = [](const void *p) { return reinterpret_cast<uintptr_t>(p) / hr::kCacheLine; };
    assert_int_equal(sizeof(Shared::Slot), hr::kCacheLine);
    assert_true(line(&s->slots[0]) != line(&s->slots[1]));
    assert_true(line(&s->slots[0].conns) != line(&s->draining));
    assert_true(line(&s->conns) != line(&s->draining));
    assert_true(line(&s->conns) != line(&s->released));
    assert_true(line(&s->slots[0]) != line(&s->conns));
}

// The last closer of a draining generation tells the launcher even while other processes still count:
// its own counter reached zero, and the launcher sums.
void test_sub_hints_per_process(void **state) {
    Shared *s = sh(state);
    Accounting a, b;
    two_processes(s, a, b);
    accepted(a, 1);
    accepted(b, 1);
    s->draining.store(hr::kDraining);
    assert_true(a.release());
    assert_int_equal(conns(s), 1);
    assert_true(b.release());
    assert_int_equal(conns(s), 0);
}

void test_shared_live_conns_empty(void **state) {
    Shared *s = sh(state);
    assert_int_equal(hr::shared_live_conns(s, all_alive), 0);
    assert_int_equal(hr::shared_live_conns(s, alive_below_2000), 0);
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fdtable_get_set_kind_exchange),
        cmocka_unit_test(test_fdtable_out_of_range),
        cmocka_unit_test(test_fdtable_nonblock_bit),
        cmocka_unit_test_setup_teardown(test_claim_slot, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_reserve_commit_release, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_reserve_while_draining, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_idle_only_at_zero_while_draining, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_add_dup, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_release_all, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_leave, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_claim_slot_after_simulated_fork, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_slotless, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_shared_reclaim_slots, setup_shared, teardown_shared),
        cmocka_unit_test(test_layout_one_line_per_writer),
        cmocka_unit_test_setup_teardown(test_sub_hints_per_process, setup_shared, teardown_shared),
        cmocka_unit_test(test_detached),
        cmocka_unit_test_setup_teardown(test_real_fork, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_shared_live_conns, setup_shared, teardown_shared),
        cmocka_unit_test_setup_teardown(test_shared_live_conns_empty, setup_shared, teardown_shared),
    };
    return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
