#!/usr/bin/env python3
"""daemonize.py - a server that daemonizes the old way: fork, the parent exits 0 at once, the child (same
process group: no setsid) binds and serves. With --setsid, the classic double fork: the child calls
setsid() (a new session and process group) and forks again; the grandchild serves.

  daemonize.py --port P [--host 127.0.0.1] --pid-file PATH [--setsid]

The child writes its pid to PATH before binding. Replies (HTTP/1.0): "pid=<pid>". SIGTERM: exit 0.
"""
import argparse
import os
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "daemonize"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--setsid", action="store_true")
    args = ap.parse_args()
    if os.fork() != 0:
        os._exit(0)  # the parent: "daemonized"
    if args.setsid:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
    tmp = args.pid_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, args.pid_file)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.host, args.port))
    ls.listen(128)
    srvlib.log(PROG, "child pid=%d listening on %s:%d" % (os.getpid(), args.host, args.port))
    srvlib.block_stop_signals()
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
