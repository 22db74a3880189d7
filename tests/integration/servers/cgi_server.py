#!/usr/bin/env python3
"""cgi_server.py - an http.server (ThreadingHTTPServer) that runs a CGI-style child.

  cgi_server.py --port P [--host 127.0.0.1]

GET /cgi forks and, in the child, execs
  /bin/sh -c 'echo HR=${HOTRESTART:-none}; echo PRELOAD=${LD_PRELOAD:-none}; ls /proc/self/fd | wc -l'
with its stdout on a pipe and WITHOUT closing any descriptor (os.fork + os.execv, the way system() and old
CGI servers do it); the reply body is that output followed by "pid=<server pid>".
Any other GET: "pid=<pid>". SIGTERM/SIGINT: stop accepting, finish requests, exit 0.
"""
import argparse
import os
import signal
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CMD = "echo HR=${HOTRESTART:-none}; echo PRELOAD=${LD_PRELOAD:-none}; ls /proc/self/fd | wc -l"


def run_cgi():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            os.execv("/bin/sh", ["/bin/sh", "-c", CMD])
        finally:
            os._exit(127)
    os.close(w)
    out = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        out += b
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = ""
        if self.path == "/cgi":
            body = run_cgi()
        body = (body + "pid=%d\n" % os.getpid()).encode()
        self.send_response_only(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("cgi_server: fatal: unable to bind: %s\n" % e)
        sys.exit(1)

    def on_term(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sys.stderr.write("cgi_server: pid=%d listening on %s:%d\n" % (os.getpid(), args.host, args.port))
    sys.stderr.flush()
    server.serve_forever()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
