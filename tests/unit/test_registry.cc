// Unit tests for launcher/registry.cc (its bounds, log-safe names, the socket files it may remove) and
// launcher/ctlmsg.cc (records read with the sender's credentials, who may send what, the warning limit),
// on real sockets: listeners on 127.0.0.1, unix sockets in a temporary directory, a SEQPACKET socketpair
// and forked processes in a process group of their own.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ctlmsg.h"
#include "registry.h"

using namespace hr;

namespace {

int tcp_listener() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

int unix_listener(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

// A socket file nobody listens on.
void socket_file(const char *path) { close(unix_listener(path)); }

bool is_socket_file(const std::string &path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool closed(int fd) { return fcntl(fd, F_GETFD) < 0 && errno == EBADF; }

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/hr-registry-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        path = tmpl;
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        if (system(cmd.c_str()) != 0) fprintf(stderr, "unable to remove %s\n", path.c_str());
    }
};

void test_generation_bound_closes_what_it_refuses(void **) {
    Registry reg;
    for (int i = 0; i < kMaxPerGeneration; ++i) {
        AddResult r = reg.add(tcp_listener(), 1, getpid());
        assert_non_null(r.added);
        assert_null(r.refused);
    }
    int fd = tcp_listener();
    AddResult r = reg.add(fd, 1, getpid());
    assert_null(r.added);
    assert_non_null(r.refused);
    assert_true(closed(fd));
    // Another generation still has room; the same description seen again is no new entry.
    AddResult other = reg.add(tcp_listener(), 2, getpid());
    assert_non_null(other.added);
    int again = dup(other.added->fd);
    AddResult dup_r = reg.add(again, 1, getpid());
    assert_null(dup_r.added);
    assert_ptr_equal(dup_r.dup_of, other.added);
    assert_true(closed(again));
    assert_int_equal(reg.all().size(), size_t(kMaxPerGeneration + 1));
}

void test_global_bound(void **) {
    Registry reg;
    int gen = 1;
    while (reg.all().size() < size_t(kMaxListeners)) {
        for (int i = 0; i < kMaxPerGeneration && reg.all().size() < size_t(kMaxListeners); ++i)
            assert_non_null(reg.add(tcp_listener(), gen, getpid()).added);
        ++gen;
    }
    int fd = tcp_listener();
    AddResult r = reg.add(fd, gen + 1, getpid());
    assert_null(r.added);
    assert_non_null(r.refused);
    assert_true(strstr(r.refused, "launcher") != nullptr);
    assert_true(closed(fd));
}

// A socket one generation closed for good is closed at once unless another generation uses it.
void test_closed_by(void **) {
    Registry reg;
    const AddResult a = reg.add(tcp_listener(), 1, getpid());
    assert_non_null(a.added);
    const uint64_t id = a.added->id;
    const int fd = a.added->fd;
    reg.mark_used(id, 2);
    assert_false(reg.closed_by(id, 1)); // gen 2 still uses it
    assert_non_null(reg.find(id));
    assert_false(closed(fd));
    assert_true(reg.closed_by(id, 2));
    assert_null(reg.find(id));
    assert_true(closed(fd));
    assert_false(reg.closed_by(id, 2)); // unknown id: nothing happens
}

void test_not_a_listener_is_refused(void **) {
    Registry reg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    AddResult r = reg.add(fd, 1, getpid());
    assert_null(r.added);
    assert_non_null(r.refused);
    assert_true(closed(fd));
}

void test_names_are_escaped(void **) {
    TempDir d;
    std::string path = d.path + "/a\nb";
    Registry reg;
    AddResult r = reg.add(unix_listener(path.c_str()), 1, getpid());
    assert_non_null(r.added);
    assert_string_equal(r.added->name.c_str(), ("unix:" + d.path + "/a\\x0ab").c_str());
}

// A relative path is found where the process bound it (its working directory then), not in the launcher's
// working directory at the end; the file is removed when the socket is released, the other one survives.
void test_relative_path_removed_where_bound(void **) {
    TempDir d;
    std::string a = d.path + "/a", b = d.path + "/b";
    assert_int_equal(mkdir(a.c_str(), 0700), 0);
    assert_int_equal(mkdir(b.c_str(), 0700), 0);
    char old[4096];
    assert_non_null(getcwd(old, sizeof old));
    socket_file((b + "/r.sock").c_str());
    assert_int_equal(chdir(a.c_str()), 0);
    Registry reg;
    AddResult r = reg.add(unix_listener("r.sock"), 1, getpid());
    assert_non_null(r.added);
    assert_true(r.added->file.known);
    assert_int_equal(chdir(b.c_str()), 0);
    reg.drop_user(1);
    assert_int_equal(reg.prune().size(), 1);
    assert_int_equal(chdir(old), 0);
    assert_false(is_socket_file(a + "/r.sock"));
    assert_true(is_socket_file(b + "/r.sock"));
}

// A socket file replaced by another one (same name, another inode), or a directory swapped for a symlink to
// another directory: nothing is removed.
void test_replaced_file_or_directory_is_left_alone(void **) {
    TempDir d;
    std::string dir = d.path + "/dir", other = d.path + "/other";
    assert_int_equal(mkdir(dir.c_str(), 0700), 0);
    assert_int_equal(mkdir(other.c_str(), 0700), 0);
    Registry reg;
    assert_non_null(reg.add(unix_listener((dir + "/x.sock").c_str()), 1, getpid()).added);
    assert_non_null(reg.add(unix_listener((dir + "/y.sock").c_str()), 1, getpid()).added);
    // x.sock: another socket file under the same name.
    assert_int_equal(unlink((dir + "/x.sock").c_str()), 0);
    socket_file((dir + "/x.sock").c_str());
    reg.drop_user(1);
    // y.sock: the directory is moved away and a symlink to another directory takes its place.
    socket_file((other + "/y.sock").c_str());
    assert_int_equal(rename(dir.c_str(), (d.path + "/moved").c_str()), 0);
    assert_int_equal(symlink(other.c_str(), dir.c_str()), 0);
    assert_int_equal(reg.prune().size(), 2);
    assert_true(is_socket_file(d.path + "/moved/x.sock"));
    assert_true(is_socket_file(other + "/y.sock"));
    assert_true(is_socket_file(d.path + "/moved/y.sock")); // not found where it was: left too
}

// ---- ctlmsg

Msg record(uint16_t type) {
    Msg m;
    memset(&m, 0, sizeof m);
    m.magic = kMagic;
    m.version = kProtocolVersion;
    m.type = type;
    m.pid = 1; // whatever a sender writes: never believed
    return m;
}

void send_record(int fd, uint16_t type, const int *fds, int nfds) {
    Msg m = record(type);
    iovec iov{&m, sizeof m};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 16)] = {};
    if (nfds) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * size_t(nfds));
        cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * size_t(nfds));
        memcpy(CMSG_DATA(c), fds, sizeof(int) * size_t(nfds));
    }
    assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), ssize_t(sizeof m));
}

