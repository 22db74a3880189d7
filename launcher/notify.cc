#include "notify.h"

#include "ctlmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace hr {

int notify_open(int gen, std::string *env_value) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    // Credentials come with every datagram: the sender's pid as the kernel knows it.
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
        close(fd);
        return -1;
    }
    unsigned char rnd[8] = {};
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != ssize_t(sizeof rnd)) {
        // Not secret, only unpredictable enough not to collide: the sender check is what protects it.
        uint64_t t = uint64_t(getpid()) << 32 ^ uint64_t(gen);
        memcpy(rnd, &t, sizeof rnd);
    }
    char name[96];
    int n = snprintf(name, sizeof name, "hotrestart/%d/%d/%02x%02x%02x%02x%02x%02x%02x%02x", int(getpid()), gen,
                     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path + 1, name, size_t(n)); // sun_path[0] == '\0': abstract
    if (bind(fd, reinterpret_cast<sockaddr *>(&a), socklen_t(offsetof(sockaddr_un, sun_path) + 1 + size_t(n))) < 0) {
        close(fd);
        return -1;
    }
    *env_value = std::string("@") + name;
    return fd;
}

bool notify_read(int fd, NotifyMessage *out) {
    char buf[4096];
    *out = NotifyMessage();
    bool truncated = false;
    int nfds = 0;
    // sd_pid_notify_with_fds (FDSTORE=1) may send descriptors: nothing we keep (max_fds 0 closes them).
    ssize_t n = recv_credentialed(fd, buf, sizeof buf - 1, &out->sender, nullptr, 0, &nfds, &truncated);
    if (n < 0) return false;
    if (truncated) return true; // not a message we understand
    buf[n] = '\0';
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (strcmp(line, "READY=1") == 0) out->ready = true;
        else if (strncmp(line, "STATUS=", 7) == 0) out->status = line + 7;
        line = next;
    }
    return true;
}

} // namespace hr
