// The sentinel: a small process forked by the launcher at start that outlives it. If the launcher dies
// (even by SIGKILL), nothing of hotrestart may go on serving unsupervised, nor keep the ports: the
// sentinel sees its pipe from the launcher close without a goodbye and sends the stop signal to every
// process group the launcher told it about, then SIGKILL after the kill timeout.
//
// The launcher tells it each generation's process group when it starts (and the groups of processes that
// left it), and forgets them when they are gone, so the sentinel only ever signals groups that were alive
// a tick ago. (A group that emptied in the last moments before the launcher died, whose number was
// reused at once, is the one case it cannot rule out; pids are handed out in increasing order, so this
// needs the pid space to wrap around within that moment.)
#pragma once

#include <sys/types.h>

namespace hr {

class Sentinel {
public:
    ~Sentinel();
    // Forks the sentinel. False if it could not be started (hot restart still works without it).
    bool start(int stop_signal, double kill_timeout);
    pid_t pid() const { return pid_; }
    void watch(pid_t pgid);
    void forget(pid_t pgid);
    // It exited (the launcher reaped it): nothing more to tell it.
    void lost();
    // A clean exit of the launcher: the sentinel leaves without stopping anything; it is reaped here.
    void finish();

private:
    void send(char op, pid_t pgid);
    int wfd_ = -1;
    pid_t pid_ = -1;
};

} // namespace hr
