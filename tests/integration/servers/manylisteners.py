#!/usr/bin/env python3
"""manylisteners.py - a server that listens on many sockets: a flood of registrations for the launcher.

  manylisteners.py --port P --count N

Listens on 127.0.0.1:P (HTTP), then on N more sockets on 127.0.0.1 (ephemeral ports), each registered with
the launcher by the shim's listen(). Then a bind() that fails (unix:/nonexistent/manylisteners-done): the
launcher logs that record after every registration before it, so the line marks the end of the flood.
Logs "manylisteners: pid=<pid> listening on N+1 sockets". Replies (HTTP/1.0): "pid=<pid>". SIGTERM: exit 0.
"""
import argparse
import os
import resource
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "manylisteners"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    # As a server with that many sockets would: a soft descriptor limit that holds them all.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    # First: a stop signal that comes as soon as the launcher sees the socket must wait for sigwait().
    srvlib.block_stop_signals()
    ls = srvlib.tcp_listener(args.port)
    extra = []
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        extra.append(s)
    marker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        marker.bind("/nonexistent/manylisteners-done")
    except OSError:
        pass
    marker.close()
    srvlib.log(PROG, "pid=%d listening on %d sockets" % (os.getpid(), len(extra) + 1))
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
