#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hr {

bool pid_file_write(const std::string &path, int pid) {
    // mkostemp: a random suffix and O_CREAT|O_EXCL (which never follows a symlink, whatever is planted
    // there), O_CLOEXEC so that no generation inherits it.
    std::string tmp = path + ".XXXXXX";
    int fd = mkostemp(&tmp[0], O_CLOEXEC);
    if (fd < 0) return false;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", pid);
    // mkostemp creates the file 0600; a pid file is for everyone to read.
    errno = EIO; // what a short write reports
    bool ok = fchmod(fd, 0644) == 0 && write(fd, buf, size_t(n)) == n;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    // rename() replaces whatever path is (a symlink included), never what a symlink points to.
    if (ok && rename(tmp.c_str(), path.c_str()) == 0) return true;
    if (ok) e = errno;
    unlink(tmp.c_str());
    errno = e;
    return false;
}

void pid_file_remove(const std::string &path, int pid) {
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    char buf[32] = {};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    char *end = nullptr;
    long v = strtol(buf, &end, 10);
    if (end != buf && (*end == '\n' || *end == '\0') && v == pid) unlink(path.c_str());
}

} // namespace hr
