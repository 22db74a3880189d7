// Preloaded wrapper tests: this program runs as generation 1 under build/hotrestart, so the shim is loaded
// and active, and each test checks a wrapper's effect against the kernel itself (through syscall(), which
// the shim passes through for everything but close/close_range). Run by `make unit` as
//   build/hotrestart -- build/unit/preload_wrappers
// (the launcher exits with this program's status).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace {

// The kernel's own view of the file status flags, bypassing the fcntl() wrapper.
long kernel_flags(int fd) { return syscall(SYS_fcntl, fd, F_GETFL); }

int tcp_listener(int type_flags = 0) {
    int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
    assert_true(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

sockaddr_in local_addr(int fd) {
    sockaddr_in a{};
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &l), 0);
    return a;
}

int connect_to(int lfd) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = local_addr(lfd);
    assert_int_equal(connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    return c;
}

// The shim's private descriptors: numbers >= 10 that this test did not open (they sit high, e.g. 900+).
int private_fds(int *out, int max) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (dirent *e = readdir(d)) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 500 && fd != dirfd(d) && n < max) out[n++] = fd;
    }
    closedir(d);
    return n;
}

bool is_open(int fd) { return syscall(SYS_fcntl, fd, F_GETFD) >= 0; }

long elapsed_ms(const timespec &t0) {
    timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

void test_listener_is_shared_nonblocking_but_program_sees_blocking(void **) {
    int fd = tcp_listener();
    assert_true(kernel_flags(fd) & O_NONBLOCK);   // shared description: always non-blocking
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK); // the program asked for blocking
    close(fd);
}

void test_fsetfl_and_fionbio_change_only_the_programs_view(void **) {
    int fd = tcp_listener();
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    errno = 0;
    assert_int_equal(accept(fd, nullptr, nullptr), -1); // non-blocking view: nothing queued
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(kernel_flags(fd) & O_NONBLOCK);
    int on = 1;
    assert_int_equal(ioctl(fd, FIONBIO, &on), 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    on = 0;
    assert_int_equal(ioctl(fd, FIONBIO, &on), 0);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(kernel_flags(fd) & O_NONBLOCK);
    close(fd);
}

void test_sock_nonblock_at_socket_is_remembered(void **) {
    int fd = tcp_listener(SOCK_NONBLOCK);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
}

void test_blocking_accept_honours_so_rcvtimeo(void **) {
    int fd = tcp_listener();
    timeval tv{0, 150000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    assert_int_equal(accept(fd, nullptr, nullptr), -1);
    assert_int_equal(errno, EAGAIN);
    long ms = elapsed_ms(t0);
    assert_true(ms >= 140 && ms < 5000);
    close(fd);
}

void test_blocking_accept_returns_queued_connection_and_keeps_errno(void **) {
    int fd = tcp_listener();
    int c = connect_to(fd);
    errno = 4242;
    int a = accept(fd, nullptr, nullptr);
    assert_true(a >= 0);
    assert_int_equal(errno, 4242);
    // dup and close of the connection: the table follows, nothing breaks.
    int d = dup(a);
    assert_true(d >= 0);
    assert_int_equal(close(a), 0);
    assert_int_equal(write(d, "x", 1), 1);
    char ch;
    assert_int_equal(read(c, &ch, 1), 1);
    assert_int_equal(close(d), 0);
    close(c);
    close(fd);
}

// A connection attempt that completes within 2 s (without anyone accepting it yet).
bool connects_promptly(int lfd, int *out) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = local_addr(lfd);
    int r = connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a);
    if (r < 0 && errno != EINPROGRESS) return false;
    pollfd p{c, POLLOUT, 0};
    *out = c;
    return poll(&p, 1, 2000) == 1;
}

void test_listen_again_is_a_noop(void **) {
    int fd = tcp_listener();
    assert_int_equal(listen(fd, 0), 0); // memcached's throttle: must not shrink the shared backlog
    int acc = 0;
    socklen_t l = sizeof acc;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l), 0);
    assert_int_equal(acc, 1);
    // With a backlog of 0 the kernel would complete one or two handshakes and drop the rest.
    int c[6];
    for (int &x : c) assert_true(connects_promptly(fd, &x));
    for (int i = 0; i < 6; ++i) {
        int a = accept(fd, nullptr, nullptr);
        assert_true(a >= 0);
        close(a);
    }
    for (int x : c) close(x);
    close(fd);
}

void test_shutdown_stops_only_this_process(void **) {
    for (int variant = 0; variant < 2; ++variant) {
        int fd = tcp_listener();
        if (variant == 0) {
            assert_int_equal(shutdown(fd, SHUT_RDWR), 0);
        } else {
            sockaddr un{};
            un.sa_family = AF_UNSPEC;
            assert_int_equal(connect(fd, &un, sizeof un), 0);
        }
        errno = 0;
        assert_int_equal(accept(fd, nullptr, nullptr), -1);
        assert_int_equal(errno, EINVAL);
        // The shared socket still listens for every other holder: a client still gets through.
        int c = connect_to(fd);
        assert_int_equal(listen(fd, 16), 0); // resume
        int a = accept(fd, nullptr, nullptr);
        assert_true(a >= 0);
        close(a);
        close(c);
        close(fd);
    }
}

