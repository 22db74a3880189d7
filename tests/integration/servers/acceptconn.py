#!/usr/bin/env python3
"""acceptconn.py - a server that calls listen() only on a socket that does not listen yet (haproxy's way).

  acceptconn.py --port P [--host 127.0.0.1]

After bind() it asks getsockopt(SO_ACCEPTCONN) and skips listen() when the answer is 1 (a socket it took
over already listens), then accepts in a thread. Logs "acceptconn: pid=<pid> acceptconn=<0|1>".
Replies (HTTP/1.0): "pid=<pid>". SIGTERM/SIGINT: exit 0.
"""
import argparse
import os
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "acceptconn"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    srvlib.block_stop_signals()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.host, args.port))
    listening = ls.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if not listening:
        ls.listen(128)
    srvlib.log(PROG, "pid=%d acceptconn=%d" % (os.getpid(), listening))
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