struct Pair {
    int launcher = -1, shim = -1;
    Pair() {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        launcher = sv[0];
        shim = sv[1];
        assert_true(ctl_pass_credentials(launcher));
    }
    ~Pair() {
        close(launcher);
        close(shim);
    }
};

void test_sender_comes_from_the_kernel(void **) {
    Pair p;
    int l = tcp_listener();
    send_record(p.shim, MSG_REGISTER, &l, 1);
    close(l);
    CtlRecord r;
    assert_int_equal(ctl_read(p.launcher, &r), CTL_RECORD);
    assert_int_equal(r.sender, getpid());
    assert_int_equal(r.nfds, 1);
    assert_true(fcntl(r.fds[0], F_GETFD) & FD_CLOEXEC);
    assert_null(ctl_check(r, getpid()));
    r.close_fds();
    assert_int_equal(ctl_read(p.launcher, &r), CTL_AGAIN);
}

void test_extra_descriptors_are_closed_and_rejected(void **) {
    Pair p;
    int fds[12];
    for (int &fd : fds) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    send_record(p.shim, MSG_REGISTER, fds, 12);
    send_record(p.shim, MSG_HELLO, fds, 2);
    for (int fd : fds) close(fd);
    CtlRecord r;
    assert_int_equal(ctl_read(p.launcher, &r), CTL_RECORD);
    assert_true(r.truncated);
    assert_int_equal(r.nfds, kMaxRecordFds);
    assert_int_equal(r.sender, getpid());
    assert_non_null(ctl_check(r, getpid()));
    r.close_fds();
    assert_int_equal(ctl_read(p.launcher, &r), CTL_RECORD);
    assert_false(r.truncated);
    assert_string_equal(ctl_check(r, getpid()), "wrong number of descriptors");
    r.close_fds();
}

