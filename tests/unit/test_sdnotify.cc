// Unit tests for launcher/sdnotify.cc, the launcher's datagrams to its own NOTIFY_SOCKET, on real Unix
// datagram sockets (a path in a temporary directory, an abstract name): what is sent byte for byte, values
// it refuses, and a manager whose queue is full (nothing blocks, nothing is reordered, READY=1 is never the
// datagram dropped when too much waits).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sdnotify.h"

using namespace hr;

namespace {

// A manager's socket bound to name ("@..." abstract, else a path); returns the descriptor.
int manager(const std::string &name) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, name.data(), name.size());
    socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') a.sun_path[0] = '\0';
    else len += 1;
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), len), 0);
    return fd;
}

// The next datagram, or "" if none is waiting.
std::string next(int fd) {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buf, size_t(n));
}

std::string abstract_name() { return "@hotrestart-unit/" + std::to_string(getpid()) + "/" + std::to_string(rand()); }

int64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void test_inactive_without_notify_socket(void **) {
    unsetenv("NOTIFY_SOCKET");
    SdNotify sd;
    std::string err;
    assert_true(sd.open_from_env(&err));
    assert_false(sd.active());
    sd.serving("x"); // nothing to send to, nothing kept
    assert_int_equal(sd.retry_at(), -1);
}

void test_unusable_values_are_refused(void **) {
    for (const char *v : {"relative/notify", "@", "vsock:2:1234"}) {
        setenv("NOTIFY_SOCKET", v, 1);
        SdNotify sd;
        std::string err;
        assert_false(sd.open_from_env(&err));
        assert_false(sd.active());
        assert_non_null(strstr(err.c_str(), "neither an absolute path nor an abstract name"));
    }
    setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'a')).c_str(), 1); // longer than sun_path
    SdNotify sd;
    std::string err;
    assert_false(sd.open_from_env(&err));
    unsetenv("NOTIFY_SOCKET");
}

