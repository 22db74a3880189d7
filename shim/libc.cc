#include "libc.h"

#include <atomic>
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace hr {
namespace {

// dlsym(RTLD_NEXT) finds the next definition after this library: libc's. If it ever failed we must not
// fall back to our own exported symbol (that would recurse), so a missing function reports ENOSYS.
void *resolve(std::atomic<void *> &slot, const char *name) {
    void *p = slot.load(std::memory_order_acquire);
    if (p == nullptr) {
        p = dlsym(RTLD_NEXT, name);
        slot.store(p, std::memory_order_release);
    }
    return p;
}

#define HR_SLOT(ret, name, params, args) std::atomic<void *> slot_##name{nullptr};
HR_LIBC_FUNCS(HR_SLOT)
#undef HR_SLOT
std::atomic<void *> slot_fcntl{nullptr}, slot_ioctl{nullptr}, slot_closefrom{nullptr};
std::atomic<void *> slot__exit{nullptr}, slot__Exit{nullptr}, slot_syscall{nullptr};

} // namespace

#define HR_DEFINE_REAL(ret, name, params, args)                                                  \
    ret real_##name params {                                                                     \
        using fn_t = ret(*) params;                                                              \
        auto fn = reinterpret_cast<fn_t>(resolve(slot_##name, #name));                           \
        if (fn == nullptr) {                                                                     \
            errno = ENOSYS;                                                                      \
            return -1;                                                                           \
        }                                                                                        \
        return fn args;                                                                          \
    }
HR_LIBC_FUNCS(HR_DEFINE_REAL)
#undef HR_DEFINE_REAL

int real_fcntl(int fd, int cmd, void *arg) {
    using fn_t = int (*)(int, int, ...);
    auto fn = reinterpret_cast<fn_t>(resolve(slot_fcntl, "fcntl"));
    if (fn == nullptr) {
        errno = ENOSYS;
        return -1;
    }
    return fn(fd, cmd, arg);
}

int real_ioctl(int fd, unsigned long req, void *arg) {
    using fn_t = int (*)(int, unsigned long, ...);
    auto fn = reinterpret_cast<fn_t>(resolve(slot_ioctl, "ioctl"));
    if (fn == nullptr) {
        errno = ENOSYS;
        return -1;
    }
    return fn(fd, req, arg);
}

void real_closefrom(int lowfd) {
    using fn_t = void (*)(int);
    auto fn = reinterpret_cast<fn_t>(resolve(slot_closefrom, "closefrom"));
    if (fn) fn(lowfd);
}

long real_syscall(long n, long a, long b, long c, long d, long e, long f) {
    using fn_t = long (*)(long, ...);
    auto fn = reinterpret_cast<fn_t>(resolve(slot_syscall, "syscall"));
    if (fn == nullptr) {
        errno = ENOSYS;
        return -1;
    }
    return fn(n, a, b, c, d, e, f);
}

void real__exit(int status) {
    using fn_t = void (*)(int);
    auto fn = reinterpret_cast<fn_t>(resolve(slot__exit, "_exit"));
    if (fn) fn(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

void real__Exit(int status) {
    using fn_t = void (*)(int);
    auto fn = reinterpret_cast<fn_t>(resolve(slot__Exit, "_Exit"));
    if (fn) fn(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

void libc_resolve_all() {
#define HR_RESOLVE(ret, name, params, args) resolve(slot_##name, #name);
    HR_LIBC_FUNCS(HR_RESOLVE)
#undef HR_RESOLVE
    resolve(slot_fcntl, "fcntl");
    resolve(slot_ioctl, "ioctl");
    resolve(slot_closefrom, "closefrom");
    resolve(slot__exit, "_exit");
    resolve(slot__Exit, "_Exit");
    resolve(slot_syscall, "syscall");
}

} // namespace hr
