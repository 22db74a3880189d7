#include "sdnotify.h"

#include "log.h"
#include "report.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

namespace hr {

namespace {
constexpr size_t kMaxPending = 64;
constexpr int64_t kRetryMs = 50;

int64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
} // namespace

SdNotify::~SdNotify() {
    if (fd_ >= 0) close(fd_);
}

bool SdNotify::open_from_env(std::string *err) {
    const char *v = getenv("NOTIFY_SOCKET");
    if (!v || !*v) return true;
    where_ = v;
    const size_t len = strlen(v);
    if ((v[0] != '/' && v[0] != '@') || len >= sizeof addr_.sun_path || (v[0] == '@' && len < 2)) {
        *err = "NOTIFY_SOCKET='" + escape_text(where_) + "' is neither an absolute path nor an abstract name (@NAME) "
               "that fits a Unix socket address: not telling the service manager anything";
        return false;
    }
    addr_ = sockaddr_un{};
    addr_.sun_family = AF_UNIX;
    memcpy(addr_.sun_path, v, len);
    if (v[0] == '@') addr_.sun_path[0] = '\0'; // abstract: the name has no terminating NUL in the address
    addrlen_ = socklen_t(offsetof(sockaddr_un, sun_path) + len + (v[0] == '@' ? 0 : 1));
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) {
        *err = std::string("unable to create a socket for NOTIFY_SOCKET: ") + strerror(errno);
        return false;
    }
    return true;
}

std::string SdNotify::status_field(const std::string &text) { return "STATUS=" + escape_text(text); }

std::string SdNotify::monotonic_field() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return "MONOTONIC_USEC=" + std::to_string(uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000);
}

// True when the datagram is dealt with (sent, or dropped for good); false: the queue is full, try later.
bool SdNotify::send_now(const std::string &msg) {
    ssize_t n = sendto(fd_, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr *>(&addr_), addrlen_);
    if (n >= 0) return true;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    if (!warned_) {
        warned_ = true;
        logf("warning: unable to notify the service manager at NOTIFY_SOCKET=%s: %s (said once)",
             escape_text(where_).c_str(), strerror(errno));
    }
    return true;
}

void SdNotify::send(const std::string &msg) {
    if (fd_ < 0) return;
    debugf("sd_notify: %s", escape_text(msg).c_str());
    if (pending_.empty() && send_now(msg)) return;
    if (pending_.size() >= kMaxPending) {
        // A STATUS= alone is superseded by any later one: the first of those goes; else the oldest but the
        // first READY=1 (with MAINPID), which the start job waits for. A reload's datagrams are dropped
        // oldest first, so a later READY=1 still ends any RELOADING=1 that went out.
        auto victim = pending_.end();
        for (auto it = pending_.begin(); it != pending_.end() && victim == pending_.end(); ++it)
            if (it->compare(0, 7, "STATUS=") == 0 && it->find('\n') == std::string::npos) victim = it;
        for (auto it = pending_.begin(); it != pending_.end() && victim == pending_.end(); ++it)
            if (it->find("MAINPID=") == std::string::npos) victim = it;
        pending_.erase(victim);
        if (!dropped_warned_) {
            dropped_warned_ = true;
            logf("warning: the service manager at NOTIFY_SOCKET=%s reads nothing: notifications dropped "
                 "(said once)", escape_text(where_).c_str());
        }
    }
    pending_.push_back(msg);
    if (retry_at_ms_ < 0) retry_at_ms_ = monotonic_ms() + kRetryMs;
}

void SdNotify::starting(const std::string &text) { send(status_field(text)); }

void SdNotify::serving(const std::string &text) {
    if (ready_sent_) {
        send(status_field(text));
        return;
    }
    ready_sent_ = true;
    send("READY=1\nMAINPID=" + std::to_string(getpid()) + "\n" + status_field(text));
}

// RELOADING=1 and its time in one datagram: Type=notify-reload takes the reload as this one only if
// MONOTONIC_USEC is not older than its own reload request.
void SdNotify::reloading(const std::string &text) { send("RELOADING=1\n" + monotonic_field() + "\n" + status_field(text)); }

void SdNotify::reloaded(const std::string &text) { send("READY=1\n" + status_field(text)); }

void SdNotify::stopping(const std::string &text) {
    if (stopping_sent_) return;
    stopping_sent_ = true;
    send("STOPPING=1\n" + status_field(text));
}

void SdNotify::status(const std::string &text) { send(status_field(text)); }

int64_t SdNotify::retry_at() const { return pending_.empty() ? -1 : retry_at_ms_; }

void SdNotify::flush() {
    if (pending_.empty() || monotonic_ms() < retry_at_ms_) return;
    while (!pending_.empty() && send_now(pending_.front())) pending_.pop_front();
    retry_at_ms_ = pending_.empty() ? -1 : monotonic_ms() + kRetryMs;
}

} // namespace hr
