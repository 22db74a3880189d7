/*
 * nofeature.c - runs a command on a kernel that seems to lack a feature hotrestart --seccomp needs: a
 * seccomp filter (inherited by the command and everything it starts) makes the calls fail as an older
 * kernel would.
 *
 *   nofeature seccomp|addfd|syncwake COMMAND [ARGS...]
 *
 * seccomp: the seccomp() system call fails with ENOSYS (Linux before 3.17, or seccomp compiled out).
 * addfd:   ioctl(SECCOMP_IOCTL_NOTIF_ADDFD) fails with EINVAL (Linux before 5.14 has no SETFD flag).
 * syncwake: ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS) fails with EINVAL (Linux before 6.6 has no same-CPU wake-up).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif

int main(int argc, char **argv) {
    int syncwake = argc >= 3 && strcmp(argv[1], "syncwake") == 0;
    if (argc < 3 || (strcmp(argv[1], "seccomp") != 0 && strcmp(argv[1], "addfd") != 0 && !syncwake)) {
        fprintf(stderr, "usage: nofeature seccomp|addfd|syncwake COMMAND [ARGS...]\n");
        return 2;
    }
    int addfd = strcmp(argv[1], "addfd") == 0 || syncwake; /* an ioctl: which one is below */
    __u32 request = syncwake ? (__u32)SECCOMP_IOCTL_NOTIF_SET_FLAGS : (__u32)SECCOMP_IOCTL_NOTIF_ADDFD;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, addfd ? __NR_ioctl : __NR_seccomp, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args) + sizeof(__u64)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, addfd ? request : 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (addfd ? EINVAL : ENOSYS)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    if (!addfd) f[3].jf = 0; /* every seccomp() call, whatever its arguments */
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
        perror("nofeature: seccomp filter");
        return 2;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "nofeature: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
