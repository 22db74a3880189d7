#!/usr/bin/env python3
"""probe.py - a server whose start-up listens on a free port and closes it again (a probe), and binds its
real port only when told.

  probe.py --port P

Binds 127.0.0.1:0, listens, logs "probe: pid=<pid> probed port <N>", closes it. Then waits for SIGUSR1
(the test decides when the real port comes), listens on 127.0.0.1:P and replies (HTTP/1.0) "pid=<pid>".
SIGTERM/SIGINT: exit 0.
"""
import argparse
import os
import signal
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "probe"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    srvlib.block_stop_signals()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    srvlib.log(PROG, "pid=%d probed port %d" % (os.getpid(), s.getsockname()[1]))
    s.close()
    got = signal.sigwait(srvlib.STOP_SIGNALS | {signal.SIGUSR1})
    if got != signal.SIGUSR1:
        sys.exit(0)
    ls = srvlib.tcp_listener(args.port)
    srvlib.log(PROG, "pid=%d listening on %d" % (os.getpid(), args.port))
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
