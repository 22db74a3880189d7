#!/usr/bin/env python3
"""envserver.py - what a dynamic program under the shim sees of the conventions, over HTTP.

  envserver.py --port P

Binds and listens on 127.0.0.1:P itself (under the launcher, the shim adopts the inherited socket), then
answers every connection with one line:
  pid=<pid> fd=<its listening socket's number> LISTEN_PID=<value or -> LISTEN_FDS=<...> LISTEN_FDNAMES=<...>
  SERVER_STARTER_PORT=<...>
read from its environment as the program found it. SIGTERM: exit 0 after the reply in progress.
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

NAMES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "SERVER_STARTER_PORT")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    seen = " ".join("%s=%s" % (n, os.environ.get(n, "-")) for n in NAMES)
    ls = srvlib.tcp_listener(args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            c, _ = ls.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # draining: the stop signal follows
        with c:
            c.recv(65536)
            body = ("pid=%d fd=%d %s\n" % (os.getpid(), ls.fileno(), seen)).encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


if __name__ == "__main__":
    main()
