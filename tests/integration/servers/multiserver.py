#!/usr/bin/env python3
"""multiserver.py - an HTTP/1.0 server on any number of TCP listeners, one accept thread per listener.

  multiserver.py [--listen SPEC]... [--config FILE] [--reexec] [--tag TAG]

SPEC is HOST:PORT[,v6only=0|1][,reuseport][,count=N], HOST like 127.0.0.1, 0.0.0.0, ::1, [::].
  v6only=   set IPV6_V6ONLY before bind()
  reuseport set SO_REUSEPORT before bind()
  count=N   open N sockets with this spec (with reuseport: a SO_REUSEPORT group)
--config FILE  more SPECs, one per line (read at start; what a new configuration changes)
--reexec       re-exec itself (os.execv of the interpreter, same pid) before binding anything

Every reply's body is
  pid=<pid> sock=<index of the listener> spec=<its spec> lfds=<fd of every listener, in order> tag=<tag>
Binding failure: "multiserver: fatal: unable to bind SPEC: ERROR" and exit 1.
SIGTERM/SIGINT: in-flight requests finish, exit 0.
"""
import argparse
import os
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "multiserver"


def parse_spec(spec):
    parts = spec.strip().split(",")
    host, port = parts[0].rsplit(":", 1)
    host = host.strip("[]")
    opts = {"v6only": None, "reuseport": False, "count": 1}
    for p in parts[1:]:
        if p.startswith("v6only="):
            opts["v6only"] = int(p.split("=", 1)[1])
        elif p == "reuseport":
            opts["reuseport"] = True
        elif p.startswith("count="):
            opts["count"] = int(p.split("=", 1)[1])
        else:
            raise SystemExit("%s: bad spec %r" % (PROG, spec))
    return host, int(port), opts


def open_listener(spec):
    host, port, opts = parse_spec(spec)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if opts["reuseport"]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6 and opts["v6only"] is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, opts["v6only"])
    s.bind((host, port))
    s.listen(128)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--config")
    ap.add_argument("--reexec", action="store_true")
    ap.add_argument("--reexeced", action="store_true")
    ap.add_argument("--tag", default="v1")
    args = ap.parse_args()

    if args.reexec and not args.reexeced:
        srvlib.log(PROG, "pid=%d re-executing itself" % os.getpid())
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), "--reexeced"] + sys.argv[1:])

    specs = list(args.listen)
    if args.config:
        with open(args.config) as f:
            specs += [line.strip() for line in f if line.strip() and not line.startswith("#")]

    listeners = []  # (spec, socket)
    for spec in specs:
        for _ in range(parse_spec(spec)[2]["count"]):
            try:
                listeners.append((spec, open_listener(spec)))
            except OSError as e:
                srvlib.log(PROG, "fatal: unable to bind %s: %s" % (spec, e.strerror or e))
                sys.exit(1)
    lfds = ",".join(str(s.fileno()) for _, s in listeners)
    srvlib.log(PROG, "pid=%d%s listening on %s (fds %s) tag=%s"
               % (os.getpid(), " (re-executed)" if args.reexeced else "", " ".join(specs), lfds, args.tag))

    srvlib.block_stop_signals()
    for i, (spec, s) in enumerate(listeners):
        body = "pid=%d sock=%d spec=%s lfds=%s tag=%s\n" % (os.getpid(), i, spec, lfds, args.tag)
        srvlib.start_thread(srvlib.accept_forever, PROG, s,
                            lambda conn, b=body: srvlib.serve_http_conn(conn, lambda req: b))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
