"""Classes of server behaviour that kept whole servers from reloading, one model server each (servers/):

  acceptconn.py  skips listen() on a socket that already listens (SO_ACCEPTCONN), as haproxy does
  pidguard.py    exits "already running" when kill(pid, 0) finds the process its pid file names, as apache2
  lockguard.py   exits "already running" when its lock file is locked (flock or fcntl)
  probe.py       listens on a free port and closes it again at start-up (a probe)
  rebind.py      binds its port again while it stops (a master restarting a child on the way out)

Each test fails without the feature it names. Waits are on launcher log lines, replies and process exits,
with deadlines; the fixtures kill whatever is left, by pid and process group."""
import fcntl
import os
import re
import shlex
import signal
import socket
import subprocess
import sys

import pytest

from conftest import PYTHON, free_port, http_get, reply_pid, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")
RELOADS = 3
PER_GEN = 10


def py(name, *args):
    return [PYTHON, os.path.join(SERVERS, name)] + [str(a) for a in args]


def since_log(hr, since):
    with hr.cond:
        return "\n".join(l for l in hr.lines[since:] if l is not None)


def reload_ok(hr, timeout=20.0):
    """SIGHUP; the reload must complete (not roll back) and the old generation be gone. Returns the new gen."""
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    gen = int(hr.wait_for(r"gen (\d+) started \(pid", timeout, since=since).group(1))
    m = hr.wait_for(r"reload \d+: gen %d \(pid \d+\) serving|reload \d+ failed: gen %d " % (gen, gen), timeout,
                    since=since)
    assert " failed: " not in m.group(0), "reload to gen %d failed:\n%s" % (gen, since_log(hr, since))
    old = int(hr.wait_for(r"gen %d ready in \d+ ms; gen (\d+) stops accepting" % gen, since=since).group(1))
    hr.wait_for(r"gen %d gone$" % old, timeout, since=since)
    return gen


def reload_fails(hr, timeout=20.0):
    """SIGHUP; the reload must be rolled back. Returns the line that says why."""
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    gen = int(hr.wait_for(r"gen (\d+) started \(pid", timeout, since=since).group(1))
    m = hr.wait_for(r"reload \d+: gen %d \(pid \d+\) serving|reload \d+ failed: gen %d .*" % (gen, gen), timeout,
                    since=since)
    assert " failed: " in m.group(0), "reload to gen %d was not rolled back:\n%s" % (gen, since_log(hr, since))
    return m.group(0)


def serve_reloads(hr, load, port, reloads=RELOADS):
    """gen 1 serves, then `reloads` reloads under load with 0 failed requests, each generation answering."""
    hr.wait_ready(1)
    wait_until(lambda: _pid(port) == hr.gen_pids[1], 10, "gen 1 to answer")
    ld = load(port, threads=2, max_seconds=60, request=lambda: reply_pid(http_get(port, timeout=5)))
    for _ in range(reloads):
        gen = reload_ok(hr)
        ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=PER_GEN)
    ld.stop()
    assert ld.failures == [], "%d failed requests of %d: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                                ld.failures[:5])
    return ld


def _pid(port):
    try:
        return reply_pid(http_get(port, timeout=5))
    except OSError:
        return None


def refused(port):
    with socket.socket() as s:
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


# --------------------------------------------------------------------------------------------------------
# 1. listen() skipped on a socket that already listens


def test_listen_skipped_on_a_listening_socket(launch, load, tmp_path):
    """acceptconn.py asks SO_ACCEPTCONN after bind() and, in a new generation (the socket it took over
    already listens), never calls listen(): the claim must come anyway, when it starts accepting."""
    port = free_port()
    hr = launch(py("acceptconn.py", "--port", port), options=["--ready-timeout", "5"], cwd=str(tmp_path))
    serve_reloads(hr, load, port)
    assert re.search(r"acceptconn: pid=%d acceptconn=1" % hr.gen_pids[2], hr.log()), hr.log()
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# 2. pid file + kill(pid, 0)


def test_pid_file_guard_sees_no_older_generation(launch, load, tmp_path):
    """pidguard.py exits "already running" when kill(pid, 0) succeeds for the pid in its pid file. The
    older generation it finds there must look gone; an unrelated live process must not."""
    port = free_port()
    pid_file = str(tmp_path / "server.pid")
    hr = launch(py("pidguard.py", "--port", port, "--pid-file", pid_file), options=["--ready-timeout", "10"],
                cwd=str(tmp_path))
    serve_reloads(hr, load, port)
    assert "already running" not in hr.log(), hr.log()
    with open(pid_file) as f:
        assert int(f.read()) == hr.gen_pids[max(hr.gen_pids)], "the pid file names the serving generation"
    # A live process that is no generation of this launcher: the guard must see it.
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with open(pid_file, "w") as f:
            f.write("%d\n" % other.pid)
        why = reload_fails(hr)
        assert "exited with status 0 before it was ready" in why, why
        assert re.search(r"already running \(pid %d\)" % other.pid, hr.log()), hr.log()
    finally:
        other.kill()
        other.wait(10)
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# 3. lock files


