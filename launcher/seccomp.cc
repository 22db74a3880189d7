#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS // Linux 6.6
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

namespace hr {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
constexpr uint32_t kForeignNr = 0x40000000; // __X32_SYSCALL_BIT: x32 calls pass through
#elif defined(__aarch64__)
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
constexpr uint32_t kForeignNr = 0xffffffff;
#else
#error "--seccomp: the filter knows x86_64 and aarch64 only"
#endif

// The filter: the native architecture's bind, listen, shutdown(SHUT_RD or SHUT_RDWR) and connect go to the
// launcher, and with_accept accept and accept4 too; everything else runs (32-bit and x32 calls too:
// documented as not covered). connect is trapped whatever its address: its family (AF_UNSPEC disconnects,
// and stops a listener) is in the caller's memory, which BPF cannot read; the launcher reads two bytes and
// lets any other family run at once.
std::vector<sock_filter> build_filter(bool with_accept) {
    const uint32_t how_lo = offsetof(seccomp_data, args) + sizeof(uint64_t); // args[1], low half (little endian)
    std::vector<uint32_t> trapped = {__NR_bind, __NR_listen, __NR_connect};
    if (with_accept) {
        trapped.push_back(__NR_accept);
        trapped.push_back(__NR_accept4);
    }
    // Layout: 4 loads and checks, one jump per trapped call, the shutdown check (4), ALLOW, USER_NOTIF.
    const size_t allow = 4 + trapped.size() + 4, notif = allow + 1;
    std::vector<sock_filter> f;
    auto jump = [&](uint32_t k, size_t jt, size_t jf) {
        size_t at = f.size() + 1;
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, uint8_t(jt ? jt - at : 0), uint8_t(jf ? jf - at : 0)));
    };
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
    jump(kArch, 0, allow);
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, kForeignNr, uint8_t(allow - 4), 0));
    for (uint32_t nr : trapped) jump(nr, notif, 0);
    jump(__NR_shutdown, 0, allow);
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, how_lo));
    jump(SHUT_RD, notif, 0);
    jump(SHUT_RDWR, notif, 0);
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
    return f;
}

std::vector<sock_filter> g_filter, g_accept_filter;
sock_fprog g_prog{}, g_accept_prog{};
std::string g_no_sync_wakeup = "the kernel was not probed"; // seccomp_probe sets it

int send_fd(int sock, int fd) {
    char byte = 'N';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
    memset(buf, 0, sizeof buf);
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = buf;
    mh.msg_controllen = sizeof buf;
    cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : errno;
}

