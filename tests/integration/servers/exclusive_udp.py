#!/usr/bin/env python3
"""exclusive_udp.py - pre-fork workers waiting with EPOLLEXCLUSIVE on a UDP socket and a TCP listener.

  exclusive_udp.py --port P [--workers N]

Binds UDP and TCP on 127.0.0.1:P, then forks N workers (default 2), each with its own epoll set holding both
sockets with EPOLLIN | EPOLLEXCLUSIVE, waiting without a timeout. Once every worker waits it logs
"exclusive_udp: pid=<pid> <N> workers waiting". A datagram is answered with "pid=<worker pid>"; a TCP
connection is held until the client closes it, each line answered with "pid=<worker pid>\\n" (a held
connection keeps a draining generation alive). SIGTERM: every process exits (default action).
"""
import argparse
import os
import select
import socket
import sys

PROG = "exclusive_udp"


def worker(u, ls, ready):
    pid = os.getpid()
    reply = b"pid=%d\n" % pid
    ep = select.epoll()
    for s in (u, ls):
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
    os.write(ready, b"1")
    os.close(ready)
    conns = {}
    while True:
        for fd, _ in ep.poll():
            if fd == u.fileno():
                while True:
                    try:
                        _, peer = u.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    u.sendto(reply, peer)
            elif fd == ls.fileno():
                try:
                    c, _ = ls.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                c.setblocking(False)
                conns[c.fileno()] = c
                ep.register(c.fileno(), select.EPOLLIN)
            else:
                c = conns[fd]
                try:
                    data = c.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    c.sendall(reply)
                else:
                    ep.unregister(fd)
                    del conns[fd]
                    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", args.port))
    u.setblocking(False)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(128)
    ls.setblocking(False)
    r, w = os.pipe()
    for _ in range(args.workers):
        if os.fork() == 0:
            os.close(r)
            try:
                worker(u, ls, w)
            finally:
                os._exit(1)
    os.close(w)
    got = 0
    while got < args.workers:
        b = os.read(r, 64)
        if not b:
            sys.stderr.write("%s: a worker died before it waited\n" % PROG)
            return 1
        got += len(b)
    sys.stderr.write("%s: pid=%d %d workers waiting\n" % (PROG, os.getpid(), args.workers))
    sys.stderr.flush()
    while True:  # the master only reaps
        try:
            os.wait()
        except ChildProcessError:
            select.select([], [], [])


if __name__ == "__main__":
    sys.exit(main())
