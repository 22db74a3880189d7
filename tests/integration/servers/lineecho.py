"""lineecho.py PORT: a one-thread line server for `hotrestart verify --probe line:TEXT`. Each connection:
reads one line, answers "pid=<pid> <line>", closes. SIGTERM exits at once (between connections, after the
launcher's drain)."""
import os
import socket
import sys

ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(128)
while True:
    conn, _ = ls.accept()
    with conn:
        line = conn.makefile("rb").readline()
        conn.sendall(b"pid=%d %s" % (os.getpid(), line))
