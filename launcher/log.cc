#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

namespace hr {
namespace {

int g_verbose = 0;

void vlog(const char *fmt, va_list ap) {
    int saved = errno;
    char line[1024];
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t;
    gmtime_r(&ts.tv_sec, &t);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ hotrestart[%d]: ", t.tm_year + 1900,
                     t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000, int(getpid()));
    int m = vsnprintf(line + n, sizeof line - size_t(n) - 1, fmt, ap);
    size_t len = size_t(n) + (m < 0 ? 0 : size_t(m));
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    // One write per line so that lines from the launcher and its children never interleave mid-line.
    ssize_t w = write(2, line, len);
    (void)w;
    errno = saved;
}

} // namespace

void log_set_verbose(int level) { g_verbose = level; }
int log_verbose() { return g_verbose; }

void logf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void debugf(const char *fmt, ...) {
    if (g_verbose < 1) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

} // namespace hr
