#include "genstate.h"

namespace hr {
namespace {

constexpr Transition T(GenState s, GenAction a) { return Transition{s, a}; }
constexpr Transition X = {GS_COUNT, A_INVALID}; // impossible: keep the state
constexpr Transition K = {GS_COUNT, A_NONE};    // ignored: keep the state

// Rows: states; columns: events in GenEvent order.
//                     READY                    READY_TIMEOUT              EXITED                     SUPERSEDE                 IDLE                     DRAIN_TIMEOUT            KILL_TIMEOUT            FORCE_STOP               EMPTY
const Transition kTable[GS_COUNT][EV_COUNT] = {
    /* STARTING */ {T(GS_SERVING, A_PROMOTE), T(GS_DRAINING, A_ROLLBACK), T(GS_DRAINING, A_ROLLBACK), T(GS_DRAINING, A_DRAIN), K,                      X,                        X,                      T(GS_STOPPING, A_STOP), X},
    /* SERVING  */ {K,                        X,                          T(GS_DRAINING, A_LOST),     T(GS_DRAINING, A_DRAIN), K,                      X,                        X,                      T(GS_STOPPING, A_STOP), X},
    /* DRAINING */ {K,                        K,                          K,                          K,                       T(GS_STOPPING, A_STOP), T(GS_STOPPING, A_STOP),   X,                      T(GS_STOPPING, A_STOP), T(GS_GONE, A_GONE)},
    /* STOPPING */ {K,                        K,                          K,                          K,                       K,                      K,                        T(GS_KILLING, A_KILL),  T(GS_KILLING, A_KILL),  T(GS_GONE, A_GONE)},
    /* KILLING  */ {K,                        K,                          K,                          K,                       K,                      K,                        T(GS_KILLING, A_KILL),  K,                      T(GS_GONE, A_GONE)},
    /* GONE     */ {K,                        K,                          K,                          K,                       K,                      K,                        K,                      K,                      K},
};

} // namespace

Transition gen_transition(GenState s, GenEvent e) {
    if (s < 0 || s >= GS_COUNT || e < 0 || e >= EV_COUNT) return Transition{s, A_INVALID};
    Transition t = kTable[s][e];
    if (t.next == GS_COUNT) t.next = s;
    return t;
}

const char *gen_state_name(GenState s) {
    static const char *const names[] = {"starting", "serving", "draining", "stopping", "killing", "gone"};
    return (s >= 0 && s < GS_COUNT) ? names[s] : "?";
}

const char *gen_event_name(GenEvent e) {
    static const char *const names[] = {"ready", "ready-timeout", "exited", "supersede", "idle",
                                        "drain-timeout", "kill-timeout", "force-stop", "empty"};
    return (e >= 0 && e < EV_COUNT) ? names[e] : "?";
}

} // namespace hr