void test_private_descriptors_survive_close_close_range_and_syscall(void **) {
    int priv[16];
    int n = private_fds(priv, 16);
    assert_true(n >= 4); // control socket, wake-up, shared memory, local wake-up
    for (int i = 0; i < n; ++i) {
        assert_int_equal(close(priv[i]), 0); // pretends
        assert_true(is_open(priv[i]));
        assert_int_equal(syscall(SYS_close, priv[i]), 0);
        assert_true(is_open(priv[i]));
        assert_int_equal(close_range(unsigned(priv[i]), unsigned(priv[i]), 0), 0);
        assert_true(is_open(priv[i]));
        assert_true(syscall(SYS_fcntl, priv[i], F_GETFD) & FD_CLOEXEC);
    }
    int before = n;
    // dup2 onto a private descriptor moves it away instead of destroying it.
    int target = priv[0];
    assert_int_equal(dup2(0, target), target);
    int after[16];
    int m = private_fds(after, 16);
    assert_int_equal(m, before + 1); // the moved one plus our dup2 copy of stdin
    close(target);
}

void test_close_range_closes_everything_else(void **) {
    int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
    int lo = a < b ? a : b, hi = a < b ? b : a;
    assert_int_equal(close_range(unsigned(lo), unsigned(hi), 0), 0);
    assert_false(is_open(a));
    assert_false(is_open(b));
}

void test_unlink_keeps_a_shared_unix_path(void **) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/hotrestart-unit-%d.sock", int(getpid()));
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, path);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(unlink(path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0); // still there: the socket is shared
    assert_true(S_ISSOCK(st.st_mode));
    close(fd);
    // An unrelated file is unlinked for real.
    char other[80];
    snprintf(other, sizeof other, "%s.other", path);
    int f = open(other, O_CREAT | O_WRONLY, 0600);
    close(f);
    assert_int_equal(unlink(other), 0);
    assert_int_equal(stat(other, &st), -1);
}

void test_udp_socket_is_shared_with_blocking_view(void **) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(0);
    // Port 0 is never shared: bind a real port picked by the kernel first.
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(probe, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    a = local_addr(probe);
    close(probe);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_true(kernel_flags(fd) & O_NONBLOCK);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    timeval tv{0, 100000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char buf[16];
    timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    assert_int_equal(recv(fd, buf, sizeof buf, 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_true(elapsed_ms(t0) >= 90);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(sendto(s, "hi", 2, 0, reinterpret_cast<sockaddr *>(&a), sizeof a), 2);
    assert_int_equal(read(fd, buf, sizeof buf), 2); // read() on the socket goes through the same path
    close(s);
    close(fd);
}

void test_epoll_registration_of_a_listener(void **) {
    int fd = tcp_listener();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    int c = connect_to(fd);
    epoll_event out[4];
    assert_int_equal(epoll_wait(ep, out, 4, 5000), 1);
    assert_int_equal(out[0].data.fd, fd);
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev), 0);
    close(c);
    close(ep);
    close(fd);
}

void test_poll_reports_a_listener_before_any_drain(void **) {
    int fd = tcp_listener();
    int c = connect_to(fd);
    pollfd p{fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_true(p.revents & POLLIN);
    close(c);
    close(fd);
}

} // namespace

int main() {
    // Under the launcher, the shim strips itself from LD_PRELOAD once active: its absence tells.
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "libhotrestart")) {
        fprintf(stderr, "preload_wrappers: run me under build/hotrestart (make unit does)\n");
        return 2;
    }
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_is_shared_nonblocking_but_program_sees_blocking),
        cmocka_unit_test(test_fsetfl_and_fionbio_change_only_the_programs_view),
        cmocka_unit_test(test_sock_nonblock_at_socket_is_remembered),
        cmocka_unit_test(test_blocking_accept_honours_so_rcvtimeo),
        cmocka_unit_test(test_blocking_accept_returns_queued_connection_and_keeps_errno),
        cmocka_unit_test(test_listen_again_is_a_noop),
        cmocka_unit_test(test_shutdown_stops_only_this_process),
        cmocka_unit_test(test_private_descriptors_survive_close_close_range_and_syscall),
        cmocka_unit_test(test_close_range_closes_everything_else),
        cmocka_unit_test(test_unlink_keeps_a_shared_unix_path),
        cmocka_unit_test(test_udp_socket_is_shared_with_blocking_view),
        cmocka_unit_test(test_epoll_registration_of_a_listener),
        cmocka_unit_test(test_poll_reports_a_listener_before_any_drain),
    };
    return cmocka_run_group_tests_name("preloaded wrappers", tests, nullptr, nullptr);
}
