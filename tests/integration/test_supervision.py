"""Supervision that never leaves a mess: a final stop that refuses new connections at once, SIGQUIT, no busy
loop on a hung-up control socket, crash restart, daemonizing programs refused and cleaned up, and the
launcher's own death stopping everything.

Every wait is on an event (a launcher log line, a reply, a process exit) with a deadline."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (BUILD, LAUNCHER, PYTHON, free_port, group_alive, group_members, http_get, line_time, pid_alive,
                      processes_naming, reply_pid, server_argv, start_accepted_slow, wait_until, write_mode)

SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def c_server(name):
    """Compiles tests/integration/servers/<name>.c into build/ (atomically) and returns its path."""
    dst = os.path.join(BUILD, name)
    tmp = "%s.tmp.%d" % (dst, os.getpid())
    r = subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-O2", "-o", tmp,
                        os.path.join(SERVERS, name + ".c")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "gcc %s.c failed:\n%s" % (name, r.stderr)
    os.replace(tmp, dst)
    return dst


def py(name, *args):
    return [PYTHON, os.path.join(SERVERS, name)] + [str(a) for a in args]


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def connect_outcome(port, timeout=5.0):
    """'refused', 'connected' or the error name, and how long it took (s)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return "connected", time.monotonic() - t0
    except ConnectionRefusedError:
        return "refused", time.monotonic() - t0
    except OSError as e:
        return type(e).__name__, time.monotonic() - t0


# --------------------------------------------------------------------------------------------------------
# final stops


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT])
def test_final_stop_refuses_new_connections_at_once(sig, launch):
    """With no generation to take over, new clients are refused at once (load balancers fail over), while the
    request in flight completes on the draining generation. SIGQUIT stops gracefully too."""
    port = free_port()
    hr = launch(server_argv("threads", port))
    pid1 = hr.wait_ready(1)
    slow = start_accepted_slow(port, pid1, 1500)
    since = hr.mark()
    hr.signal(sig)
    hr.wait_for(r"stopping: new connections to 127\.0\.0\.1:%d are refused" % port, since=since)
    outcome, took = connect_outcome(port)
    assert outcome == "refused" and took < 0.1, (outcome, took)
    assert not slow.done() and pid_alive(pid1)
    slow.join(10)
    assert slow.error is None and reply_pid(slow.body) == pid1, (slow.error, slow.body)
    assert hr.wait_exit(15) == 0, hr.log()
    assert "gen 1 draining" in hr.log() and "SIGKILL" not in hr.log(), hr.log()
    hr.assert_no_process_left()


def test_final_stop_resets_connections_queued_but_not_accepted(launch):
    """Decided and documented: what waits in the accept queue when the final stop begins is reset at once (as
    when a server closes its listener), rather than left waiting for the whole drain and reset then."""
    port = free_port()
    hr = launch(server_argv("iterative", port))  # one request at a time: the next one waits in the queue
    pid1 = hr.wait_ready(1)
    slow = start_accepted_slow(port, pid1, 1500)
    queued = socket.create_connection(("127.0.0.1", port), timeout=10)  # accepted by the kernel, not the server
    queued.sendall(b"GET / HTTP/1.0\r\n\r\n")
    since = hr.mark()
    hr.signal(signal.SIGTERM)
    hr.wait_for(r"stopping: new connections to 127\.0\.0\.1:%d are refused" % port, since=since)
    t0 = time.monotonic()
    try:
        got = queued.recv(100)
        outcome = "eof" if got == b"" else "reply"
    except ConnectionResetError:
        outcome = "reset"
    finally:
        queued.close()
    assert outcome == "reset" and time.monotonic() - t0 < 1.0, outcome
    slow.join(10)
    assert slow.error is None and reply_pid(slow.body) == pid1, (slow.error, slow.body)
    assert hr.wait_exit(15) == 0, hr.log()


# --------------------------------------------------------------------------------------------------------
# no busy loops


def test_hung_up_control_socket_does_not_spin(launch):
    """A program that closes every descriptor with raw syscalls (the shim's too): the launcher's end of the
    generation's socket hangs up; the launcher must close it, not spin on it."""
    port = free_port()
    hr = launch([c_server("closeall"), "--port", str(port)])
    hr.wait_ready(1)
    hr.wait_for(r"closeall: pid=\d+ listening, closed", since=0)
    assert reply_pid(http_get(port)) == hr.gen_pids[1]
    t0, c0 = time.monotonic(), cpu_ticks(hr.pid)
    time.sleep(3)  # measuring CPU use over a period is the point here
    used = (cpu_ticks(hr.pid) - c0) / CLK_TCK
    wall = time.monotonic() - t0
    assert used < 0.05 * wall, "the launcher used %.2f s of CPU in %.2f s" % (used, wall)
    assert hr.stop() == 0
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# crash restart


