// `hotrestart reload|status|stop`: a client of a launcher's control socket (control.h).
#pragma once

namespace hr {

// True if argv[1] names a subcommand; then *status is what the process should exit with.
bool run_client(int argc, char **argv, int *status);

} // namespace hr
