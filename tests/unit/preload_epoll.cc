// Preloaded epoll tests: this program runs as generation 1 under build/hotrestart (make unit does), so the
// shim is active. EPOLLEXCLUSIVE on a shared socket: outside a reload the kernel holds the registration as
// the program made it (read from /proc/self/fdinfo of the epoll set), flag included, plus the shim's hidden
// registration of the generation's wake eventfd. Once that eventfd is written (what the launcher does
// before it raises the drain flag; here the test writes it itself, through syscall()), the next wait
// re-registers the shared socket without the flag and takes the hidden registration out; read back (a
// called-off drain), the next wait puts both back. The program's own view (what epoll_ctl() and
// epoll_wait() answer) stays what the kernel answers for an exclusive registration, checked against the
// kernel itself on a socket the shim does not share (an unconnected socket).
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
#include <time.h>
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

struct Kernel {
    long events = -1;    // what the kernel holds for the descriptor asked about, -1: no registration
    int others = 0;      // registrations of other descriptors
    int other_fd = -1;   // the last of them
    long other_events = -1;
};

// What the kernel holds in epoll set ep, for fd and for anything else.
Kernel kernel_view(int ep, int fd) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    Kernel k;
    while (fgets(line, sizeof line, f)) {
        int tfd;
        unsigned events;
        if (sscanf(line, "tfd: %d events: %x", &tfd, &events) != 2) continue;
        if (tfd == fd) {
            k.events = long(events);
        } else {
            ++k.others;
            k.other_fd = tfd;
            k.other_events = long(events);
        }
    }
    fclose(f);
    return k;
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

int64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void connect_to(int listener, int *out) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(listener, reinterpret_cast<sockaddr *>(&a), &l), 0);
    assert_int_equal(connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    *out = c;
}

void test_exclusive_listener_stays_exclusive_until_the_prepare(void **) {
    int fd = tcp_listener();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLEXCLUSIVE), 0);
    Kernel k = kernel_view(ep, fd);
    assert_true(k.events >= 0);
    assert_true(k.events & EPOLLIN);
    assert_true(k.events & EPOLLEXCLUSIVE); // no cost outside a reload: the kernel wakes one set
    // The hidden registration: the wake eventfd, level-triggered, not exclusive.
    assert_int_equal(k.others, 1);
    assert_int_equal(k.other_events & (EPOLLIN | EPOLLEXCLUSIVE | EPOLLET), EPOLLIN);
    const int wake = k.other_fd;
    // Waiting without a reload: nothing of it shows, and it stays exclusive.
    epoll_event out[4];
    assert_int_equal(epoll_wait(ep, out, 4, 0), 0);
    assert_true(kernel_view(ep, fd).events & EPOLLEXCLUSIVE);
    int c;
    connect_to(fd, &c);
    assert_int_equal(epoll_wait(ep, out, 4, 5000), 1);
    assert_int_equal(out[0].data.u64, 7);
    assert_true(kernel_view(ep, fd).events & EPOLLEXCLUSIVE);
    int a = accept(fd, nullptr, nullptr);
    assert_true(a >= 0);
    close(a);
    close(c);

    // The prepare (the launcher writes the wake eventfd before the drain flag): the next wait shows
    // nothing of it, waits out its timeout without spinning, and leaves the listener without the flag.
    const uint64_t one = 1;
    assert_int_equal(syscall(SYS_write, wake, &one, sizeof one), 8);
    int64_t t0 = now_ms();
    assert_int_equal(epoll_wait(ep, out, 4, 100), 0);
    assert_true(now_ms() - t0 >= 90);
    k = kernel_view(ep, fd);
    assert_true(k.events & EPOLLIN);
    assert_false(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 0); // the hidden registration is out (the eventfd stays readable)
    // The program still sees its exclusive registration: a MOD is refused as the kernel refuses it.
    assert_int_equal(ctl(ep, EPOLL_CTL_MOD, fd, EPOLLIN), EINVAL);
    // And it still works: a connection is reported once, with the program's data.
    connect_to(fd, &c);
    assert_int_equal(epoll_wait(ep, out, 4, 5000), 1);
    assert_int_equal(out[0].data.u64, 7);
    a = accept(fd, nullptr, nullptr);
    assert_true(a >= 0);
    close(a);
    close(c);

    // Called off (the launcher reads the eventfd back before lowering the flag): back as the program made it.
    uint64_t v = 0;
    assert_int_equal(syscall(SYS_read, wake, &v, sizeof v), 8);
    assert_int_equal(epoll_wait(ep, out, 4, 0), 0);
    k = kernel_view(ep, fd);
    assert_true(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 1);
    assert_int_equal(k.other_fd, wake);

    assert_int_equal(ctl(ep, EPOLL_CTL_DEL, fd, 0), 0);
    assert_int_equal(kernel_view(ep, fd).events, -1);
    close(ep);
    close(fd);
}

// epoll_pwait2() (a timespec timeout) hides the wake-up and drops the flag as epoll_wait() does.
void test_pwait2_hides_the_wake_up_too(void **) {
    int fd = tcp_listener();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(ctl(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLEXCLUSIVE), 0);
    Kernel k = kernel_view(ep, fd);
    assert_true(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 1);
    const int wake = k.other_fd;
    const uint64_t one = 1;
    assert_int_equal(syscall(SYS_write, wake, &one, sizeof one), 8);
    epoll_event out[4];
    const timespec ts = {0, 50 * 1000000};
    int64_t t0 = now_ms();
    assert_int_equal(epoll_pwait2(ep, out, 4, &ts, nullptr), 0);
    assert_true(now_ms() - t0 >= 45);
    k = kernel_view(ep, fd);
    assert_false(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 0);
    uint64_t v = 0;
    assert_int_equal(syscall(SYS_read, wake, &v, sizeof v), 8);
    const timespec zero = {0, 0};
    assert_int_equal(epoll_pwait2(ep, out, 4, &zero, nullptr), 0);
    k = kernel_view(ep, fd);
    assert_true(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 1);
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

// Not a shared socket: the flag goes to the kernel as the program wrote it, and nothing is added.
void test_exclusive_flag_kept_for_other_descriptors(void **) {
    int efd = eventfd(0, EFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLEXCLUSIVE), 0);
    Kernel k = kernel_view(ep, efd);
    assert_true(k.events & EPOLLEXCLUSIVE);
    assert_int_equal(k.others, 0);
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
        cmocka_unit_test(test_exclusive_listener_stays_exclusive_until_the_prepare),
        cmocka_unit_test(test_pwait2_hides_the_wake_up_too),
        cmocka_unit_test(test_exclusive_registration_answers_as_the_kernel_does),
        cmocka_unit_test(test_exclusive_flag_kept_for_other_descriptors),
    };
    return cmocka_run_group_tests_name("preloaded epoll", tests, nullptr, nullptr);
}
