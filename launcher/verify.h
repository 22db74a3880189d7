// `hotrestart verify [OPTIONS] [LAUNCHER OPTIONS] -- PROGRAM [ARGS...]`: proves that PROGRAM reloads
// without losing a connection. It starts a launcher (this same executable) as a child process with a
// private control socket, drives load from client threads, performs reloads through the control socket,
// stops the launcher gracefully and prints what every request met.
#pragma once

namespace hr {

// True if argv[1] is "verify"; then *status is what the process should exit with: 0 nothing failed and
// every reload completed, 1 otherwise, 125 usage or set-up error (the program never served).
bool run_verify(int argc, char **argv, int *status);

} // namespace hr