int respond(int notif, uint64_t id, int64_t val, int error, uint32_t flags) {
    seccomp_notif_resp r{};
    r.id = id;
    r.val = val;
    r.error = error;
    r.flags = flags;
    return ioctl(notif, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

int proceed(int notif, uint64_t id) { return respond(notif, id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE); }

bool still_valid(int notif, uint64_t id) {
    uint64_t v = id;
    return ioctl(notif, SECCOMP_IOCTL_NOTIF_ID_VALID, &v) == 0;
}

// The thread group of thread tid (a Go program binds from any of its threads).
pid_t tgid_of(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/status", int(tid));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *t = strstr(buf, "\nTgid:");
    return t ? pid_t(atoi(t + 6)) : -1;
}

// A pidfd of the process that made the call, and its pid; -1 when it cannot be had.
int open_target(pid_t tid, pid_t *tgid) {
    int pidfd = int(syscall(SYS_pidfd_open, tid, 0));
    *tgid = tid;
    if (pidfd < 0 && errno == EINVAL) {
        *tgid = tgid_of(tid);
        if (*tgid > 0) pidfd = int(syscall(SYS_pidfd_open, *tgid, 0));
    }
    return pidfd;
}

int fetch_fd(int pidfd, uint64_t fd) {
    if (fd > uint64_t(INT32_MAX)) {
        errno = EBADF;
        return -1;
    }
    return int(syscall(SYS_pidfd_getfd, pidfd, int(fd), 0));
}

// Whether the program's descriptor fd of process pid is close-on-exec (its fdinfo flags).
bool remote_cloexec(pid_t pid, int fd) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", int(pid), fd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return false;
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char *p = strstr(buf, "flags:");
    return p && (strtoul(p + 6, nullptr, 8) & O_CLOEXEC);
}

const Listener *by_identity(const Registry &reg, int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return nullptr;
    for (const auto &l : reg.all())
        if (l.dev == st.st_dev && l.ino == st.st_ino) return &l;
    return nullptr;
}

std::string errtext(const char *what, int e) { return std::string(what) + ": " + strerror(e); }

// bind(fd, addr, len) of the program: the registry's socket at fd if it holds that address.
void on_bind(int notif, const seccomp_notif &req, int pidfd, pid_t tgid, const Registry &reg, SeccompOutcome *out) {
    const uint64_t len = req.data.args[2];
    sockaddr_storage ss{};
    if (len < sizeof(sa_family_t) || len > sizeof ss) {
        proceed(notif, req.id); // the kernel says what is wrong with it
        return;
    }
    iovec local{&ss, size_t(len)}, remote{reinterpret_cast<void *>(uintptr_t(req.data.args[1])), size_t(len)};
    if (process_vm_readv(req.pid, &local, 1, &remote, 1, 0) != ssize_t(len) || !still_valid(notif, req.id)) {
        proceed(notif, req.id); // EFAULT is the kernel's to say; a stale notification fails harmlessly
        return;
    }
    int copy = fetch_fd(pidfd, req.data.args[0]);
    if (copy < 0) {
        proceed(notif, req.id);
        return;
    }
    int type = 0, domain = 0, v6only = 0;
    socklen_t l1 = sizeof type, l2 = sizeof domain, l3 = sizeof v6only;
    bool sock = getsockopt(copy, SOL_SOCKET, SO_TYPE, &type, &l1) == 0 &&
                getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &l2) == 0;
    if (sock && domain == AF_INET6) getsockopt(copy, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l3);
    SockKey key;
    const Listener *match = nullptr;
    if (sock && domain == ss.ss_family &&
        key_from_sockaddr(reinterpret_cast<const sockaddr *>(&ss), socklen_t(len), type, v6only, &key))
        for (const auto &l : reg.all())
            if (key_match(l.key, key)) match = &l;
    if (match && by_identity(reg, copy) == match) {
        // Already in place: this bind was answered, then interrupted by a signal before it returned, and
        // is repeated (a wait that is not killable-only: --seccomp-accept, or a kernel before 5.19).
        close(copy);
        if (respond(notif, req.id, 0, 0, 0) == 0) {
            out->kind = SeccompOutcome::ADOPTED;
            out->id = match->id;
            out->dgram = match->key.type == SOCK_DGRAM;
        }
        return;
    }
    if (!match) {
        close(copy);
        proceed(notif, req.id);
        return;
    }
    // Blocking mode lives in the open file description every generation shares: the newest generation's
    // choice wins (documented; generations of one program agree).
    int mine = fcntl(copy, F_GETFL), theirs = fcntl(match->fd, F_GETFL);
    close(copy);
    if (mine >= 0 && theirs >= 0 && (mine & O_NONBLOCK) != (theirs & O_NONBLOCK))
        fcntl(match->fd, F_SETFL, (theirs & ~O_NONBLOCK) | (mine & O_NONBLOCK));
    seccomp_notif_addfd add{};
    add.id = req.id;
    add.flags = SECCOMP_ADDFD_FLAG_SETFD;
    add.srcfd = uint32_t(match->fd);
    add.newfd = uint32_t(req.data.args[0]);
    add.newfd_flags = remote_cloexec(tgid, int(req.data.args[0])) ? O_CLOEXEC : 0;
    if (ioctl(notif, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0) {
        int e = errno;
        if (e == ENOENT) return; // the call was interrupted or the process died: nothing happened
        out->warning = "could not give pid " + std::to_string(tgid) + " " + match->name + " (" +
                       errtext("SECCOMP_IOCTL_NOTIF_ADDFD", e) + "): its own bind runs";
        proceed(notif, req.id);
        return;
    }
    if (respond(notif, req.id, 0, 0, 0) < 0) return;
    out->kind = SeccompOutcome::ADOPTED;
    out->id = match->id;
    out->dgram = match->key.type == SOCK_DGRAM;
}

// listen(fd, backlog): a registry socket listens already; the program's own is listened on here and
// becomes the registry's.
void on_listen(int notif, const seccomp_notif &req, int pidfd, const Registry &reg, SeccompOutcome *out) {
    int copy = fetch_fd(pidfd, req.data.args[0]);
    if (copy < 0) {
        proceed(notif, req.id);
        return;
    }
    if (const Listener *l = by_identity(reg, copy)) {
        close(copy);
        if (respond(notif, req.id, 0, 0, 0) == 0) {
            out->kind = SeccompOutcome::LISTENED;
            out->id = l->id;
        }
        return;
    }
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(copy, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type == SOCK_DGRAM) {
        close(copy);
        proceed(notif, req.id);
        return;
    }
    if (listen(copy, int(req.data.args[1])) < 0) {
        int e = errno;
        close(copy);
        respond(notif, req.id, 0, -e, 0);
        return;
    }
    if (respond(notif, req.id, 0, 0, 0) < 0) {
        // Gone meanwhile: the socket listens, but nobody asked; the registry takes it all the same
        // (it is named and listening), as it would have if the program had lived a moment longer.
    }
    out->kind = SeccompOutcome::OWN;
    out->fd = copy;
}

// A call that would stop a shared listener for every generation, answered 0 for the caller alone (kind:
// KEPT or DISCONNECT_KEPT); on any other socket it runs:
//   shutdown(fd, SHUT_RD or SHUT_RDWR) (the filter lets SHUT_WR through);
//   connect(fd, addr, len) whose family is AF_UNSPEC, a disconnect (seccomp_serve let every other family
//   through already).
void keep_listening(int notif, const seccomp_notif &req, int pidfd, const Registry &reg, SeccompOutcome::Kind kind,
                    SeccompOutcome *out) {
    int copy = fetch_fd(pidfd, req.data.args[0]);
    if (copy < 0) {
        proceed(notif, req.id);
        return;
    }
    const Listener *l = by_identity(reg, copy);
    close(copy);
    if (!l) {
        proceed(notif, req.id);
        return;
    }
    if (respond(notif, req.id, 0, 0, 0) == 0) {
        out->kind = kind;
        out->id = l->id;
    }
}

// The family of a trapped connect's address, read from the caller (two bytes); -1 when it cannot be read
// (the kernel then says what is wrong with the call).
int connect_family(const seccomp_notif &req) {
    if (req.data.args[2] < sizeof(sa_family_t)) return -1;
    sa_family_t fam;
    iovec local{&fam, sizeof fam}, remote{reinterpret_cast<void *>(uintptr_t(req.data.args[1])), sizeof fam};
    if (process_vm_readv(req.pid, &local, 1, &remote, 1, 0) != ssize_t(sizeof fam)) return -1;
    return fam;
}

// accept or accept4 (--seccomp-accept): on a registry socket, left for the caller to answer (SeccompAccepts);
// any other runs.
void on_accept(int notif, const seccomp_notif &req, int pidfd, const Registry &reg, SeccompOutcome *out) {
    int copy = fetch_fd(pidfd, req.data.args[0]);
    if (copy < 0) {
        proceed(notif, req.id);
        return;
    }
    const Listener *l = by_identity(reg, copy);
    close(copy);
    if (!l) {
        proceed(notif, req.id);
        return;
    }
    out->kind = SeccompOutcome::ACCEPT;
    out->id = l->id;
    out->req = req;
}

int g_probe_marker = 0x5ec0;

} // namespace

