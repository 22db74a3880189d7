// Process lifetime: _exit()/_Exit() give back this process's connections at once, so a generation whose
// fork-per-connection children exit without closing still drains immediately. (fork() itself is handled
// with pthread_atfork in core.cc; exit() by the destructor there; a process killed by a signal is found
// dead by the launcher, which then ignores its slot.)
#include "core.h"
#include "libc.h"

namespace hr {
namespace {

void leaving() {
    if (!g.active.exchange(false)) return;
    if (g.acct.release_all()) send_idle();
}

} // namespace
} // namespace hr

HR_EXPORT void _exit(int status) {
    hr::leaving();
    hr::real__exit(status);
}
HR_EXPORT void _Exit(int status) {
    hr::leaving();
    hr::real__Exit(status);
}
