// The real libc functions, one typed pointer each, resolved with dlsym(RTLD_NEXT) on first use (so a
// wrapper that runs before the shim's constructor still works) and all at once in the constructor. Policy
// code reaches libc only through these real_* trampolines, never through the exported names.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

// X(return type, name, parameter list, argument list)
#define HR_LIBC_FUNCS(X)                                                                              \
    X(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))                         \
    X(int, listen, (int fd, int backlog), (fd, backlog))                                              \
    X(int, accept, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l))                            \
    X(int, accept4, (int fd, struct sockaddr *a, socklen_t *l, int fl), (fd, a, l, fl))               \
    X(int, close, (int fd), (fd))                                                                     \
    X(int, dup, (int fd), (fd))                                                                       \
    X(int, dup2, (int o, int n), (o, n))                                                              \
    X(int, dup3, (int o, int n, int fl), (o, n, fl))                                                  \
    X(int, close_range, (unsigned a, unsigned b, int fl), (a, b, fl))                                 \
    X(int, poll, (struct pollfd * p, nfds_t n, int t), (p, n, t))                                     \
    X(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl))                        \
    X(int, getsockopt, (int fd, int lv, int nm, void *v, socklen_t *l), (fd, lv, nm, v, l))           \
    X(int, getsockname, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l))                       \
    X(int, shutdown, (int fd, int how), (fd, how))                                                    \
    X(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))                      \
    X(int, unlink, (const char *p), (p))                                                              \
    X(int, unlinkat, (int d, const char *p, int f), (d, p, f))                                        \
    X(ssize_t, recv, (int fd, void *b, size_t n, int f), (fd, b, n, f))                               \
    X(ssize_t, recvfrom, (int fd, void *b, size_t n, int f, struct sockaddr *a, socklen_t *l), (fd, b, n, f, a, l)) \
    X(ssize_t, recvmsg, (int fd, struct msghdr *m, int f), (fd, m, f))                                \
    X(int, recvmmsg, (int fd, struct mmsghdr *v, unsigned n, int f, struct timespec *t), (fd, v, n, f, t)) \
    X(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n))                                         \
    X(int, execve, (const char *p, char *const *a, char *const *e), (p, a, e))                        \
    X(int, execvp, (const char *p, char *const *a), (p, a))                                           \
    X(int, execvpe, (const char *p, char *const *a, char *const *e), (p, a, e))                       \
    X(int, fexecve, (int fd, char *const *a, char *const *e), (fd, a, e))                                                    \
    X(int, kill, (pid_t p, int s), (p, s))                                                            \
    X(int, flock, (int fd, int op), (fd, op))                                                         \
    X(int, epoll_ctl, (int e, int op, int fd, struct epoll_event *ev), (e, op, fd, ev))              \
    X(int, epoll_wait, (int e, struct epoll_event *ev, int m, int t), (e, ev, m, t))                  \
    X(int, epoll_pwait, (int e, struct epoll_event *ev, int m, int t, const sigset_t *s), (e, ev, m, t, s)) \
    X(int, epoll_pwait2, (int e, struct epoll_event *ev, int m, const struct timespec *t, const sigset_t *s), (e, ev, m, t, s)) \
    X(int, ppoll, (struct pollfd * p, nfds_t n, const struct timespec *t, const sigset_t *m), (p, n, t, m)) \
    X(int, select, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t), (n, r, w, e, t))      \
    X(int, pselect, (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m), \
      (n, r, w, e, t, m))

namespace hr {

#define HR_DECLARE_REAL(ret, name, params, args) ret real_##name params;
HR_LIBC_FUNCS(HR_DECLARE_REAL)
#undef HR_DECLARE_REAL

// Variadic ones, with the argument already taken off the list.
int real_fcntl(int fd, int cmd, void *arg);
int real_ioctl(int fd, unsigned long req, void *arg);
void real_closefrom(int lowfd);
long real_syscall(long n, long a, long b, long c, long d, long e, long f);
[[noreturn]] void real__exit(int status);
[[noreturn]] void real__Exit(int status);

// Resolves every pointer now (called from the constructor).
void libc_resolve_all();

} // namespace hr
