#!/usr/bin/env python3
"""pyserver.py - a plain http.server.ThreadingHTTPServer test server.

Every GET reply (HTTP/1.0, Connection: close) has the body

    pid=<pid> tag=<tag> path=<path>\\n

GET /slow?ms=N delays the reply by N milliseconds (N <= 60000).

On SIGTERM (or SIGINT) the server stops accepting, lets in-flight requests
finish, and exits 0.
"""

import argparse
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOW_MAX_MS = 60000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "pyserver"

    def do_GET(self):
        path = self.path
        parts = urlsplit(path)
        if parts.path == "/slow":
            try:
                ms = int(parse_qs(parts.query).get("ms", ["0"])[0])
            except ValueError:
                ms = 0
            ms = max(0, min(ms, SLOW_MAX_MS))
            if ms:
                time.sleep(ms / 1000.0)

        body = ("pid=%d tag=%s path=%s\n" % (os.getpid(), self.server.tag, path)).encode(
            "utf-8", "surrogateescape")
        try:
            self.send_response_only(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # client went away; nothing to do
        self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - silence per-request log
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False     # in-flight requests are not killed on exit ...
    block_on_close = True      # ... server_close() waits for them
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, tag, family):
        self.address_family = family
        self.tag = tag
        super().__init__(addr, handler)

    def server_bind(self):
        # Skip HTTPServer.server_bind's socket.getfqdn() (may do slow DNS).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="plain threaded HTTP test server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--backlog", type=int, default=128)
    args = ap.parse_args()

    host = args.host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    Server.request_queue_size = args.backlog

    try:
        server = Server((host, args.port), Handler, args.tag, family)
    except OSError as e:
        print("pyserver: fatal: unable to bind %s:%d: %s" % (args.host, args.port, e.strerror or e),
              file=sys.stderr, flush=True)
        sys.exit(1)

    def on_term(signum, frame):
        # shutdown() blocks until serve_forever() returns, so it must not be
        # called from the thread running serve_forever() (this one).
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    port = server.server_address[1]
    print("pyserver: listening on %s:%d pid=%d tag=%s" % (args.host, port, os.getpid(), args.tag),
          file=sys.stderr, flush=True)

    server.serve_forever()
    server.server_close()   # joins the request threads (block_on_close)
    sys.exit(0)


if __name__ == "__main__":
    main()