// The generation: a child in a process group of its own (its "main"), which forks a member that sends a
// hello and an idle hint, then says hello itself. The test process is outside the group.
void test_who_may_send_what(void **) {
    Pair p;
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t main_pid = fork();
    if (main_pid == 0) {
        setpgid(0, 0);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(1);
        pid_t member = fork();
        if (member == 0) {
            send_record(p.shim, MSG_HELLO, nullptr, 0);
            send_record(p.shim, MSG_IDLE, nullptr, 0);
            pause(); // alive (and in the group) until the test is done with its records
            _exit(0);
        }
        send_record(p.shim, MSG_ACCEPTING, nullptr, 0);
        send_record(p.shim, MSG_HELLO, nullptr, 0);
        pause();
        _exit(0);
    }
    setpgid(main_pid, main_pid);
    assert_int_equal(write(go[1], "x", 1), 1);
    send_record(p.shim, MSG_HELLO, nullptr, 0); // from outside
    int hello_main = 0, hello_member = 0, idle = 0, accepting = 0, outside = 0;
    pid_t member = 0;
    for (int got = 0; got < 5;) {
        pollfd pfd{p.launcher, POLLIN, 0};
        assert_int_equal(poll(&pfd, 1, 10000), 1); // the five records come within 10 s
        CtlRecord r;
        if (ctl_read(p.launcher, &r) != CTL_RECORD) continue;
        ++got;
        const char *why = ctl_check(r, main_pid);
        if (r.sender == getpid()) {
            assert_string_equal(why, "the sender is not a process of this generation");
            ++outside;
        } else if (r.sender == main_pid) {
            assert_null(why);
            hello_main += r.m.type == MSG_HELLO;
            accepting += r.m.type == MSG_ACCEPTING;
        } else {
            member = r.sender;
            if (r.m.type == MSG_HELLO) {
                assert_string_equal(why, "hello from a process other than the main one");
                ++hello_member;
            } else {
                assert_null(why);
                idle += r.m.type == MSG_IDLE;
            }
        }
    }
    assert_int_equal(hello_main + hello_member + idle + accepting + outside, 5);
    assert_int_equal(hello_main * hello_member * idle * accepting * outside, 1);
    assert_int_equal(classify_sender(member, main_pid), SENDER_MEMBER);
    assert_int_equal(classify_sender(main_pid, main_pid), SENDER_MAIN);
    assert_int_equal(classify_sender(getpid(), main_pid), SENDER_OUTSIDE);
    assert_int_equal(classify_sender(0, main_pid), SENDER_OUTSIDE);
    kill(-main_pid, SIGKILL);
    while (waitpid(main_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    close(go[0]);
    close(go[1]);
}

// The warning limit: with stderr on a pipe, the first kShown warnings are lines, the rest one count.
void test_warning_limit(void **) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    int saved = dup(2);
    dup2(pfd[1], 2);
    WarnLimit w;
    for (int i = 0; i < 100; ++i) w.warn(3, "bad record %d", i);
    w.flush(3);
    w.flush(3); // nothing more
    dup2(saved, 2);
    close(saved);
    close(pfd[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
    close(pfd[0]);
    int lines = 0;
    for (char c : out) lines += c == '\n';
    assert_int_equal(lines, WarnLimit::kShown + 1);
    assert_non_null(strstr(out.c_str(), "warning: gen 3: bad record 0\n"));
    assert_non_null(strstr(out.c_str(), "bad record 4 (more warnings of gen 3 in the next 60 s are only counted)"));
    assert_null(strstr(out.c_str(), "bad record 5"));
    assert_non_null(strstr(out.c_str(), "warning: gen 3: 95 more warnings not logged\n"));
}

} // namespace

int main() {
    signal(SIGPIPE, SIG_IGN);
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_generation_bound_closes_what_it_refuses),
        cmocka_unit_test(test_global_bound),
        cmocka_unit_test(test_closed_by),
        cmocka_unit_test(test_not_a_listener_is_refused),
        cmocka_unit_test(test_names_are_escaped),
        cmocka_unit_test(test_relative_path_removed_where_bound),
        cmocka_unit_test(test_replaced_file_or_directory_is_left_alone),
        cmocka_unit_test(test_sender_comes_from_the_kernel),
        cmocka_unit_test(test_extra_descriptors_are_closed_and_rejected),
        cmocka_unit_test(test_who_may_send_what),
        cmocka_unit_test(test_warning_limit),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
