// Launcher logging: one timestamped line per step on stderr, one shape for errors:
//   2026-11-21T08:02:07.123Z hotrestart[1234]: gen 2 ready in 14 ms
//   2026-11-21T08:02:07.123Z hotrestart[1234]: fatal: unable to execute 'srv': No such file or directory
#pragma once

namespace hr {

void log_set_verbose(int level);
int log_verbose();
void logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void debugf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace hr