@pytest.mark.parametrize("style", ["flock", "fcntl"])
def test_lock_held_by_old_generation_is_named(launch, tmp_path, style):
    """Without --instance-lock a lock the old generation holds is never faked: the reload rolls back, and
    the reason names the lock file and the ways out."""
    port = free_port()
    lock = str(tmp_path / "server.lock")
    hr = launch(py("lockguard.py", "--port", port, "--lock", lock, "--style", style),
                options=["--ready-timeout", "10"], cwd=str(tmp_path))
    hr.wait_ready(1)
    why = reload_fails(hr)
    assert "exited with status 1 before it was ready" in why, why
    assert "found %s (held by pid %d, gen 1) locked by the old generation" % (lock, hr.gen_pids[1]) in why, why
    assert "--instance-lock" in why and "$HOTRESTART_GENERATION" in why, why
    assert _pid(port) == hr.gen_pids[1], "gen 1 serves on"
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


@pytest.mark.parametrize("start", ["direct", "exec"])
def test_instance_lock_is_handed_over(launch, load, tmp_path, start):
    """With --instance-lock, a new generation's flock() of the old one's lock succeeds, and once the old
    generation is gone the new one really holds the lock: nobody else can take it. "exec": the main process
    is a shell that execs the server (the shim takes the lock paths out of the environment at start-up and
    gives them back to its own re-exec)."""
    port = free_port()
    lock = str(tmp_path / "server.lock")
    argv = py("lockguard.py", "--port", port, "--lock", lock)
    if start == "exec":
        argv = ["/bin/sh", "-c", "exec " + shlex.join(argv)]
    hr = launch(argv,
                options=["--ready-timeout", "10", "--instance-lock", lock], cwd=str(tmp_path))
    serve_reloads(hr, load, port, reloads=2)
    gen = max(hr.gen_pids)
    hr.wait_for(r"gen %d now holds .*server\.lock \(--instance-lock\)" % gen, 10, since=0)
    with open(lock) as f:
        with pytest.raises(BlockingIOError):
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert "gen=%d" % gen in http_get(port, timeout=5), "HOTRESTART_GENERATION in the generation's environment"
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


def test_instance_lock_held_by_another_process_is_not_faked(launch, tmp_path):
    """A lock named with --instance-lock but held by a process that is no generation: the server must see it."""
    lock = str(tmp_path / "server.lock")
    with open(lock, "w") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        hr = launch(py("lockguard.py", "--port", free_port(), "--lock", lock),
                    options=["--ready-timeout", "10", "--instance-lock", lock], cwd=str(tmp_path))
        assert hr.wait_exit(20) == 1, hr.log()
    assert "already running" in hr.log(), hr.log()


# --------------------------------------------------------------------------------------------------------
# 4. probe sockets


def test_probe_socket_is_not_kept(launch, tmp_path):
    """probe.py listens on a free port and closes it at start-up, then binds its real port when told
    (SIGUSR1). The launcher must not keep the probe open, nor call the generation ready because of it."""
    port = free_port()
    hr = launch(py("probe.py", "--port", port), options=["-v", "--ready-timeout", "10"], cwd=str(tmp_path))
    for gen in (1, 2):
        since = hr.mark() if gen == 1 else since
        m = hr.wait_for(r"probe: pid=(\d+) probed port (\d+)", since=since)
        pid, probe_port = int(m.group(1)), int(m.group(2))
        hr.wait_for(r"gen %d closed 127\.0\.0\.1:%d for good" % (gen, probe_port), since=since)
        assert refused(probe_port), "the launcher still listens on the probe's port %d" % probe_port
        assert not re.search(r"gen %d ready in" % gen, since_log(hr, since)), (
            "gen %d ready before its real listener:\n%s" % (gen, since_log(hr, since)))
        os.kill(pid, signal.SIGUSR1)
        if gen == 1:
            hr.wait_ready(1)
            wait_until(lambda: _pid(port) == pid, 10, "gen 1 to answer")
            since = hr.mark()
            hr.signal(signal.SIGHUP)
    hr.wait_for(r"reload \d+: gen 2 \(pid \d+\) serving", 20, since=since)
    assert _pid(port) == hr.gen_pids[2]
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# 5. a draining generation that binds again


def test_draining_generation_binds_again(launch, load, tmp_path):
    """rebind.py binds its port again after its stop signal (3 s of EADDRINUSE retries, then exit 1): in a
    drained generation that bind() must succeed, and the launcher's own exit status stay 0."""
    port = free_port()
    hr = launch(py("rebind.py", "--port", port), options=["--ready-timeout", "10"], cwd=str(tmp_path))
    serve_reloads(hr, load, port, reloads=2)
    for gen in (1, 2):
        assert "rebind: pid=%d rebind ok" % hr.gen_pids[gen] in hr.log(), hr.log()
    assert "rebind failed" not in hr.log(), hr.log()
    assert hr.stop() == 0, hr.log()
    assert "rebind: pid=%d rebind ok" % hr.gen_pids[3] in hr.log(), hr.log()
    hr.assert_no_process_left()
    assert refused(port)
