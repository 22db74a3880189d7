// The life of one generation as an explicit table of states x events -> (next state, action).
// Pure: no syscalls. The supervisor turns events into calls of gen_transition() and carries out the action.
//
//   STARTING --ready--> SERVING --superseded/shutdown--> DRAINING --idle/drain timeout--> STOPPING
//      |                   |                                                    (stop signal sent)
//      | exited / not ready in time: ROLLBACK (drained like an old one)              | kill timeout
//      v                   v exited on its own: LOST                                 v
//   DRAINING ...        DRAINING ...                                              KILLING (SIGKILL)
//   DRAINING/STOPPING/KILLING --empty (main reaped, process group gone)--> GONE (a main process that exits
//   while STARTING or SERVING first moves the generation to DRAINING with EXITED)
#pragma once

namespace hr {

enum GenState { GS_STARTING, GS_SERVING, GS_DRAINING, GS_STOPPING, GS_KILLING, GS_GONE, GS_COUNT };

enum GenEvent {
    EV_READY,         // claimed every inherited listener and listened on it (or no listener to claim)
    EV_READY_TIMEOUT, // --ready-timeout passed while starting
    EV_EXITED,        // the main process was reaped
    EV_SUPERSEDE,     // stop accepting: a newer generation is ready, or the launcher is stopping
    EV_IDLE,          // the live connection count reached zero
    EV_DRAIN_TIMEOUT, // --drain-timeout passed while draining
    EV_KILL_TIMEOUT,  // --kill-timeout passed after the stop signal (or after SIGKILL: still not gone)
    EV_FORCE_STOP,    // a second SIGTERM/SIGINT: stop now
    EV_EMPTY,         // the main process is reaped and no process of the group is left
    EV_COUNT
};

enum GenAction {
    A_NONE,     // nothing to do
    A_PROMOTE,  // this generation now serves; supersede the previous one
    A_ROLLBACK, // a reload failed: log why, stop accepting, then stop it like a drained generation
    A_LOST,     // the serving generation's main process exited on its own
    A_DRAIN,    // set the drain flag, wake the acceptors, arm the drain deadline, check idle now
    A_STOP,     // send the stop signal to the process group, arm the kill deadline
    A_KILL,     // SIGKILL the process group, arm a deadline to report it if it is still there
    A_GONE,     // release everything the generation held
    A_INVALID,  // impossible pair: a bug in the supervisor; state unchanged
};

struct Transition {
    GenState next;
    GenAction action;
};

Transition gen_transition(GenState s, GenEvent e);
const char *gen_state_name(GenState s);
const char *gen_event_name(GenEvent e);

} // namespace hr
