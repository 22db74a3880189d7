// The life of one generation as an explicit table of states x events -> (next state, action).
// Pure: no syscalls. The supervisor turns events into calls of gen_transition() and carries out the action.
//
//   STARTING --ready--> TRIAL --confirmed--> SERVING --superseded/shutdown--> DRAINING --idle/drain timeout-->
//      |                  |  (rollback window,   |  \--standby--> STANDBY --release--> DRAINING  STOPPING
//      |                  |   --ready-check)     |  (a newer one   |  (stopped accepting,         (stop signal)
//      |                  |                      |   is on trial)  |   not yet drained)             | kill timeout
//      | exited / not ready in time / check failed: ROLLBACK        \--resume (the newer one failed)-> SERVING
//      v                  v                      v exited on its own: LOST                          v
//   DRAINING ...       DRAINING ...           DRAINING ...                                        KILLING (SIGKILL)
//   DRAINING/STOPPING/KILLING --empty (main reaped, process group gone)--> GONE (a main process that exits
//   while STARTING, TRIAL, SERVING or STANDBY first moves the generation to DRAINING with EXITED)
#pragma once

namespace hr {

enum GenState {
    GS_STARTING, // started, not ready yet (readiness: --ready)
    GS_TRIAL,    // ready and accepting; the previous generation stands by until the rollback window and the
                 // --ready-check are over
    GS_SERVING,
    GS_STANDBY,  // superseded by a generation on trial: not accepting, not stopped, may resume
    GS_DRAINING,
    GS_STOPPING,
    GS_KILLING,
    GS_GONE,
    GS_COUNT
};

enum GenEvent {
    EV_READY,         // the --ready condition holds
    EV_READY_TIMEOUT, // --ready-timeout passed while starting (or while its --ready-check ran)
    EV_EXITED,        // the main process was reaped
    EV_SUPERSEDE,     // stop accepting for good: a newer generation is confirmed, or the launcher is stopping
    EV_IDLE,          // the live connection count reached zero
    EV_DRAIN_TIMEOUT, // --drain-timeout passed while draining
    EV_KILL_TIMEOUT,  // --kill-timeout passed after the stop signal (or after SIGKILL: still not gone)
    EV_FORCE_STOP,    // a second SIGTERM/SIGINT: stop now
    EV_EMPTY,         // the main process is reaped and no process of the group is left
    EV_CONFIRMED,     // on trial: the rollback window passed and the --ready-check (if any) succeeded
    EV_CHECK_FAILED,  // on trial: the --ready-check failed
    EV_STANDBY,       // serving: a newer generation went on trial
    EV_RESUME,        // standing by: the newer generation failed its trial
    EV_RELEASE,       // standing by: the newer generation was confirmed
    EV_COUNT
};

enum GenAction {
    A_NONE,      // nothing to do
    A_PROMOTE,   // this generation accepts and goes on trial; the serving one stands by
    A_CONFIRM,   // the trial is over: the reload succeeded; release the standby generation
    A_ROLLBACK,  // a reload failed: report why, resume the standby generation, stop accepting, then stop
                 // this one like a drained generation
    A_LOST,      // a generation that served (or stood by) exited on its own
    A_DRAIN,     // set the drain flag, wake the acceptors, arm the drain deadline, check idle now
    A_PAUSE,     // set the drain flag and wake the acceptors, but arm nothing: it may resume
    A_RESUME,    // lower the drain flag: it accepts again
    A_CONTINUE,  // a paused generation drains for good: arm the drain deadline (from the pause), check idle
    A_STOP,      // send the stop signal to the process group, arm the kill deadline
    A_KILL,      // SIGKILL the process group, arm a deadline to report it if it is still there
    A_GONE,      // release everything the generation held
    A_INVALID,   // impossible pair: a bug in the supervisor; state unchanged
};

struct Transition {
    GenState next;
    GenAction action;
};

Transition gen_transition(GenState s, GenEvent e);
const char *gen_state_name(GenState s);
const char *gen_event_name(GenEvent e);

} // namespace hr
