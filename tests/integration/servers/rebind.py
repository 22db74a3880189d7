#!/usr/bin/env python3
"""rebind.py - a master that binds its port again while it stops (it restarts a child on the way out).

  rebind.py --port P

Listens on 127.0.0.1:P and replies (HTTP/1.0) "pid=<pid>". SIGTERM/SIGINT: closes its listener, then binds
and listens on 127.0.0.1:P again, retrying EADDRINUSE for 3 s; logs "rebind: pid=<pid> rebind ok" and exits
0, or "rebind: pid=<pid> rebind failed: <error>" and exits 1.
"""
import argparse
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "rebind"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    srvlib.block_stop_signals()
    ls = srvlib.tcp_listener(args.port)
    stopping = []

    def accept_loop():
        while True:
            try:
                conn, _ = ls.accept()
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as e:
                if stopping:
                    return  # the listener was closed on the way out
                srvlib.log(PROG, "fatal: accept: %s (pid %d)" % (e, os.getpid()))
                os._exit(2)
            srvlib.serve_http_conn(conn, lambda req: "pid=%d\n" % os.getpid())
    srvlib.start_thread(accept_loop)
    srvlib.log(PROG, "pid=%d listening" % os.getpid())
    signal.sigwait(srvlib.STOP_SIGNALS)
    srvlib.INFLIGHT.wait_zero(5)
    stopping.append(True)
    ls.close()
    deadline = time.monotonic() + 3
    while True:
        try:
            again = srvlib.tcp_listener(args.port)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                srvlib.log(PROG, "pid=%d rebind failed: %s" % (os.getpid(), e))
                os._exit(1)
            time.sleep(0.1)  # the retry loop of the server being modelled
    again.close()
    srvlib.log(PROG, "pid=%d rebind ok" % os.getpid())
    os._exit(0)


if __name__ == "__main__":
    main()
