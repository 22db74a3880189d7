"""Sockets by convention, both ways: socket activation into the launcher (LISTEN_PID/LISTEN_FDS), sockets the
launcher binds itself (--listen) for a generation running as another user (--user), and programs the shim
cannot run in (a `gcc -static` server) that take the registry's sockets from LISTEN_FDS or
SERVER_STARTER_PORT, say READY=1 themselves and stop gracefully on SIGTERM.

Every wait is on an event (a launcher log line, a reply, a process exit) with a deadline."""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from conftest import (BUILD, LAUNCHER, TESTSERVER, Launcher, free_port, http_get, line_time, pid_alive, reply_pid,
                      server_argv)

STATIC = os.path.join(BUILD, "staticserver")


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode(errors="replace").split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


def fds_of(pid):
    """{fd number: link target} of a process (we are root in CI, or its owner)."""
    d = "/proc/%d/fd" % pid
    out = {}
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    return out


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line for pid %d" % pid)


def reload_json(control):
    p = subprocess.run([LAUNCHER, "reload", "--json", "--control", control], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.stdout.strip(), "no report (exit %d): %s" % (p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def status_json(control):
    p = subprocess.run([LAUNCHER, "status", "--json", "--control", control], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


class ActivatedLauncher(Launcher):
    """The launcher exec'd by `sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec hotrestart ...'` with sock as fd 3, as
    a service manager starts it (LISTEN_PID is the launcher's own pid: sh execs it)."""

    def __init__(self, sock, argv, options=()):
        options = list(options) + ["--rollback-window", "0.1"]
        cmd = " ".join("'%s'" % a for a in [LAUNCHER] + options + ["--"] + list(argv))
        self.argv = ["/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec " + cmd]
        self.lines = []
        self.cond = threading.Condition()
        self.gen_pids = {}
        fd = sock.fileno()
        # Popen closes what pass_fds does not name after preexec_fn: the dup at 3 stays.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True, pass_fds=(3,),
                                     preexec_fn=lambda: os.dup2(fd, 3))
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._scan = 0


@pytest.fixture
def started():
    """Launchers made here by hand, cleaned up (by pid and process group) after the test."""
    mine = []
    yield mine
    for l in mine:
        l.cleanup()


def test_socket_activation(started):
    """A socket made (and listened on) before the launcher starts is the one the server serves on: the same
    inode, and a connection queued before the launcher existed is served."""
    port = free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    inode = os.fstat(sock.fileno()).st_ino
    early = socket.create_connection(("127.0.0.1", port), timeout=10)
    early.sendall(b"GET /early HTTP/1.0\r\nHost: test\r\n\r\n")
    hr = ActivatedLauncher(sock, server_argv("iterative", port))
    started.append(hr)
    sock.close()  # the launcher has it now; the test keeps nothing open on the port but the early client
    hr.wait_for(r"socket activation: 127\.0\.0\.1:%d \(fd 3, web\)" % port)
    pid1 = hr.wait_ready(1)
    reply = b""
    while True:
        b = early.recv(65536)
        if not b:
            break
        reply += b
    early.close()
    assert b" 200 " in reply.split(b"\r\n")[0] and reply_pid(reply.decode()) == pid1, reply
    assert "socket:[%d]" % inode in fds_of(pid1).values()
    # It was given the socket by convention too (the variables as exec'd; the shim took descriptor 3 and
    # unset them before the program ran: its bind() adopted the socket).
    env = environ_of(pid1)
    assert env["LISTEN_PID"] == str(pid1) and env["LISTEN_FDS"] == "1" and env["LISTEN_FDNAMES"] == "web", env
    assert env["SERVER_STARTER_PORT"] == "127.0.0.1:%d=3" % port, env
    gen = hr.reload()
    pid2 = hr.gen_pids[gen]
    assert reply_pid(http_get(port)) == pid2
    assert "socket:[%d]" % inode in fds_of(pid2).values()
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_activation_for_another_process_is_ignored(launch):
    """LISTEN_PID names someone else: nothing is taken over, and no LISTEN_* reaches the generation."""
    port = free_port()
    env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1", LISTEN_FDNAMES="stale")
    hr = launch(server_argv("iterative", port), env=env)
    pid1 = hr.wait_ready(1)
    assert "socket activation" not in hr.log()
    assert not any(k.startswith("LISTEN_") for k in environ_of(pid1)), environ_of(pid1)
    assert hr.stop() == 0


@pytest.mark.parametrize("via", ["listen_fds", "starter"])
def test_static_server_reloaded_under_load(launch, load, via):
    """A program the shim cannot run in, given its socket by convention, reloaded 10 times under load: no
    request fails. listen_fds: ready by READY=1 (--ready notify); starter: SERVER_STARTER_PORT, ready by
    --ready SEC."""
    port = free_port()
    if via == "listen_fds":
        hr = launch([STATIC, "--tag", via], options=["--listen", "127.0.0.1:%d" % port, "--ready", "notify"])
    else:
        hr = launch([STATIC, "--starter", "--tag", via], options=["--listen", "127.0.0.1:%d" % port,
                                                                  "--ready", "0.2"])
    hr.wait_for(r"gen 1: .*staticserver is a static executable \(no ELF interpreter\)")
    pid1 = hr.wait_ready(1)
    assert "via=%s" % via in http_get(port)
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: p == pid1, count=20)
    pids = [pid1]
    for _ in range(10):
        gen = hr.reload()
        pids.append(hr.gen_pids[gen])
        ld.wait_served_by(lambda p, want=pids[-1]: p == want, count=5)
    ld.stop()
    # Nobody counts a program's connections without the shim: the report says so (no number).
    assert re.search(r"reload 10: gen 11 \(pid \d+\) serving; ready in \d+ ms$", hr.log(), re.M), hr.log()
    assert ld.failures == [], "%d of %d requests failed: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])
    assert set(pids) <= set(ld.by_pid), ld.by_pid
    # Each old generation stopped on its own SIGTERM, long before any SIGKILL.
    assert "sending SIGKILL" not in hr.log()
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_static_server_gets_sockets_by_convention(launch):
    """Descriptors 3 and 4 are the registry's sockets, described by every variable; nothing of the shim or
    of the launcher's private descriptors reaches it."""
    port = free_port()
    try:
        socket.socket(socket.AF_INET6).close()
        v6 = socket.getaddrinfo("::1", port)
    except OSError:
        pytest.skip("no IPv6 loopback")
    hr = launch([STATIC], options=["--listen", "127.0.0.1:%d" % port, "--listen", "[::1]:%d" % port,
                                   "--ready", "notify"])
    pid1 = hr.wait_ready(1)
    env = environ_of(pid1)
    assert env["LISTEN_PID"] == str(pid1) and env["LISTEN_FDS"] == "2", env
    assert env["LISTEN_FDNAMES"] == "unknown:unknown", env
    assert env["SERVER_STARTER_PORT"] == "127.0.0.1:%d=3;[::1]:%d=4" % (port, port), env
    assert not any(k in env for k in ("HOTRESTART", "LD_PRELOAD")), env
    assert "fds=2" in http_get(port) and "fds=2" in http_get(port, host="::1")
    # After a reply: READY=1 is sent (and the launcher sees it ready) before the server closes the socket
    # it sent it on.
    fds = fds_of(pid1)
    assert sorted(fds) == [0, 1, 2, 3, 4], fds
    assert fds[3].startswith("socket:[") and fds[4].startswith("socket:[")
    assert hr.stop() == 0


def test_listen_on_port_80_as_nobody(launch, load):
    """--listen 127.0.0.1:80 --user nobody: the launcher (root) binds port 80, the generation runs as nobody
    (its groups, HOME and USER), serves there through the shim, and reloads."""
    if os.geteuid() != 0:
        pytest.skip("binding port 80 and switching users needs root (CI runs as root)")
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 80))
    except OSError as e:
        pytest.skip("127.0.0.1:80 is not free here: %s" % e)
    nobody = pwd.getpwnam("nobody")
    hr = launch(server_argv("threads", 80), options=["--listen", "127.0.0.1:80", "--user", "nobody"])
    hr.wait_for(r"listening on 127\.0\.0\.1:80 \(--listen\)")
    pid1 = hr.wait_ready(1)
    assert uid_of(pid1) == [nobody.pw_uid] * 4
    env = environ_of(pid1)
    assert env["USER"] == "nobody" and env["HOME"] == nobody.pw_dir, env
    ld = load(80, threads=2)
    ld.wait_served_by(lambda p: p == pid1, count=10)
    gen = hr.reload()
    pid2 = hr.gen_pids[gen]
    assert uid_of(pid2) == [nobody.pw_uid] * 4
    ld.wait_served_by(lambda p: p == pid2, count=10)
    ld.stop()
    assert ld.failures == [], ld.failures[:5]
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_static_program_without_options_is_refused():
    """The first start of a static program with no readiness it can give and no socket to give it: refused
    before exec, one line naming both options, exit 125."""
    p = subprocess.run([LAUNCHER, "--", STATIC], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    lines = [l for l in err.splitlines() if "refused" in l]
    assert len(lines) == 1 and lines[0].endswith(
        "error: gen 1 was refused: %s is a static executable (no ELF interpreter), which the shim cannot run "
        "in: add --ready notify (it sends READY=1) or --ready SEC, and --listen ADDR (or socket activation) for "
        "the sockets it reads from LISTEN_FDS" % STATIC), err
    assert "gen 1 started" not in err


def _setuid_copy(path):
    if os.geteuid() != 0:
        pytest.skip("making a set-user-ID file of another user needs root")
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    os.chmod(path, 0o4755)
    return "setuid or setgid (a secure execution)"


def _caps_copy(path):
    cap = (0x02000001).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)
    try:
        os.setxattr(path, "security.capability", cap)  # cap_net_bind_service=ep
    except OSError as e:
        pytest.skip("unable to set file capabilities here: %s" % e)
    return "a program with file capabilities (a secure execution)"


