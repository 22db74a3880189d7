#!/usr/bin/env python3
"""unixserver.py - a stream server on a unix socket, written the way most daemons do it.

  unixserver.py --path PATH [--probe] [--threads 2] [--chdir DIR] [--quiet]

PATH starting with "@" is in the abstract namespace ("\\0name": nothing to unlink).
Start-up: os.unlink(PATH) (FileNotFoundError ignored), bind(), listen().
--probe   lighttpd-style: first connect() to PATH; if that succeeds another server owns it:
          "unixserver: fatal: PATH already in use" and exit 1; otherwise unlink and bind as above.
--chdir   change to DIR first (a relative PATH is then bound there).
--quiet   no start-up line (PATH may hold anything: the only log lines about it are then the launcher's).
Each connection gets "pid=<pid>\\n" and is closed (the client sends nothing).
SIGTERM/SIGINT: in-flight connections finish, PATH is unlinked, exit 0.
"""
import argparse
import os
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "unixserver"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--path", required=True)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chdir")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    # First: a stop signal that comes as soon as the launcher sees the socket must wait for sigwait().
    srvlib.block_stop_signals()
    if args.chdir:
        os.chdir(args.chdir)
    abstract = args.path.startswith("@")
    addr = "\0" + args.path[1:] if abstract else args.path

    if args.probe:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(addr)
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        else:
            srvlib.log(PROG, "fatal: %s already in use" % args.path)
            sys.exit(1)
        finally:
            probe.close()
    if not abstract:
        try:
            os.unlink(addr)
        except FileNotFoundError:
            pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ls.bind(addr)
    except OSError as e:
        srvlib.log(PROG, "fatal: unable to bind %s: %s" % (args.path, e))
        sys.exit(1)
    ls.listen(128)
    if not args.quiet:
        srvlib.log(PROG, "pid=%d listening on %s" % (os.getpid(), args.path))
    reply = b"pid=%d\n" % os.getpid()

    def on_conn(conn):
        with srvlib.INFLIGHT:
            try:
                conn.sendall(reply)
            except OSError:
                pass
            conn.close()

    for _ in range(args.threads):
        srvlib.start_thread(srvlib.accept_forever, PROG, ls, on_conn)

    def unlink_path():
        if not abstract:
            try:
                os.unlink(addr)
            except FileNotFoundError:
                pass

    srvlib.wait_stop_and_exit(PROG, before_exit=unlink_path)


if __name__ == "__main__":
    main()
