#!/usr/bin/env python3
"""lockguard.py - a server that refuses to start while another process holds its lock file.

  lockguard.py --port P --lock PATH [--style flock|fcntl]

Opens PATH (created if missing) and takes an exclusive non-blocking lock on it: flock(LOCK_EX|LOCK_NB) or
fcntl(F_SETLK) (Python's lockf). If that fails, logs "lockguard: pid=<pid> already running (PATH is
locked)" and exits 1. Otherwise keeps the lock, listens on 127.0.0.1:P and replies (HTTP/1.0)
"pid=<pid> gen=<$HOTRESTART_GENERATION>". SIGTERM/SIGINT: exit 0.
"""
import argparse
import fcntl
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "lockguard"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lock", required=True)
    ap.add_argument("--style", choices=["flock", "fcntl"], default="flock")
    args = ap.parse_args()
    srvlib.block_stop_signals()
    fd = os.open(args.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if args.style == "flock":
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        srvlib.log(PROG, "pid=%d already running (%s is locked: %s)" % (os.getpid(), args.lock, e))
        sys.exit(1)
    gen = os.environ.get("HOTRESTART_GENERATION", "-")
    ls = srvlib.tcp_listener(args.port)
    srvlib.log(PROG, "pid=%d gen=%s locked %s" % (os.getpid(), gen, args.lock))
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d gen=%s\n" % (os.getpid(), gen)))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
