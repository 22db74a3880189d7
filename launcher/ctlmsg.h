// Records from a generation's control socket (shim/protocol.h), with their sender as the kernel names it.
// The launcher's end has SO_PASSCRED, so every record carries SCM_CREDENTIALS: who sent it is never what the
// record says (Msg::pid), and only a process of the generation (its main process or a member of its process
// group) is heard; MSG_HELLO only from the main process. And warnings a generation can trigger at will are
// rate-limited, so that a flood of bad records cannot flood the log.
#pragma once

#include "protocol.h"

#include <stdint.h>
#include <sys/types.h>

namespace hr {

// At most this many descriptors are taken from one record (MSG_REGISTER carries one; the rest of a larger
// batch is closed by the kernel and the record rejected as truncated).
constexpr int kMaxRecordFds = 8;

// Turns SO_PASSCRED on (the launcher's end, before the generation starts). False with errno on failure.
bool ctl_pass_credentials(int fd);

// One datagram or record from a socket with SO_PASSCRED, without blocking: its bytes into buf, its sender as
// the kernel names it (SCM_CREDENTIALS; 0 if none came), and at most max_fds descriptors it carried
// (close-on-exec from the start; any beyond are closed). Returns the byte count, or -1 (nothing to read, or
// an error); *truncated is set for MSG_TRUNC or MSG_CTRUNC. Used for the shim's records and for sd_notify.
ssize_t recv_credentialed(int fd, void *buf, size_t len, pid_t *sender, int *fds, int max_fds, int *nfds,
                          bool *truncated);

struct CtlRecord {
    Msg m;
    size_t len = 0;          // bytes received
    pid_t sender = 0;        // the sending process (SCM_CREDENTIALS); 0: no credentials came with it
    int fds[kMaxRecordFds];  // descriptors received (close-on-exec), owned by the record until taken
    int nfds = 0;
    bool truncated = false;  // MSG_TRUNC or MSG_CTRUNC
    // Closes every descriptor still held.
    void close_fds();
};

enum CtlRead {
    CTL_RECORD, // *rec holds one record
    CTL_EMPTY,  // a zero-length record, or the end (every process closed its end)
    CTL_AGAIN,  // nothing to read now (or an error)
};
// Reads one record without blocking.
CtlRead ctl_read(int fd, CtlRecord *rec);

// How a sender relates to a generation whose main process (and process group) is main_pid. SENDER_GONE: it
// has exited and been reaped since it sent the record, so its process group can no longer be read.
enum Sender { SENDER_OUTSIDE, SENDER_MEMBER, SENDER_MAIN, SENDER_GONE };
Sender classify_sender(pid_t sender, pid_t main_pid);

// Checks a record: its sender, then its shape (msg_check). Returns nullptr if it is to be acted on, else the
// reason it is rejected. Any process of the generation may send any record but MSG_HELLO (the main process
// only); MSG_IDLE is also taken from a sender that is gone (a forked child that closed the last connection
// and exited at once): it is only a hint, which the launcher verifies itself.
const char *ctl_check(const CtlRecord &r, pid_t main_pid);

// Rate limit for the warnings a generation can cause at will (bad records, refused registrations): in each
// window of kWindowMs, the first kShown are logged, the last of them saying that more will only be counted;
// the count is logged before the next warning that is shown, or by flush() when the generation ends.
class WarnLimit {
public:
    static constexpr int kShown = 5;
    static constexpr int64_t kWindowMs = 60000;
    // "warning: gen N: <text>", or counted.
    void warn(int gen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    // Logs the count of warnings not logged, if any.
    void flush(int gen);
    int suppressed() const { return suppressed_; }

private:
    int64_t window_start_ = -1;
    int shown_ = 0;
    int suppressed_ = 0;
};

} // namespace hr
