#!/usr/bin/env python3
"""rawclose.py - an HTTP/1.0 server whose connections are closed where the shim cannot see it.

  rawclose.py --port P [--host 127.0.0.1] [--style syscall|fork] [--threads 2]

--style syscall  after the reply, the accepted descriptor is closed with syscall(SYS_close, fd) through
                 ctypes (not libc's close()), from one of N accept threads
--style fork     the accepting process forks per connection; the child answers and leaves with
                 os._exit(0) without closing the connection, the parent closes its copy right away
                 (the classic C pre-fork/fork-per-connection shape)
Replies: "pid=<pid of the server's main process> handler=<pid that answered> style=<style>".
SIGTERM/SIGINT: exit 0.
"""
import argparse
import ctypes
import os
import platform
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "rawclose"
SYS_CLOSE = {"x86_64": 3, "aarch64": 57, "riscv64": 57, "i686": 6, "armv7l": 6}[platform.machine()]
LIBC = ctypes.CDLL(None, use_errno=True)
MAIN_PID = os.getpid()


def raw_close(fd):
    if LIBC.syscall(SYS_CLOSE, fd) != 0:
        srvlib.log(PROG, "syscall(SYS_close, %d) failed: errno %d" % (fd, ctypes.get_errno()))


def answer(conn, style):
    req = srvlib.read_request(conn)
    if req:
        srvlib.http_reply(conn, "pid=%d handler=%d style=%s\n" % (MAIN_PID, os.getpid(), style))


def on_conn_syscall(conn):
    with srvlib.INFLIGHT:
        try:
            answer(conn, "syscall")
        except OSError:
            pass
        raw_close(conn.detach())


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def on_conn_fork(conn):
    reap()
    pid = os.fork()
    if pid == 0:
        try:
            answer(conn, "fork")
        except OSError:
            pass
        os._exit(0)  # no close(): the kernel closes the connection, the shim sees _exit
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--style", choices=["syscall", "fork"], default="syscall")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import socket
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind((args.host, args.port))
    except OSError as e:
        srvlib.log(PROG, "fatal: unable to bind: %s" % e)
        sys.exit(1)
    ls.listen(128)
    srvlib.log(PROG, "pid=%d style=%s listening on %s:%d" % (os.getpid(), args.style, args.host, args.port))
    srvlib.block_stop_signals()
    if args.style == "syscall":
        for _ in range(args.threads):
            srvlib.start_thread(srvlib.accept_forever, PROG, ls, on_conn_syscall)
    else:
        srvlib.start_thread(srvlib.accept_forever, PROG, ls, on_conn_fork)
        # children are reaped by the accept loop; also reap while idle so none lingers as a zombie
        def reaper():
            ev = threading.Event()
            while not ev.wait(0.2):
                reap()
        srvlib.start_thread(reaper)
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
