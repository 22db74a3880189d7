// Unit tests for launcher/genstate.cc: the generation lifecycle table.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 declares its functions without extern "C" for C++ callers.
extern "C" {
#include <cmocka.h>
}

#include <string.h>

#include "genstate.h"

using namespace hr;

namespace {

void expect(GenState s, GenEvent e, GenState next, GenAction action) {
    Transition t = gen_transition(s, e);
    if (t.next != next || t.action != action)
        fail_msg("%s + %s: got (%s, action %d), want (%s, action %d)", gen_state_name(s), gen_event_name(e),
                 gen_state_name(t.next), int(t.action), gen_state_name(next), int(action));
}

GenState S(int i) { return static_cast<GenState>(i); }
GenEvent E(int i) { return static_cast<GenEvent>(i); }

// ---------------------------------------------------------------- documented paths

void test_starting(void **) {
    expect(GS_STARTING, EV_READY, GS_TRIAL, A_PROMOTE);
    expect(GS_STARTING, EV_READY_TIMEOUT, GS_DRAINING, A_ROLLBACK);
    expect(GS_STARTING, EV_EXITED, GS_DRAINING, A_ROLLBACK);
    expect(GS_STARTING, EV_SUPERSEDE, GS_DRAINING, A_DRAIN);
}

// A generation on trial is rolled back by anything that shows it broken before its window ends.
void test_trial(void **) {
    expect(GS_TRIAL, EV_CONFIRMED, GS_SERVING, A_CONFIRM);
    expect(GS_TRIAL, EV_EXITED, GS_DRAINING, A_ROLLBACK);
    expect(GS_TRIAL, EV_CHECK_FAILED, GS_DRAINING, A_ROLLBACK);
    expect(GS_TRIAL, EV_READY_TIMEOUT, GS_DRAINING, A_ROLLBACK);
    expect(GS_TRIAL, EV_SUPERSEDE, GS_DRAINING, A_DRAIN);
    expect(GS_TRIAL, EV_FORCE_STOP, GS_STOPPING, A_STOP);
    expect(GS_TRIAL, EV_READY, GS_TRIAL, A_NONE);
}

// Standing by: paused, not drained; it either resumes or drains for good.
void test_standby(void **) {
    expect(GS_SERVING, EV_STANDBY, GS_STANDBY, A_PAUSE);
    expect(GS_STANDBY, EV_RESUME, GS_SERVING, A_RESUME);
    expect(GS_STANDBY, EV_RELEASE, GS_DRAINING, A_CONTINUE);
    expect(GS_STANDBY, EV_SUPERSEDE, GS_DRAINING, A_CONTINUE);
    expect(GS_STANDBY, EV_EXITED, GS_DRAINING, A_LOST);
    expect(GS_STANDBY, EV_FORCE_STOP, GS_STOPPING, A_STOP);
    // Idle while standing by does not stop it: the newer generation may still fail.
    expect(GS_STANDBY, EV_IDLE, GS_STANDBY, A_NONE);
    // Only a standing-by generation can resume or be released.
    for (int s = 0; s < GS_COUNT; ++s) {
        if (s == GS_STANDBY || s >= GS_DRAINING) continue;
        assert_int_equal(gen_transition(S(s), EV_RESUME).action, A_INVALID);
        assert_int_equal(gen_transition(S(s), EV_RELEASE).action, A_INVALID);
    }
}

void test_serving(void **) {
    expect(GS_SERVING, EV_SUPERSEDE, GS_DRAINING, A_DRAIN);
    expect(GS_SERVING, EV_EXITED, GS_DRAINING, A_LOST);
}

void test_draining(void **) {
    expect(GS_DRAINING, EV_IDLE, GS_STOPPING, A_STOP);
    expect(GS_DRAINING, EV_DRAIN_TIMEOUT, GS_STOPPING, A_STOP);
}

void test_stopping_killing(void **) {
    expect(GS_STOPPING, EV_KILL_TIMEOUT, GS_KILLING, A_KILL);
    expect(GS_KILLING, EV_KILL_TIMEOUT, GS_KILLING, A_KILL);
}

void test_empty(void **) {
    expect(GS_DRAINING, EV_EMPTY, GS_GONE, A_GONE);
    expect(GS_STOPPING, EV_EMPTY, GS_GONE, A_GONE);
    expect(GS_KILLING, EV_EMPTY, GS_GONE, A_GONE);
}

void test_force_stop(void **) {
    expect(GS_STARTING, EV_FORCE_STOP, GS_STOPPING, A_STOP);
    expect(GS_SERVING, EV_FORCE_STOP, GS_STOPPING, A_STOP);
    expect(GS_DRAINING, EV_FORCE_STOP, GS_STOPPING, A_STOP);
    expect(GS_STOPPING, EV_FORCE_STOP, GS_KILLING, A_KILL);
}

// ---------------------------------------------------------------- every (state, event) pair

void test_all_pairs_valid_result(void **) {
    for (int s = 0; s < GS_COUNT; ++s)
        for (int e = 0; e < EV_COUNT; ++e) {
            Transition t = gen_transition(S(s), E(e));
            if (t.next < 0 || t.next >= GS_COUNT)
                fail_msg("%s + %s -> invalid state %d", gen_state_name(S(s)), gen_event_name(E(e)), int(t.next));
            if (t.action < A_NONE || t.action > A_INVALID)
                fail_msg("%s + %s -> invalid action %d", gen_state_name(S(s)), gen_event_name(E(e)), int(t.action));
        }
}

void test_invalid_and_ignored_keep_state(void **) {
    for (int s = 0; s < GS_COUNT; ++s)
        for (int e = 0; e < EV_COUNT; ++e) {
            Transition t = gen_transition(S(s), E(e));
            if (t.action == A_INVALID && t.next != S(s))
                fail_msg("%s + %s: A_INVALID changed the state to %s", gen_state_name(S(s)), gen_event_name(E(e)),
                         gen_state_name(t.next));
            if (t.action == A_NONE && t.next != S(s))
                fail_msg("%s + %s: A_NONE changed the state to %s", gen_state_name(S(s)), gen_event_name(E(e)),
                         gen_state_name(t.next));
        }
}

void test_gone_ignores_everything(void **) {
    for (int e = 0; e < EV_COUNT; ++e) expect(GS_GONE, E(e), GS_GONE, A_NONE);
}

void test_only_empty_leads_to_gone(void **) {
    for (int s = 0; s < GS_COUNT; ++s) {
        if (s == GS_GONE) continue;
        for (int e = 0; e < EV_COUNT; ++e) {
            Transition t = gen_transition(S(s), E(e));
            if (e != EV_EMPTY && t.next == GS_GONE)
                fail_msg("%s + %s leads to gone", gen_state_name(S(s)), gen_event_name(E(e)));
            // Entering GONE always comes with A_GONE (the resources are released exactly once).
            if (t.next == GS_GONE && t.action != A_GONE)
                fail_msg("%s + %s enters gone without A_GONE", gen_state_name(S(s)), gen_event_name(E(e)));
        }
    }
}

void test_every_state_reaches_gone(void **) {
    for (int start = 0; start < GS_COUNT; ++start) {
        bool seen[GS_COUNT] = {};
        int queue[GS_COUNT];
        int head = 0, tail = 0;
        seen[start] = true;
        queue[tail++] = start;
        while (head < tail) {
            int s = queue[head++];
            for (int e = 0; e < EV_COUNT; ++e) {
                Transition t = gen_transition(S(s), E(e));
                if (t.action == A_INVALID) continue;
                if (!seen[t.next]) {
                    seen[t.next] = true;
                    queue[tail++] = t.next;
                }
            }
        }
        if (!seen[GS_GONE]) fail_msg("no path from %s to gone", gen_state_name(S(start)));
    }
}

// The lifecycle only moves forward: no valid transition returns to an earlier state, except a
// standing-by generation that resumes serving.
void test_no_way_back(void **) {
    for (int s = 0; s < GS_COUNT; ++s)
        for (int e = 0; e < EV_COUNT; ++e) {
            Transition t = gen_transition(S(s), E(e));
            if (t.action == A_INVALID) continue;
            if (s == GS_STANDBY && e == EV_RESUME) continue;
            if (t.next < S(s))
                fail_msg("%s + %s goes back to %s", gen_state_name(S(s)), gen_event_name(E(e)), gen_state_name(t.next));
        }
}

// ---------------------------------------------------------------- out of range

void test_out_of_range(void **) {
    const int bad_states[] = {GS_COUNT, GS_COUNT + 1, 99, -1};
    const int bad_events[] = {EV_COUNT, EV_COUNT + 1, -1};
    for (int s : bad_states)
        for (int e = 0; e < EV_COUNT; ++e) assert_int_equal(gen_transition(S(s), E(e)).action, A_INVALID);
    for (int s = 0; s < GS_COUNT; ++s)
        for (int e : bad_events) {
            Transition t = gen_transition(S(s), E(e));
            assert_int_equal(t.action, A_INVALID);
            assert_int_equal(t.next, s); // state unchanged
        }
    for (int s : bad_states)
        for (int e : bad_events) assert_int_equal(gen_transition(S(s), E(e)).action, A_INVALID);
}

void test_names(void **) {
    for (int s = 0; s < GS_COUNT; ++s) {
        const char *n = gen_state_name(S(s));
        assert_non_null(n);
        assert_string_not_equal(n, "?");
        assert_true(strlen(n) > 0);
        for (int o = 0; o < s; ++o) assert_string_not_equal(n, gen_state_name(S(o)));
    }
    for (int e = 0; e < EV_COUNT; ++e) {
        const char *n = gen_event_name(E(e));
        assert_non_null(n);
        assert_string_not_equal(n, "?");
        assert_true(strlen(n) > 0);
        for (int o = 0; o < e; ++o) assert_string_not_equal(n, gen_event_name(E(o)));
    }
    assert_string_equal(gen_state_name(GS_COUNT), "?");
    assert_string_equal(gen_state_name(S(100)), "?");
    assert_string_equal(gen_state_name(S(-1)), "?");
    assert_string_equal(gen_event_name(EV_COUNT), "?");
    assert_string_equal(gen_event_name(E(100)), "?");
    assert_string_equal(gen_event_name(E(-1)), "?");
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starting),
        cmocka_unit_test(test_trial),
        cmocka_unit_test(test_standby),
        cmocka_unit_test(test_serving),
        cmocka_unit_test(test_draining),
        cmocka_unit_test(test_stopping_killing),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_force_stop),
        cmocka_unit_test(test_all_pairs_valid_result),
        cmocka_unit_test(test_invalid_and_ignored_keep_state),
        cmocka_unit_test(test_gone_ignores_everything),
        cmocka_unit_test(test_only_empty_leads_to_gone),
        cmocka_unit_test(test_every_state_reaches_gone),
        cmocka_unit_test(test_no_way_back),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("genstate", tests, NULL, NULL);
}