void test_datagrams_byte_for_byte(void **) {
    char dir[] = "/tmp/hr-sdnotify-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const std::string path = std::string(dir) + "/notify";
    for (const std::string &where : {path, abstract_name()}) {
        int m = manager(where);
        setenv("NOTIFY_SOCKET", where.c_str(), 1);
        SdNotify sd;
        std::string err;
        assert_true(sd.open_from_env(&err));
        assert_true(sd.active());
        sd.starting("gen 1 starting");
        sd.serving("gen 1 serving");
        sd.serving("gen 2 serving"); // READY=1 and MAINPID only the first time
        sd.reloading("reload 1\nstarting"); // one line: the newline is escaped
        sd.reloaded("reload 1 ok");
        sd.stopping("stopping");
        sd.stopping("stopping"); // once
        assert_string_equal(next(m).c_str(), "STATUS=gen 1 starting");
        assert_string_equal(next(m).c_str(), ("READY=1\nMAINPID=" + std::to_string(getpid()) + "\nSTATUS=gen 1 serving").c_str());
        assert_string_equal(next(m).c_str(), "STATUS=gen 2 serving");
        const std::string r = next(m);
        const int64_t before = int64_t(strtoll(r.c_str() + r.find("MONOTONIC_USEC=") + 15, nullptr, 10));
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        assert_true(before <= int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
        assert_string_equal(r.substr(0, 27).c_str(), "RELOADING=1\nMONOTONIC_USEC=");
        assert_string_equal(r.substr(r.find("\nSTATUS=")).c_str(), "\nSTATUS=reload 1\\x0astarting");
        assert_string_equal(next(m).c_str(), "READY=1\nSTATUS=reload 1 ok");
        assert_string_equal(next(m).c_str(), "STOPPING=1\nSTATUS=stopping");
        assert_string_equal(next(m).c_str(), "");
        assert_int_equal(sd.retry_at(), -1);
        close(m);
    }
    unlink(path.c_str());
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

void test_full_queue_waits_in_order_and_keeps_ready(void **) {
    const std::string where = abstract_name();
    int m = manager(where);
    // Fill the manager's queue from another socket until the kernel refuses more.
    int filler = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path + 1, where.data() + 1, where.size() - 1);
    const socklen_t alen = socklen_t(offsetof(sockaddr_un, sun_path) + where.size());
    int queued = 0;
    while (sendto(filler, "F", 1, 0, reinterpret_cast<sockaddr *>(&a), alen) == 1) ++queued;
    assert_int_equal(errno, EAGAIN);
    setenv("NOTIFY_SOCKET", where.c_str(), 1);
    SdNotify sd;
    std::string err;
    assert_true(sd.open_from_env(&err));
    const int64_t t0 = monotonic_ms();
    sd.serving("first");
    for (int i = 0; i < 70; ++i) sd.status("s" + std::to_string(i));
    sd.reloading("r");
    assert_true(monotonic_ms() - t0 < 1000); // nothing blocked
    assert_true(sd.retry_at() > 0);
    // 72 datagrams for at most 64 places: the 8 oldest STATUS= alone went, READY=1 and RELOADING=1 stay.
    std::vector<std::string> got;
    for (int guard = 0; guard < 1000; ++guard) {
        for (std::string d = next(m); !d.empty(); d = next(m))
            if (d != "F") got.push_back(d);
        if (sd.retry_at() < 0) break;
        const int64_t wait = sd.retry_at() - monotonic_ms();
        if (wait > 0) poll(nullptr, 0, int(wait)); // the retry is a deadline of the code under test
        sd.flush();
    }
    for (std::string d = next(m); !d.empty(); d = next(m)) got.push_back(d);
    assert_true(queued > 0);
    assert_int_equal(got.size(), 64);
    assert_int_equal(got.front().compare(0, 8, "READY=1\n"), 0);
    for (int i = 0; i < 62; ++i) assert_string_equal(got[size_t(i) + 1].c_str(), ("STATUS=s" + std::to_string(i + 8)).c_str());
    assert_int_equal(got.back().compare(0, 12, "RELOADING=1\n"), 0);

    // Only reloads wait now (no STATUS= alone): the oldest go, but never the first READY=1.
    got.clear();
    while (sendto(filler, "F", 1, 0, reinterpret_cast<sockaddr *>(&a), alen) == 1) {
    }
    SdNotify again;
    assert_true(again.open_from_env(&err));
    again.serving("first");
    for (int i = 0; i < 40; ++i) {
        again.reloading("r" + std::to_string(i));
        again.reloaded("d" + std::to_string(i));
    }
    for (int guard = 0; guard < 1000; ++guard) {
        for (std::string d = next(m); !d.empty(); d = next(m))
            if (d != "F") got.push_back(d);
        if (again.retry_at() < 0) break;
        const int64_t wait = again.retry_at() - monotonic_ms();
        if (wait > 0) poll(nullptr, 0, int(wait));
        again.flush();
    }
    assert_int_equal(got.size(), 64);
    assert_int_equal(got.front().compare(0, 16, "READY=1\nMAINPID="), 0);
    // 81 for 64 places: the 17 oldest after READY=1 went (r0, d0, ... r8), the first left is d8.
    assert_string_equal(got[1].c_str(), "READY=1\nSTATUS=d8");
    assert_int_equal(got[2].compare(0, 12, "RELOADING=1\n"), 0);
    assert_string_equal(got.back().c_str(), "READY=1\nSTATUS=d39");
    close(filler);
    close(m);
    unsetenv("NOTIFY_SOCKET");
}

} // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inactive_without_notify_socket),
        cmocka_unit_test(test_unusable_values_are_refused),
        cmocka_unit_test(test_datagrams_byte_for_byte),
        cmocka_unit_test(test_full_queue_waits_in_order_and_keeps_ready),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