const sock_fprog *seccomp_filter() {
    if (g_filter.empty()) {
        g_filter = build_filter(false);
        g_prog.len = static_cast<unsigned short>(g_filter.size());
        g_prog.filter = g_filter.data();
    }
    return &g_prog;
}

const sock_fprog *seccomp_accept_filter() {
    if (g_accept_filter.empty()) {
        g_accept_filter = build_filter(true);
        g_accept_prog.len = static_cast<unsigned short>(g_accept_filter.size());
        g_accept_prog.filter = g_accept_filter.data();
    }
    return &g_accept_prog;
}

const std::string &seccomp_accept_missing() { return g_no_sync_wakeup; }

int seccomp_install(const sock_fprog *prog, int sock) {
    // A held accept (--seccomp-accept) must be interruptible by signals, as a blocking accept is: its
    // filter waits without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (every answer is safe to repeat).
    const unsigned long killable = prog == &g_accept_prog ? 0 : SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    bool nnp = false;
    if (geteuid() != 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
        nnp = true;
    }
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER | killable, prog);
    if (fd < 0 && errno == EACCES && !nnp) {
        // Root without CAP_SYS_ADMIN (a container): no_new_privs after all.
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER | killable, prog);
    }
    // Before 5.19 there is no killable wait: a signal interrupts a trapped call, which is then repeated.
    if (fd < 0 && errno == EINVAL)
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
    if (fd < 0) return errno;
    int e = send_fd(sock, int(fd));
    close(int(fd));
    return e;
}