def test_crash_restart_under_load_loses_nothing(launch, load, tmp_path):
    """--restart on-failure: the serving generation (a server that takes 300 ms to start) is SIGKILLed under
    load; the launcher keeps the socket and starts a new one at once; clients that connect meanwhile wait in
    the accept queue and are served."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "killafter=400")
    control = str(tmp_path / "c.sock")
    hr = launch(server_argv("iterative", port, extra=["--mode-file", str(mode), "--start-delay", "300"]),
                options=["--restart", "on-failure", "--control", control])
    pid1 = hr.wait_ready(1)
    write_mode(mode, "serve")  # what the restarted generation reads
    ld = load(port, threads=4)
    hr.wait_for(r"gen 1 \(pid %d\) was killed by .* on its own" % pid1)
    hr.wait_for(r"restarting at once \(--restart on-failure\)")
    pid2 = hr.wait_ready(2)
    ld.wait_served_by(lambda p: p == pid2, count=50)
    ld.stop()
    assert ld.failures == [], ld.failures[:5]
    assert ld.by_pid.get(pid1, 0) > 0, "gen 1 served nothing: the test proves nothing"
    st = json.loads(subprocess.run([LAUNCHER, "status", "--json", "--control", control], capture_output=True,
                                   timeout=10).stdout)
    assert st["restarts"] == 1 and st["serving"]["pid"] == pid2, st
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


def test_crash_loop_backs_off_and_stays_responsive(launch, tmp_path):
    """A program that fails at once on every restart: restarts back off (100 ms, 200 ms, 400 ms...), and a
    SIGTERM is still answered at once."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    hr = launch(server_argv("iterative", port, extra=["--mode-file", str(mode)]), options=["--restart", "always"])
    pid1 = hr.wait_ready(1)
    write_mode(mode, "exit1")
    os.kill(pid1, signal.SIGKILL)
    for n in (2, 3, 4, 5):
        hr.wait_for(r"gen %d exited with status 1 before it was ready" % n, timeout=15)
    starts = [hr.wait_for(r"gen %d started" % n, since=0).string for n in (2, 3, 4, 5)]
    gaps = [line_time(b) - line_time(a) for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert "restarting in 400 ms (--restart always, failure 4 in a row)" in hr.log(), hr.log()
    t0 = time.monotonic()
    hr.signal(signal.SIGTERM)
    hr.wait_exit(5)
    assert time.monotonic() - t0 < 1.0, "SIGTERM took %.2f s during the back-off" % (time.monotonic() - t0)
    hr.assert_no_process_left()


def test_restart_no_is_the_default(launch):
    port = free_port()
    hr = launch(server_argv("iterative", port))
    pid1 = hr.wait_ready(1)
    os.kill(pid1, signal.SIGKILL)
    assert hr.wait_exit(10) == 128 + signal.SIGKILL
    assert "restarting" not in hr.log()


# --------------------------------------------------------------------------------------------------------
# the launcher's death


def test_launcher_killed_stops_everything(launch, load, tmp_path):
    """SIGKILL to the launcher under a pre-fork server: its sentinel stops every process of it (the stop
    signal, then SIGKILL after --kill-timeout), the port is free, and a new launcher (same pid file, now
    stale) serves it. The bound is the kill timeout's, not a speed: a loaded or sanitized run is slower."""
    port = free_port()
    pid_file = tmp_path / "hr.pid"
    hr = launch(server_argv("prefork", port), options=["--pid-file", str(pid_file), "--kill-timeout", "3"])
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=2)
    ld.wait_requests(20)
    hr.proc.kill()
    hr.proc.wait(5)
    t0 = time.monotonic()
    wait_until(lambda: not processes_naming("--port\0%d\0" % port), 3.0 + 10.0,
               "every process of the launcher to be gone")
    ld.stop()
    assert not group_alive(pid1)
    assert "the launcher (pid %d) died: sending Terminated" % hr.pid in hr.log(), hr.log()
    assert int(pid_file.read_text()) == hr.pid  # stale now
    hr2 = launch(server_argv("prefork", port), options=["--pid-file", str(pid_file)])
    pid2 = hr2.wait_ready(1)
    assert reply_pid(http_get(port)) in [p for p in group_members(pid2)]
    assert int(pid_file.read_text()) == hr2.pid
    assert hr2.stop() == 0
    assert not pid_file.exists()
    print("\n[stats] launcher killed: everything gone after %.2f s" % (time.monotonic() - t0))


# --------------------------------------------------------------------------------------------------------
# wrappers that fork


def test_wrapper_that_forks_is_named(launch, tmp_path):
    """A wrapper that runs the server as a forked child (runuser, sudo, a shell without exec): the shim is not
    active where the socket is. The launcher says so, naming the socket, the process and the fix."""
    port = free_port()
    hr = launch(["/bin/sh", "-c", " ".join(server_argv("iterative", port)) + "; true"],
                options=["--ready-timeout", "1", "--rollback-window", "0"])
    m = hr.wait_for(r"warning: gen 1 listens on 127\.0\.0\.1:%d \(pid (\d+)\), in a process where the shim is not "
                    r"active: a wrapper that forks .* use an exec-style wrapper \(setpriv" % port)
    server = int(m.group(1))
    assert reply_pid(http_get(port)) == server
    assert hr.stop() == 128 + signal.SIGTERM  # sh's own status: it does not catch SIGTERM
    hr.assert_no_process_left()
