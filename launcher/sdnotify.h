// sd_notify out: the launcher as a systemd service (Type=notify or Type=notify-reload) tells its own service
// manager what it does, through the NOTIFY_SOCKET it was started with. (The other direction, a generation's
// READY=1 to the launcher under --ready notify, is notify.h; a generation never sees this socket: spawn.cc
// strips NOTIFY_SOCKET.)
//
// What is sent, one datagram per step:
//   first generation started STATUS=
//   first generation ready   READY=1, MAINPID=<launcher pid>, STATUS=
//   a reload starts          RELOADING=1, MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>, STATUS=
//   the reload ends          READY=1, STATUS= (ok, rolled back or aborted: systemd waits for READY=1 either way)
//   the launcher stops       STOPPING=1, STATUS=
//   other changes of state   STATUS= (a crash restart, a restarted generation serving)
// STATUS= is always one line, control characters escaped.
//
// Never blocks the launcher: the socket is non-blocking; a datagram the manager's full queue refuses
// (EAGAIN) is kept, in order, and sent again on a later loop turn (retry_at()); at most 64 wait (beyond, a
// STATUS= alone goes first, else the oldest, never the first READY=1). Any other error is logged once and the datagram dropped (the
// manager is gone: nothing to tell).
#pragma once

#include <deque>
#include <stdint.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>

namespace hr {

class SdNotify {
public:
    ~SdNotify();
    // Reads NOTIFY_SOCKET: "/path" or "@abstract" (a Linux abstract name). Unset or empty: inactive, every
    // call below does nothing. False (with *err) for a value that is not usable; the launcher goes on without.
    bool open_from_env(std::string *err);
    bool active() const { return fd_ >= 0; }
    // One datagram of newline-separated KEY=VALUE assignments (the caller's text is sent as it is).
    void send(const std::string &msg);
    // Datagrams waiting for room in the manager's queue: when to try again (monotonic ms), -1 if none.
    int64_t retry_at() const;
    // Sends what waits, in order, until the queue is full again.
    void flush();
    // The launcher's steps, each one datagram (see above). serving(): READY=1 and MAINPID the first time only,
    // then STATUS= alone (a generation that serves after a crash restart). stopping(): once.
    void starting(const std::string &status);
    void serving(const std::string &status);
    void reloading(const std::string &status);
    void reloaded(const std::string &status);
    void stopping(const std::string &status);
    void status(const std::string &status);
    // STATUS=<text> with newlines and other control characters escaped.
    static std::string status_field(const std::string &text);
    // MONOTONIC_USEC=<now>.
    static std::string monotonic_field();

private:
    bool send_now(const std::string &msg);
    int fd_ = -1;
    std::string where_; // NOTIFY_SOCKET as given, for messages
    sockaddr_un addr_{};
    socklen_t addrlen_ = 0;
    std::deque<std::string> pending_;
    int64_t retry_at_ms_ = -1;
    bool warned_ = false;         // a send failed for good (said once)
    bool dropped_warned_ = false; // the queue overflowed (said once)
    bool ready_sent_ = false;
    bool stopping_sent_ = false;
};

} // namespace hr
