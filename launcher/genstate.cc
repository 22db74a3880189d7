#include "genstate.h"

namespace hr {
namespace {

constexpr Transition T(GenState s, GenAction a) { return Transition{s, a}; }
constexpr Transition X = {GS_COUNT, A_INVALID}; // impossible: keep the state
constexpr Transition K = {GS_COUNT, A_NONE};    // ignored: keep the state

constexpr Transition DRAIN = T(GS_DRAINING, A_DRAIN);
constexpr Transition STOP = T(GS_STOPPING, A_STOP);
constexpr Transition ROLLBACK = T(GS_DRAINING, A_ROLLBACK);
constexpr Transition GONE = T(GS_GONE, A_GONE);

// Rows: states; columns: events in GenEvent order.
const Transition kTable[GS_COUNT][EV_COUNT] = {
    //             READY                      READY_TIMEOUT EXITED                   SUPERSEDE                     IDLE  DRAIN_TIMEOUT KILL_TIMEOUT             FORCE_STOP               EMPTY CONFIRMED                  CHECK_FAILED STANDBY                    RESUME                    RELEASE
    /* STARTING */ {T(GS_TRIAL, A_PROMOTE), ROLLBACK,     ROLLBACK,                DRAIN,                        K,    X,            X,                       STOP,                    X,    X,                         X,           X,                         X,                        X},
    /* TRIAL    */ {K,                      ROLLBACK,     ROLLBACK,                DRAIN,                        K,    X,            X,                       STOP,                    X,    T(GS_SERVING, A_CONFIRM), ROLLBACK,    X,                         X,                        X},
    /* SERVING  */ {K,                      X,            T(GS_DRAINING, A_LOST),  DRAIN,                        K,    X,            X,                       STOP,                    X,    X,                         X,           T(GS_STANDBY, A_PAUSE),   X,                        X},
    /* STANDBY  */ {K,                      X,            T(GS_DRAINING, A_LOST),  T(GS_DRAINING, A_CONTINUE),   K,    X,            X,                       STOP,                    X,    X,                         X,           X,                         T(GS_SERVING, A_RESUME), T(GS_DRAINING, A_CONTINUE)},
    /* DRAINING */ {K,                      K,            K,                       K,                            STOP, STOP,         X,                       STOP,                    GONE, K,                         K,           K,                         K,                        K},
    /* STOPPING */ {K,                      K,            K,                       K,                            K,    K,            T(GS_KILLING, A_KILL),  T(GS_KILLING, A_KILL),  GONE, K,                         K,           K,                         K,                        K},
    /* KILLING  */ {K,                      K,            K,                       K,                            K,    K,            T(GS_KILLING, A_KILL),  K,                       GONE, K,                         K,           K,                         K,                        K},
    /* GONE     */ {K,                      K,            K,                       K,                            K,    K,            K,                       K,                       K,    K,                         K,           K,                         K,                        K},
};

} // namespace

Transition gen_transition(GenState s, GenEvent e) {
    if (s < 0 || s >= GS_COUNT || e < 0 || e >= EV_COUNT) return Transition{s, A_INVALID};
    Transition t = kTable[s][e];
    if (t.next == GS_COUNT) t.next = s;
    return t;
}

const char *gen_state_name(GenState s) {
    static const char *const names[] = {"starting", "trial",    "serving", "standby",
                                        "draining", "stopping", "killing", "gone"};
    static_assert(sizeof names / sizeof names[0] == GS_COUNT, "a name per state");
    return (s >= 0 && s < GS_COUNT) ? names[s] : "?";
}

const char *gen_event_name(GenEvent e) {
    static const char *const names[] = {"ready", "ready-timeout", "exited", "supersede", "idle",
                                        "drain-timeout", "kill-timeout", "force-stop", "empty", "confirmed",
                                        "check-failed", "standby", "resume", "release"};
    static_assert(sizeof names / sizeof names[0] == EV_COUNT, "a name per event");
    return (e >= 0 && e < EV_COUNT) ? names[e] : "?";
}

} // namespace hr
