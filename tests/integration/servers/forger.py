#!/usr/bin/env python3
"""forger.py - an HTTP server one of whose processes forges records on the shim's control socket.

  forger.py --port P --forge member|outsider

The main process listens on 127.0.0.1:P (so the generation becomes ready), then forks a child that finds the
inherited control socket (the one AF_UNIX SOCK_SEQPACKET descriptor it holds) and writes records to it as the
shim would, each claiming to come from the main process (Msg::pid):
  member    the child stays in the generation's process group: MSG_HELLO, then MSG_BINDFAIL of
            unix:/nonexistent/forged claiming pid 1 (a record a member may send: it is logged, with the
            sender the kernel names)
  outsider  the child first leaves the process group (setsid()), then sends MSG_HELLO and MSG_REGISTER of a
            socket listening on 127.0.0.1 (an ephemeral port, listen(2) called directly so that the shim
            does not see it), whose own copy it then closes
The child logs "forger: <mode> pid=<pid> port=<port> sent" and waits to be killed (at most 60 s).
Replies (HTTP/1.0): "pid=<pid>". SIGTERM: exit 0.
"""
import argparse
import ctypes
import os
import platform
import signal
import socket
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the servers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvlib  # noqa: E402

PROG = "forger"
# struct Msg of shim/protocol.h: magic, version, type, pid, arg, err, addrlen, sockaddr_storage (152 bytes).
MSG = struct.Struct("<IHHiiiI128s")
MAGIC, VERSION = 0x48525354, 3  # kMagic, kProtocolVersion
MSG_HELLO, MSG_REGISTER, MSG_BINDFAIL = 1, 3, 5
SYS_LISTEN = {"x86_64": 50, "aarch64": 201}[platform.machine()]


def record(mtype, pid, err=0, addr=b""):
    return MSG.pack(MAGIC, VERSION, mtype, pid, 0, err, len(addr), addr)


def find_ctl():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            s = socket.socket(fileno=fd)
        except OSError:
            continue
        if s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET:
            return s
        s.detach()
    raise SystemExit("forger: no control socket found")


def forge(mode, main_pid):
    signal.pthread_sigmask(signal.SIG_UNBLOCK, srvlib.STOP_SIGNALS)  # the stop signal ends it at once
    signal.alarm(60)  # bounded, whatever the test does
    port = 0
    if mode == "outsider":
        os.setsid()
    ctl = find_ctl()
    ctl.send(record(MSG_HELLO, main_pid))
    if mode == "member":
        path = b"/nonexistent/forged"
        addr = struct.pack("<H", socket.AF_UNIX) + path + b"\0"
        ctl.send(record(MSG_BINDFAIL, 1, err=2, addr=addr))
    else:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        # listen(2) itself, not the shim's: the shim would register the socket (and keep it from close()).
        if ctypes.CDLL(None, use_errno=True).syscall(SYS_LISTEN, ls.fileno(), 8) != 0:
            raise SystemExit("forger: listen: errno %d" % ctypes.get_errno())
        port = ls.getsockname()[1]
        ctl.sendmsg([record(MSG_REGISTER, main_pid)],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", ls.fileno()))])
        ls.close()
    ctl.detach()
    srvlib.log(PROG, "%s pid=%d port=%d sent" % (mode, os.getpid(), port))
    while True:
        signal.pause()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--forge", choices=("member", "outsider"), required=True)
    args = ap.parse_args()
    # First: a stop signal that comes as soon as the launcher sees the socket must wait for sigwait().
    srvlib.block_stop_signals()
    ls = srvlib.tcp_listener(args.port)
    main_pid = os.getpid()
    if os.fork() == 0:
        try:
            forge(args.forge, main_pid)
        finally:
            os._exit(0)
    srvlib.start_thread(srvlib.accept_forever, PROG, ls,
                        lambda c: srvlib.serve_http_conn(c, lambda req: "pid=%d\n" % os.getpid()))
    srvlib.wait_stop_and_exit(PROG)


if __name__ == "__main__":
    main()
