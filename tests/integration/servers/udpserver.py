#!/usr/bin/env python3
"""udpserver.py - one UDP socket; every datagram is answered with "pid=<pid> <the datagram>".

  udpserver.py --port P [--host 127.0.0.1]

The receiving thread waits with a short timeout (socket.settimeout, as many servers do) so that a stop
request is noticed between datagrams: SIGTERM/SIGINT lets the datagram being answered finish, then exits 0
(no datagram taken is dropped). A datagram starting with "slow:" is answered 300 ms after it was taken
(and "udpserver: pid=<pid> took slow datagram <datagram>" is logged when it is taken): a request in flight.
"""
import argparse
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "udpserver"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.bind((args.host, args.port))
    except OSError as e:
        srvlib.log(PROG, "fatal: unable to bind: %s" % e)
        sys.exit(1)
    s.settimeout(0.1)
    srvlib.log(PROG, "pid=%d listening on udp %s:%d" % (os.getpid(), args.host, args.port))
    prefix = b"pid=%d " % os.getpid()
    stop = threading.Event()

    def receiver():
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(2048)
            except (socket.timeout, BlockingIOError, InterruptedError):
                continue
            if data.startswith(b"slow:"):
                srvlib.log(PROG, "pid=%d took slow datagram %s" % (os.getpid(), data.decode(errors="replace")))
                time.sleep(0.3)
            try:
                s.sendto(prefix + data, peer)
            except OSError as e:
                srvlib.log(PROG, "sendto: %s" % e)

    srvlib.block_stop_signals()
    t = srvlib.start_thread(receiver)
    sig = srvlib.signal.sigwait(srvlib.STOP_SIGNALS)
    stop.set()
    t.join(5)
    srvlib.log(PROG, "pid=%d stopping on signal %d" % (os.getpid(), sig))
    os._exit(0)


if __name__ == "__main__":
    main()
