#!/usr/bin/env python3
"""pidguard.py - a server that refuses to start while the process its pid file names is alive (apache's way).

  pidguard.py --port P --pid-file PATH

Reads PATH; if it names a process for which kill(pid, 0) succeeds, logs "pidguard: pid=<pid> already
running (pid N)" and exits 0 without binding. Otherwise writes its pid to PATH, listens on 127.0.0.1:P and
replies (HTTP/1.0) "pid=<pid>". SIGTERM/SIGINT: removes PATH and exits 0.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "pidguard"


def running(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0
    if pid <= 0:
        return 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return 0
    except PermissionError:
        return pid
    return pid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid-file", required=True)
    args = ap.parse_args()
    srvlib.block_stop_signals()
    other = running(args.pid_file)
    if other:
        srvlib.log(PROG, "pid=%d already running (pid %d)" % (os.getpid(), other))
        sys.exit(0)
    tmp = "%s.%d" % (args.pid_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, args.pid_file)
    ls = srvlib.tcp_listener(args.port)
    srvlib.log(PROG, "pid=%d listening" % os.getpid())
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))

    def remove_pid_file():
        try:
            os.unlink(args.pid_file)
        except FileNotFoundError:
            pass
    srvlib.wait_stop_and_exit(PROG, before_exit=remove_pid_file)


if __name__ == "__main__":
    main()