int seccomp_receive(int sock) {
    char byte;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = buf;
    mh.msg_controllen = sizeof buf;
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n != 1) return -1;
    for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            // Where the kernel has it (6.6+), the trapped caller is woken on the launcher's CPU: a round
            // trip costs several times less. Without it, the same answers, slower.
            ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
            return fd;
        }
    return -1;
}

SeccompOutcome seccomp_serve(int notif, const Registry &reg) {
    SeccompOutcome out;
    pollfd p{notif, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return out;
    if (!(p.revents & POLLIN)) {
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) out.kind = SeccompOutcome::GONE;
        return out;
    }
    seccomp_notif req;
    memset(&req, 0, sizeof req); // the kernel wants it zeroed
    out.kind = SeccompOutcome::NONE;
    if (ioctl(notif, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) return out; // ENOENT: the caller went away
    // connect: every family but AF_UNSPEC runs at once, with no more work than this read. A stale
    // notification (its pid reused) only lets a call run that is no longer waiting: harmless.
    if (req.data.nr == __NR_connect && connect_family(req) != AF_UNSPEC) {
        proceed(notif, req.id);
        return out;
    }
    pid_t tgid;
    int pidfd = open_target(pid_t(req.pid), &tgid);
    if (pidfd < 0 || !still_valid(notif, req.id)) {
        // The pid may have been reused once the caller was gone: never act on it.
        if (pidfd >= 0) close(pidfd);
        else if (still_valid(notif, req.id)) proceed(notif, req.id);
        return out;
    }
    out.pid = tgid;
    if (req.data.nr == __NR_bind) on_bind(notif, req, pidfd, tgid, reg, &out);
    else if (req.data.nr == __NR_listen) on_listen(notif, req, pidfd, reg, &out);
    else if (req.data.nr == __NR_shutdown) keep_listening(notif, req, pidfd, reg, SeccompOutcome::KEPT, &out);
    else if (req.data.nr == __NR_connect) keep_listening(notif, req, pidfd, reg, SeccompOutcome::DISCONNECT_KEPT, &out);
    else if (req.data.nr == __NR_accept || req.data.nr == __NR_accept4) on_accept(notif, req, pidfd, reg, &out);
    else proceed(notif, req.id);
    close(pidfd);
    return out;
}

std::string seccomp_probe() {
    const sock_fprog *prog = seccomp_filter();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return errtext("socketpair", errno);
    constexpr int kProbeFd = 63; // where the launcher puts a descriptor in the probe child
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return errtext("fork", e);
    }
    if (pid == 0) {
        close(sv[0]);
        close(kProbeFd);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int e = seccomp_install(prog, sv[1]);
        if (e) {
            ssize_t w = write(sv[1], &e, sizeof e); // data without a descriptor: the errno of seccomp()
            (void)w;
            _exit(1);
        }
        // Trapped: the launcher puts a descriptor at kProbeFd and answers 0.
        long r = syscall(SYS_bind, kProbeFd, &g_probe_marker, sizeof g_probe_marker);
        _exit(r == 0 && fcntl(kProbeFd, F_GETFD) >= 0 ? 0 : 2);
    }
    close(sv[1]);
    std::string missing;
    int notif = -1, pidfd = -1;
    pollfd p{sv[0], POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) {
        missing = "the probe child did not answer";
    } else {
        alignas(int) char data[sizeof(int)];
        iovec iov{data, sizeof data};
        alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = buf;
        mh.msg_controllen = sizeof buf;
        ssize_t n = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
        cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : nullptr;
        if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&notif, CMSG_DATA(c), sizeof notif);
        if (notif < 0) {
            int e = 0;
            if (n == sizeof e) memcpy(&e, data, sizeof e);
            missing = "seccomp user notification (SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0) is not available: " +
                      (e ? errtext("seccomp", e) : std::string("the probe child sent nothing"));
        }
    }
    seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (missing.empty()) {
        p = {notif, POLLIN, 0};
        errno = 0; // a poll() that times out sets none
        if (poll(&p, 1, 5000) <= 0 || ioctl(notif, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
            missing = "seccomp user notification did not deliver a trapped bind: " +
                      errtext("SECCOMP_IOCTL_NOTIF_RECV", errno ? errno : ETIMEDOUT);
    }
    if (missing.empty()) {
        g_no_sync_wakeup.clear();
        if (ioctl(notif, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
            g_no_sync_wakeup = "seccomp user notification with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6) is "
                               "not available: " + errtext("ioctl SECCOMP_IOCTL_NOTIF_SET_FLAGS", errno);
    }
    if (missing.empty() && !still_valid(notif, req.id))
        missing = errtext("seccomp user notification: SECCOMP_IOCTL_NOTIF_ID_VALID (Linux 5.0)", errno);
    if (missing.empty()) {
        pidfd = int(syscall(SYS_pidfd_open, pid, 0));
        int copy = pidfd < 0 ? -1 : int(syscall(SYS_pidfd_getfd, pidfd, sv[1], 0));
        if (copy < 0) missing = errtext(pidfd < 0 ? "pidfd_open (Linux 5.3)" : "pidfd_getfd (Linux 5.6)", errno);
        else close(copy);
    }
    if (missing.empty()) {
        int got = 0;
        errno = 0;
        iovec local{&got, sizeof got}, remote{reinterpret_cast<void *>(uintptr_t(req.data.args[1])), sizeof got};
        if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != ssize_t(sizeof got) || got != g_probe_marker)
            missing = errtext("process_vm_readv of the trapped call's address", errno ? errno : EIO);
    }
    if (missing.empty()) {
        seccomp_notif_addfd add{};
        add.id = req.id;
        add.flags = SECCOMP_ADDFD_FLAG_SETFD;
        add.srcfd = uint32_t(sv[0]);
        add.newfd = kProbeFd;
        add.newfd_flags = O_CLOEXEC;
        if (ioctl(notif, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0)
            missing = "SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD (Linux 5.14) is not available: " +
                      errtext("ioctl", errno);
        else if (respond(notif, req.id, 0, 0, 0) < 0)
            missing = errtext("seccomp user notification: SECCOMP_IOCTL_NOTIF_SEND", errno);
    }
    if (!missing.empty()) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (missing.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        missing = "a bind answered through seccomp user notification did not return 0 with the descriptor in place";
    for (int fd : {notif, pidfd, sv[0]})
        if (fd >= 0) close(fd);
    return missing;
}

} // namespace hr