@pytest.mark.parametrize("make", [_setuid_copy, _caps_copy], ids=["setuid", "capabilities"])
def test_secure_execution_is_known_before_exec(tmp_path, make):
    """A dynamic program that would run as a secure execution (the loader ignores LD_PRELOAD) is named
    for what it is, before exec, and refused without what it needs."""
    prog = str(tmp_path / "server")
    shutil.copy(TESTSERVER, prog)
    kind = make(prog)
    p = subprocess.run([LAUNCHER, "--", prog], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    assert "error: gen 1 was refused: %s is %s, which the shim cannot run in: add --ready notify" % (prog, kind) in err


def test_stop_signal_ignored_means_sigkill_after_drain_and_kill_timeouts(launch):
    """An old generation without the shim gets its stop signal once, when the new one is ready; one that
    ignores it is killed --drain-timeout + --kill-timeout later, not before."""
    port = free_port()
    hr = launch([STATIC, "--ignore-term"], options=["--listen", "127.0.0.1:%d" % port, "--ready", "notify",
                                                    "--drain-timeout", "0.4", "--kill-timeout", "0.4"])
    pid1 = hr.wait_ready(1)
    since = hr.mark()
    os.kill(hr.pid, signal.SIGHUP)
    sent = hr.wait_for(r"gen 1 draining: sending SIGTERM to process group %d \(its own graceful stop; SIGKILL "
                       r"after 0\.8 s\)" % pid1, since=since)
    killed = hr.wait_for(r"gen 1: still running 0\.4 s after SIGTERM; sending SIGKILL", since=since)
    hr.wait_for(r"gen 1 gone", since=since)
    log = hr.log()
    assert log.count("sending SIGTERM to process group %d" % pid1) == 1, log  # never twice
    t_sent, t_killed = line_time(sent.string), line_time(killed.string)
    assert 0.75 <= t_killed - t_sent < 5, log  # log lines have millisecond timestamps
    assert not pid_alive(pid1)
    assert reply_pid(http_get(port)) == hr.gen_pids[2]
    # The final stop shuts the socket down: gen 2, deaf to SIGTERM, sees its listener stop and exits 0.
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_reload_into_a_static_program_is_refused(launch, load, tmp_path):
    """The program at PROGRAM's path becomes a static binary (a rewrite deployed in place): the reload is
    refused before anything starts, the old generation keeps serving on the one socket it had."""
    ctl = str(tmp_path / "control.sock")
    prog = str(tmp_path / "server")
    shutil.copy(TESTSERVER, prog)
    port = free_port()
    hr = launch([prog] + server_argv("threads", port)[1:], options=["--control", ctl])
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=2)
    ld.wait_served_by(lambda p: p == pid1, count=10)
    shutil.copy(STATIC, prog + ".new")
    os.replace(prog + ".new", prog)
    rc, rep = reload_json(ctl)
    assert rc == 1 and rep["outcome"] == "rolled_back", rep
    assert rep["reason"].endswith("which the shim cannot run in: add --ready notify (it sends READY=1) or "
                                  "--ready SEC"), rep
    ld.wait_served_by(lambda p: p == pid1, count=20)
    ld.stop()
    assert ld.failures == [] and set(ld.by_pid) == {pid1}, (ld.failures[:5], ld.by_pid)
    st = status_json(ctl)
    assert st["serving"]["pid"] == pid1 and st["listeners"] == ["127.0.0.1:%d" % port], st
    assert len(hr.gen_pids) == 1
    assert hr.stop() == 0


