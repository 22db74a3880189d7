"""The launcher as a systemd service: what it says to its own NOTIFY_SOCKET (READY=1 with MAINPID once the first
generation is ready; RELOADING=1 with MONOTONIC_USEC and READY=1 around each reload, rolled back or not;
STOPPING=1; STATUS=), to a fake service manager: a Unix datagram socket of the test, bound to a path or to an
abstract name, with SO_PASSCRED so the kernel says who sent each datagram.

Every wait is on a datagram, a reply or a log line, with a deadline."""
import os
import socket
import struct
import time

import pytest

from conftest import free_port, http_get, reply_pid, server_argv, write_mode

from test_control import Ctl


class FakeManager:
    """The service manager's end: a datagram socket; each datagram read as (sender pid, [(key, value)...])."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)

    def next(self, timeout=15.0):
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no notification within %.0f s" % timeout)
        pid = 0
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = [tuple(line.split("=", 1)) for line in data.decode().split("\n") if line]
        return pid, fields

    def nothing_more(self):
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return True
        raise AssertionError("unexpected notification: %r" % data)

    def close(self):
        self.sock.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def launch_notified(launch, address, argv, options):
    env = dict(os.environ, NOTIFY_SOCKET=address)
    return launch(argv, options=options, env=env)


def gen_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)


def test_start_reload_rollback_stop_sequence(launch, tmp_path):
    """The exact datagrams for a start, a reload, a rolled-back reload and a stop, each from the launcher's
    pid; the generations never see the launcher's NOTIFY_SOCKET (with --ready notify each gets its own)."""
    path = str(tmp_path / "notify")
    mgr = FakeManager(path)
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    ctl = Ctl(tmp_path / "control")
    hr = launch_notified(launch, path, server_argv("threads", port, extra=["--mode-file", str(mode),
                                                                           "--notify-after", "0"]),
                         ["--control", ctl.path, "--ready", "notify", "--ready-timeout", "5"])
    seen = []

    def expect(*keys):
        pid, fields = mgr.next()
        seen.append(fields)
        assert pid == hr.pid, "datagram %r from pid %d, not the launcher %d" % (fields, pid, hr.pid)
        assert [k for k, _ in fields] == list(keys), "got %r, expected the keys %r; so far %r" % (fields, keys, seen)
        return dict(fields)

    pid1 = hr.wait_ready(1)
    assert expect("STATUS") == {"STATUS": "gen 1 (pid %d) starting" % pid1}
    assert expect("READY", "MAINPID", "STATUS") == {"READY": "1", "MAINPID": str(hr.pid),
                                                    "STATUS": "gen 1 (pid %d) serving" % pid1}
    env1 = gen_environ(pid1)
    assert env1[b"NOTIFY_SOCKET"].startswith(b"@hotrestart/"), env1.get(b"NOTIFY_SOCKET")
    assert reply_pid(http_get(port)) == pid1

    # A reload: RELOADING=1 stamped when it started, READY=1 once it is over.
    before = monotonic_usec()
    rc, rep = ctl.reload()
    after = monotonic_usec()
    assert rc == 0 and rep["outcome"] == "ok", rep
    pid2 = rep["pid"]
    got = expect("RELOADING", "MONOTONIC_USEC", "STATUS")
    assert got["RELOADING"] == "1" and got["STATUS"] == "reload 1: starting gen 2", got
    assert before <= int(got["MONOTONIC_USEC"]) <= after, (before, got, after)
    got = expect("READY", "STATUS")
    assert got["READY"] == "1" and got["STATUS"].startswith("reload 1: gen 2 (pid %d) serving; ready in " % pid2), got
    assert gen_environ(pid2)[b"NOTIFY_SOCKET"] not in (path.encode(), env1[b"NOTIFY_SOCKET"])

    # A reload rolled back: READY=1 all the same (the reload is over), STATUS= says so.
    write_mode(mode, "exit1")
    rc, rep = ctl.reload()
    assert rc == 1 and rep["outcome"] == "rolled_back", rep
    got = expect("RELOADING", "MONOTONIC_USEC", "STATUS")
    assert got["STATUS"] == "reload 2: starting gen 3", got
    got = expect("READY", "STATUS")
    assert got["STATUS"].startswith("reload 2 failed: gen 3 exited with status 1 before it was ready"), got
    assert got["STATUS"].endswith("; rolled back, gen 2 keeps serving"), got
    assert reply_pid(http_get(port)) == pid2

    since = hr.mark()
    rc, out, err = ctl.run("stop")
    assert rc == 0, (rc, out, err)
    assert expect("STOPPING", "STATUS") == {"STOPPING": "1", "STATUS": "stopping"}
    hr.wait_for(r"exiting with status 0", since=since)
    assert hr.wait_exit(10) == 0
    assert mgr.nothing_more()
    mgr.close()


