#!/usr/bin/env python3
"""pollserver.py - a single-threaded event-loop HTTP/1.0 server with a non-blocking listener.

  pollserver.py --port P [--host 127.0.0.1] [--loop poll|select]

--loop poll    select.poll() (level-triggered poll(2) on fd numbers)
--loop select  selectors.SelectSelector (select(2))
A connection is read until the blank line that ends the request, answered
  pid=<pid> loop=<loop>
and closed. An incomplete request keeps its connection open (and the process draining) until the client
closes it. SIGTERM/SIGINT: exit 0. Like asyncio, the loop also watches a signal.set_wakeup_fd() pipe: a
Python signal handler only runs once the interpreter gets control back, so without it a signal that lands
just before poll()/select() blocks would wait for the next event (forever, on an idle loop).
"""
import argparse
import os
import select
import selectors
import signal
import socket
import sys

PROG = "pollserver"


class Loop:
    """The few calls the server needs, over poll() or select()."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "poll":
            self.p = select.poll()
        else:
            self.sel = selectors.SelectSelector()

    def add(self, sock):
        fd = sock if isinstance(sock, int) else sock.fileno()
        if self.kind == "poll":
            self.p.register(fd, select.POLLIN)
        else:
            self.sel.register(fd, selectors.EVENT_READ)

    def remove(self, sock):
        fd = sock if isinstance(sock, int) else sock.fileno()
        if self.kind == "poll":
            self.p.unregister(fd)
        else:
            self.sel.unregister(fd)

    def wait(self):
        """Returns the ready fds."""
        if self.kind == "poll":
            return [fd for fd, _ in self.p.poll()]
        return [key.fd for key, _ in self.sel.select()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--loop", choices=["poll", "select"], default="poll")
    args = ap.parse_args()

    def on_term(signum, frame):
        sys.stderr.write("%s: pid=%d stopping\n" % (PROG, os.getpid()))
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind((args.host, args.port))
    except OSError as e:
        sys.stderr.write("%s: fatal: unable to bind: %s\n" % (PROG, e))
        sys.exit(1)
    ls.listen(128)
    ls.setblocking(False)
    loop = Loop(args.loop)
    loop.add(ls)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    loop.add(wake_r)
    conns = {}  # fd -> [socket, bytes received]
    body = ("pid=%d loop=%s\n" % (os.getpid(), args.loop)).encode()
    reply = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
             % len(body)) + body
    sys.stderr.write("%s: pid=%d loop=%s listening on %s:%d\n" % (PROG, os.getpid(), args.loop, args.host,
                                                                  args.port))
    sys.stderr.flush()

    while True:
        for fd in loop.wait():
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)  # the handler itself runs when poll() returns
                except BlockingIOError:
                    pass
                continue
            if fd == ls.fileno():
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = [c, b""]
                    loop.add(c)
                continue
            entry = conns.get(fd)
            if entry is None:
                continue
            c = entry[0]
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            entry[1] += data
            if data and b"\r\n\r\n" not in entry[1]:
                continue
            loop.remove(c)
            del conns[fd]
            if data:
                try:
                    c.setblocking(True)
                    c.settimeout(5)
                    c.sendall(reply)
                except OSError:
                    pass
            c.close()


if __name__ == "__main__":
    main()