def test_program_with_the_shim_is_unaffected(launch):
    """A dynamic program gets the conventions too, but the shim has taken descriptors 3.. as its inherited
    sockets and unset the variables before the program ran: the program sees none of them, its own socket()
    gets descriptor 3 as without the launcher, and its bind() adopts the registry's socket (one socket)."""
    port = free_port()
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers", "envserver.py")
    hr = launch(["/usr/bin/python3", server, "--port", str(port)], options=["--listen", "127.0.0.1:%d" % port])
    pid1 = hr.wait_ready(1)
    assert environ_of(pid1)["LISTEN_FDS"] == "1"  # what it was exec'd with
    body = http_get(port)
    assert body == ("pid=%d fd=3 LISTEN_PID=- LISTEN_FDS=- LISTEN_FDNAMES=- SERVER_STARTER_PORT=-\n" % pid1), body
    assert "gen 1 listening on" not in hr.log()  # adopted, not a socket of its own
    assert hr.stop() == 0


def test_user_without_privilege_is_one_clear_line():
    """A launcher that may not change identity says so, and what would, instead of starting the program as
    itself."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the launcher as nobody")
    p = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", LAUNCHER,
                        "--user", "root", "--", "/bin/true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 126, err
    assert err.rstrip().endswith("error: unable to switch to the --user of '/bin/true': Operation not permitted "
                                 "(only a launcher with root, or CAP_SETUID and CAP_SETGID, can run generations "
                                 "as another user)"), err
