// Preloaded epoll tests: this program runs as generation 1 under build/hotrestart (make unit does), so the
// shim is active. EPOLLEXCLUSIVE on a shared socket: the kernel's registration (read from
// /proc/self/fdinfo of the epoll set) goes without the flag, so a draining generation cannot swallow the
// one wake-up of a new connection; the program's own view (what epoll_ctl() answers) is what the kernel
// answers for an exclusive registration, checked against the kernel itself on a socket the shim does not
// share (an unconnected socket) and through syscall(), which the shim does not see.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

int tcp_listener() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

// The events the kernel holds for fd in epoll set ep, or -1 if it holds no registration.
long kernel_events(int ep, int fd) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long out = -1;
    while (fgets(line, sizeof line, f)) {
        int tfd;
        unsigned events;
        if (sscanf(line, "tfd: %d events: %x", &tfd, &events) == 2 && tfd == fd) out = long(events);
    }
    fclose(f);
    return out;
}

// epoll_ctl through the wrapper or straight to the kernel: 0, or the errno.
int ctl(int ep, int op, int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = 7;
    return epoll_ctl(ep, op, fd, &ev) == 0 ? 0 : errno;
}
int raw_ctl(int ep, int op, int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = 7;
    return syscall(SYS_epoll_ctl, ep, op, fd, &ev) == 0 ? 0 : errno;
}

void test_exclusive_listener_is_registered_without_the_flag(void **) {
    int fd = tcp_listener();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLEXCLUSIVE), 0);
    long k = kernel_events(ep, fd);
    assert_true(k >= 0);
    assert_true(k & EPOLLIN);
    assert_false(k & EPOLLEXCLUSIVE);
    // Still a working registration: a connection makes it readable.
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &l), 0);
    assert_int_equal(connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    epoll_event out[2];
    assert_int_equal(epoll_wait(ep, out, 2, 5000), 1);
    assert_int_equal(out[0].data.u64, 7);
    assert_int_equal(ctl(ep, EPOLL_CTL_DEL, fd, 0), 0);
    assert_int_equal(kernel_events(ep, fd), -1);
    close(c);
    close(ep);
    close(fd);
}

// Each step through the wrapper on the shared listener, and straight to the kernel on a socket nobody
// shares: the same answers.
void test_exclusive_registration_answers_as_the_kernel_does(void **) {
    int fd = tcp_listener();
    int plain = socket(AF_INET, SOCK_STREAM, 0); // never bound: not shared, the kernel's own answers
    assert_true(plain >= 0);
    int ep = epoll_create1(EPOLL_CLOEXEC), kep = epoll_create1(EPOLL_CLOEXEC);
    struct Step {
        int op;
        uint32_t events;
    } steps[] = {
        {EPOLL_CTL_ADD, EPOLLIN | EPOLLEXCLUSIVE | EPOLLRDHUP}, // a flag EPOLLEXCLUSIVE may not go with
        {EPOLL_CTL_ADD, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT},
        {EPOLL_CTL_ADD, EPOLLIN | EPOLLET | EPOLLEXCLUSIVE},
        {EPOLL_CTL_ADD, EPOLLIN | EPOLLEXCLUSIVE},              // already there
        {EPOLL_CTL_MOD, EPOLLIN},                               // an exclusive registration is never modified
        {EPOLL_CTL_MOD, EPOLLIN | EPOLLEXCLUSIVE},
        {EPOLL_CTL_DEL, 0},
        {EPOLL_CTL_MOD, EPOLLIN | EPOLLEXCLUSIVE},              // MOD with the flag: refused before the lookup
        {EPOLL_CTL_ADD, EPOLLIN},
        {EPOLL_CTL_MOD, EPOLLIN | EPOLLEXCLUSIVE},
        {EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT},                    // not exclusive: modified
        {EPOLL_CTL_DEL, 0},
    };
    for (const Step &s : steps) {
        int want = raw_ctl(kep, s.op, plain, s.events);
        int got = ctl(ep, s.op, fd, s.events);
        if (got != want) fprintf(stderr, "op %d events %#x: the kernel says %d, the wrapper %d\n", s.op, s.events, want, got);
        assert_int_equal(got, want);
    }
    close(ep);
    close(kep);
    close(plain);
    close(fd);
}

// Not a shared socket: the flag goes to the kernel as the program wrote it.
void test_exclusive_flag_kept_for_other_descriptors(void **) {
    int efd = eventfd(0, EFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE), 0);
    assert_true(kernel_events(ep, efd) & EPOLLEXCLUSIVE);
    close(ep);
    close(efd);
}

} // namespace

int main() {
    // Under the launcher, the shim strips itself from LD_PRELOAD once active: its absence tells.
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "libhotrestart")) {
        fprintf(stderr, "preload_epoll: run me under build/hotrestart (make unit does)\n");
        return 2;
    }
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusive_listener_is_registered_without_the_flag),
        cmocka_unit_test(test_exclusive_registration_answers_as_the_kernel_does),
        cmocka_unit_test(test_exclusive_flag_kept_for_other_descriptors),
    };
    return cmocka_run_group_tests_name("preloaded epoll", tests, nullptr, nullptr);
}