def test_abstract_socket_full_queue_never_blocks(launch, tmp_path):
    """NOTIFY_SOCKET=@NAME (abstract). The manager reads nothing for a while and its queue is full: the
    launcher still starts, serves and reloads; what it had to say arrives, in order, once there is room."""
    name = "hotrestart-test/%d/%d" % (os.getpid(), free_port())
    mgr = FakeManager("\0" + name)
    # Fill the manager's queue from a socket of the test until the kernel refuses more.
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    queued = 0
    while True:
        try:
            filler.sendto(b"FILLER=1", "\0" + name)
        except BlockingIOError:
            break
        queued += 1
        assert queued < 100000
    port = free_port()
    hr = launch_notified(launch, "@" + name, server_argv("threads", port), [])
    pid1 = hr.wait_ready(1)
    assert reply_pid(http_get(port)) == pid1
    assert b"NOTIFY_SOCKET" not in gen_environ(pid1)
    gen = hr.reload()
    assert gen == 2
    for _ in range(queued):
        assert mgr.next()[1] == [("FILLER", "1")]
    keys = [[k for k, _ in mgr.next()[1]] for _ in range(4)]
    assert keys == [["STATUS"], ["READY", "MAINPID", "STATUS"], ["RELOADING", "MONOTONIC_USEC", "STATUS"],
                    ["READY", "STATUS"]], keys
    assert hr.stop() == 0
    assert [k for k, _ in mgr.next()[1]] == ["STOPPING", "STATUS"]
    filler.close()
    mgr.close()


@pytest.mark.parametrize("value,line", [
    ("relative/notify", r"warning: NOTIFY_SOCKET='relative/notify' is neither an absolute path nor an abstract name"),
    ("/nonexistent/notify", r"warning: unable to notify the service manager at NOTIFY_SOCKET=/nonexistent/notify: "
                            r"No such file or directory \(said once\)"),
], ids=["relative", "missing"])
def test_unusable_notify_socket_is_one_warning(launch, value, line):
    """A NOTIFY_SOCKET the launcher cannot use: one warning line naming it, and the service runs and reloads."""
    port = free_port()
    hr = launch_notified(launch, value, server_argv("iterative", port), [])
    hr.wait_ready(1)
    hr.wait_for(line, since=0)
    assert hr.reload() == 2
    assert hr.stop() == 0
    assert len([l for l in hr.log().split("\n") if "NOTIFY_SOCKET" in l]) == 1, hr.log()


def test_crash_restart_is_a_status(launch, tmp_path):
    """--restart: a generation that dies on its own and the one that replaces it are STATUS= lines; READY=1
    (and MAINPID) only ever once."""
    path = str(tmp_path / "notify")
    mgr = FakeManager(path)
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "crash")  # gen 1 aborts after its first request
    hr = launch_notified(launch, path, server_argv("iterative", port, extra=["--mode-file", str(mode)]),
                         ["--restart", "on-failure"])
    pid1 = hr.wait_ready(1)
    assert [k for k, _ in mgr.next()[1]] == ["STATUS"]
    assert [k for k, _ in mgr.next()[1]] == ["READY", "MAINPID", "STATUS"]
    write_mode(mode, "serve")  # read by the next generation
    assert reply_pid(http_get(port)) == pid1
    pid2 = hr.wait_ready(2)
    assert mgr.next()[1] == [("STATUS", "gen 1 was killed by SIGABRT; restarting (--restart)")]
    assert mgr.next()[1] == [("STATUS", "gen 2 (pid %d) serving" % pid2)]
    assert reply_pid(http_get(port)) == pid2
    assert hr.stop() == 0
    assert [k for k, _ in mgr.next()[1]] == ["STOPPING", "STATUS"]
    assert mgr.nothing_more()
    mgr.close()
