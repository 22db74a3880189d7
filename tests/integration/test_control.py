"""Reloads a deploy script can trust: `hotrestart reload|status|stop` over the control socket, the report of
each reload, readiness that proves the new generation (--ready, --ready-check), the rollback window, and
the control socket's own safety (mode, peer uid, stale and live sockets).

Every wait is on an event (a reply, a launcher log line, a process exit) with a deadline."""
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import (LAUNCHER, PYTHON, free_port, group_alive, http_get, pid_alive, reply_pid,
                      server_argv, start_accepted_slow, wait_until, write_mode)


# --------------------------------------------------------------------------------------------------------
# helpers


class Ctl:
    """Runs the client subcommands against one control socket."""

    def __init__(self, path):
        self.path = str(path)

    def run(self, *args, timeout=60, user=None, env=None):
        argv = [LAUNCHER] + list(args) + ["--control", self.path]
        if user:
            argv = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups"] + argv
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def start(self, *args):
        """The same, in the background: returns the Popen."""
        return subprocess.Popen([LAUNCHER] + list(args) + ["--control", self.path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def reload(self, *extra, timeout=60):
        rc, out, err = self.run("reload", "--json", *extra, timeout=timeout)
        assert out.strip(), "no report (exit %d): %s" % (rc, err)
        return rc, json.loads(out)

    def status(self):
        rc, out, err = self.run("status", "--json")
        assert rc == 0, (rc, out, err)
        return json.loads(out)


def assert_no_failures(ld):
    assert ld.failures == [], "%d failed requests of %d: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])


@pytest.fixture
def ctl_dir():
    """A directory others may traverse (the launcher's socket itself stays 0600), removed after the test."""
    d = tempfile.mkdtemp(prefix="hr-ctl-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def launch_ctl(launch, ctl_dir, argv, options=()):
    path = os.path.join(ctl_dir, "control.sock")
    hr = launch(argv, options=["--control", path] + list(options))
    return hr, Ctl(path)


# --------------------------------------------------------------------------------------------------------
# reload reports


def test_reload_under_load_reports_what_happened(launch, load, ctl_dir):
    """`reload --json` under load: exit 0, the report names the generations and pids the test observed, and a
    slow connection held across the reload is counted in the old generation's drain; `status --json` before,
    during and after; a second reload completes while gen 1 still drains."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port), ["--rollback-window", "0.2"])
    pid1 = hr.wait_ready(1)

    st = ctl.status()
    assert st["launcher_pid"] == hr.pid
    assert st["state"] == "running"
    assert st["serving"]["generation"] == 1 and st["serving"]["pid"] == pid1
    assert st["generations"] == []
    assert st["listeners"] == ["127.0.0.1:%d" % port]
    assert st["reloads"] == {"total": 0, "failed": 0}
    assert st["last_reload"] is None

    slow = start_accepted_slow(port, pid1, 3000)
    ld = load(port, threads=4)
    ld.wait_requests(20)
    rc, rep = ctl.reload()
    assert rc == 0, rep
    pid2 = hr.gen_pids[2]
    assert rep["outcome"] == "ok" and rep["reload"] == 1
    assert (rep["generation"], rep["pid"], rep["previous_generation"]) == (2, pid2, 1)
    assert rep["reason"] is None and 0 <= rep["ready_ms"] < 30000
    assert rep["started_at"].endswith("Z") and rep["started_at"][:4].isdigit()
    assert rep["drained_connections"] >= 1, rep  # the slow one, at least
    ld.wait_served_by(lambda p: p == pid2, count=10)

    # During: gen 1 drains its slow request and says when it will get the stop signal.
    st = ctl.status()
    assert st["serving"]["generation"] == 2 and st["serving"]["pid"] == pid2
    [g1] = st["generations"]
    assert (g1["generation"], g1["pid"], g1["state"]) == (1, pid1, "draining")
    assert g1["connections"] >= 1 and 0 < g1["stop_in_s"] <= 30
    assert st["last_reload"]["reload"] == 1 and st["last_reload"]["drain_ms"] is None

    # A fix-forward deploy is not held up by gen 1's drain.
    rc, rep2 = ctl.reload()
    assert rc == 0 and rep2["generation"] == 3 and rep2["previous_generation"] == 2, rep2
    # It returned while gen 1 still serves its slow request: it did not wait for that drain.
    assert pid_alive(pid1) and not slow.done(), "gen 1 did not keep its slow request, or the reload waited for it"

    slow.join(15)
    assert slow.error is None and reply_pid(slow.body) == pid1, (slow.error, slow.body)
    wait_until(lambda: not group_alive(pid1), 10, "gen 1 to be gone")
    hr.wait_for(r"reload 1: gen 1 drained \d+ connections? in \d+\.\d+ s, stopped by SIGTERM", since=0)
    ld.stop()
    assert_no_failures(ld)

    st = ctl.status()
    assert st["serving"]["generation"] == 3 and st["generations"] == []
    assert st["reloads"] == {"total": 2, "failed": 0}
    assert st["last_reload"]["reload"] == 2
    rc, out, _ = ctl.run("status")
    assert rc == 0 and "serving: gen 3 (pid %d)" % hr.gen_pids[3] in out, out
    assert "reloads: 2 total, 0 failed" in out, out
    # Reload 1's drain, complete, is in the log line of that reload.
    assert hr.wait_for(r"reload 1: gen 1 drained (\d+) connection", since=0).group(1) != "0"
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_reload_text_and_log_line_agree(launch, ctl_dir):
    """Without --json, reload prints one line: the same text as the launcher's summary log line."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port), ["--rollback-window", "0"])
    hr.wait_ready(1)
    rc, out, err = ctl.run("reload")
    assert rc == 0, (out, err)
    line = out.strip()
    assert "\n" not in line
    assert line.startswith("reload 1: gen 2 (pid %d) serving; ready in " % hr.gen_pids[2]), line
    assert hr.wait_for(r"reload 1: gen 2 ", since=0).string.endswith(line)
    assert hr.stop() == 0


def test_failed_start_rolls_back_and_exits_1(launch, load, ctl_dir, tmp_path):
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port, extra=["--mode-file", str(mode)]))
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=4)
    ld.wait_requests(20)
    write_mode(mode, "exit1")
    rc, rep = ctl.reload()
    assert rc == 1, rep
    assert rep["outcome"] == "rolled_back" and rep["generation"] == 2 and rep["previous_generation"] == 1
    assert rep["reason"].startswith("exited with status 1 before it was ready"), rep
    assert rep["ready_ms"] is None
    rc, out, _ = ctl.run("reload")
    assert rc == 1 and out.startswith("reload 2 failed: gen 3 exited with status 1 before it was ready"), out
    assert out.rstrip().endswith("rolled back, gen 1 keeps serving"), out
    n = ld.ok
    ld.wait_requests(20)
    ld.stop()
    assert_no_failures(ld)
    assert set(ld.by_pid) == {pid1} and ld.ok > n
    st = ctl.status()
    assert st["serving"]["pid"] == pid1 and st["reloads"] == {"total": 2, "failed": 2}
    assert st["last_reload"]["outcome"] == "rolled_back"
    assert hr.stop() == 0
    hr.assert_no_process_left()


@pytest.mark.parametrize("model", ["iterative", "epoll"])
def test_exit_inside_rollback_window_resumes_old_generation(launch, load, ctl_dir, tmp_path, model):
    """A new generation that takes over, serves, and exits 0.5 s later: inside the rollback window the old one
    stood by, not stopped; it accepts again (a blocking accept, or an epoll set the shim emptied while it
    stood by) and no client notices."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv(model, port, extra=["--mode-file", str(mode)]),
                         ["--rollback-window", "3"])
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=4)
    ld.wait_requests(20)
    write_mode(mode, "exitafter=500")
    t0 = time.monotonic()
    rc, rep = ctl.reload()
    took = time.monotonic() - t0
    assert rc == 1, rep
    pid2 = hr.gen_pids[2]
    assert rep["outcome"] == "rolled_back" and (rep["generation"], rep["pid"]) == (2, pid2)
    assert rep["reason"].startswith("exited with status 1, ") and "after it took over" in rep["reason"], rep
    assert rep["ready_ms"] is not None  # it was ready, then failed its trial
    assert took < 3.0, "the rollback waited for the whole window (%.2f s)" % took
    hr.wait_for(r"gen 1 accepts again", since=0)
    assert ld.by_pid.get(pid2, 0) > 0, "gen 2 never served: the test proves nothing"
    n1 = ld.by_pid.get(pid1, 0)
    ld.wait_served_by(lambda p: p == pid1, count=n1 + 50)
    ld.stop()
    assert_no_failures(ld)
    assert pid_alive(pid1) and not pid_alive(pid2)
    st = ctl.status()
    assert st["serving"]["pid"] == pid1 and st["serving"]["state"] == "serving"
    write_mode(mode, "serve")
    rc, rep = ctl.reload()  # and the next deploy works as usual
    assert rc == 0 and rep["previous_generation"] == 1, rep
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_failing_ready_check_rolls_back(launch, load, ctl_dir, tmp_path):
    """--ready-check runs once the new generation is ready, during the window, with its number and pid; a
    non-zero exit rolls the reload back."""
    port = free_port()
    seen = tmp_path / "seen"
    check = 'echo "$HOTRESTART_GENERATION $HOTRESTART_PID" >> %s; test "$HOTRESTART_GENERATION" = 1' % seen
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port), ["--ready-check", check])
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=4)
    ld.wait_requests(20)
    rc, rep = ctl.reload()
    assert rc == 1, rep
    assert rep["outcome"] == "rolled_back"
    assert rep["reason"] == "failed its --ready-check: exited with status 1", rep
    assert seen.read_text().split("\n")[:2] == ["1 %d" % pid1, "2 %d" % hr.gen_pids[2]]
    n1 = ld.by_pid.get(pid1, 0)
    ld.wait_served_by(lambda p: p == pid1, count=n1 + 20)
    ld.stop()
    assert_no_failures(ld)
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_failed_check_with_nothing_to_roll_back_to_keeps_the_new_generation(launch, ctl_dir, tmp_path):
    """The generation standing by died during the trial (here: the check kills it), then the check fails:
    rolling back to nothing would be an outage. The new generation is kept and the report says why."""
    port = free_port()
    victim = tmp_path / "victim"
    check = ('test "$HOTRESTART_GENERATION" = 1 || { P=$(cat %s); kill -KILL $P; '
             'while kill -0 $P 2>/dev/null; do sleep 0.01; done; exit 1; }' % victim)
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port), ["--ready-check", check])
    pid1 = hr.wait_ready(1)
    victim.write_text("%d\n" % pid1)
    rc, rep = ctl.reload()
    assert rc == 0, (rep, hr.log())
    assert rep["outcome"] == "ok" and rep["generation"] == 2, rep
    assert "nothing to roll back to" in rep["reason"], rep
    assert "warning: gen 2 failed its --ready-check" in rep["text"], rep
    assert reply_pid(http_get(port)) == hr.gen_pids[2]
    assert ctl.status()["serving"]["generation"] == 2
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_ready_check_reaches_the_new_generation(launch, ctl_dir):
    """The check's own requests are served by the generation on trial (the old one stands by)."""
    port = free_port()
    check = ("%s -c \"import os, urllib.request; b = urllib.request.urlopen('http://127.0.0.1:%d/health', "
             "timeout=5).read().decode(); assert 'pid=%%s ' %% os.environ['HOTRESTART_PID'] in b, b\"" % (PYTHON, port))
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port),
                         ["--ready-check", check, "--rollback-window", "0"])
    hr.wait_ready(1)
    for gen in (2, 3):
        rc, rep = ctl.reload()
        assert rc == 0 and rep["generation"] == gen, (rep, hr.log())
    assert hr.stop() == 0


def test_ready_check_failure_on_first_generation_stops(tmp_path):
    """Nothing to roll back to: the launcher stops the first generation and exits 1, naming the cause."""
    port = free_port()
    p = subprocess.run([LAUNCHER, "--ready-check", "exit 3", "--"] + server_argv("iterative", port),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "gen 1 failed its --ready-check: exited with status 3" in err, err
    pid = int(err.split("gen 1 started (pid ")[1].split(")")[0])
    wait_until(lambda: not pid_alive(pid) and not group_alive(pid), 10, "gen 1 to be gone")


# --------------------------------------------------------------------------------------------------------
# readiness


def test_ready_notify_waits_for_ready_1(launch, ctl_dir):
    """--ready notify: a generation that accepts at once but sends READY=1 0.8 s later is promoted only then;
    a READY=1 from a process that is not of the generation is ignored."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port, extra=["--notify-after", "800"]),
                         ["--ready", "notify", "--rollback-window", "0"])
    pid1 = hr.wait_ready(1, timeout=15)
    assert "sending READY=1 pid=%d" % pid1 in hr.log()

    since = hr.mark()
    proc = ctl.start("reload", "--json")
    pid2 = int(hr.wait_for(r"gen 2 started \(pid (\d+)\)", since=since).group(1))
    hr.wait_for(r"testserver: model=iterative listening on .* pid=%d" % pid2, since=since)
    # Someone else's READY=1 on gen 2's socket: the kernel says who sent it.
    with open("/proc/%d/environ" % pid2, "rb") as f:
        env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    where = env[b"NOTIFY_SOCKET"].decode()
    assert where.startswith("@hotrestart/")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", "\0" + where[1:])
    hr.wait_for(r"gen 2: ignored a notification from pid %d" % os.getpid(), since=since)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out, err)
    rep = json.loads(out)
    # Promoted on its READY=1 (sent 800 ms after it started), not when it began to accept; the server says
    # it is sending before it sends.
    assert rep["ready_ms"] >= 800, rep
    log = hr.log().split("\n")[since:]
    i_sent = next(i for i, l in enumerate(log) if "sending READY=1 pid=%d" % pid2 in l)
    i_ready = next(i for i, l in enumerate(log) if "gen 2 ready in" in l)
    assert i_sent < i_ready, "\n".join(log)
    assert hr.stop() == 0


def test_ready_delay_needs_the_generation_alive(launch, ctl_dir, tmp_path):
    """--ready SEC: listening is not enough, it must still be alive SEC later; one that dies before is rolled
    back before it ever took over."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port, extra=["--mode-file", str(mode)]),
                         ["--ready", "1", "--rollback-window", "0"])
    pid1 = hr.wait_ready(1)
    rc, rep = ctl.reload()
    assert rc == 0 and rep["ready_ms"] >= 1000, rep
    write_mode(mode, "exitafter=300")
    rc, rep = ctl.reload()
    assert rc == 1 and rep["reason"].startswith("exited with status 1 before it was ready"), rep
    assert "gen 3 ready in" not in hr.log()
    assert hr.stop() == 0
    assert not pid_alive(pid1)


def test_no_listener_is_not_ready(launch, ctl_dir, tmp_path):
    """A generation that never listens is not promoted when the shim says hello: it times out, rolled back."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port, extra=["--mode-file", str(mode)]),
                         ["--ready-timeout", "1"])
    pid1 = hr.wait_ready(1)
    write_mode(mode, "nobind")
    rc, rep = ctl.reload()
    assert rc == 1 and rep["reason"].startswith("was not ready after 1 s"), rep
    assert reply_pid(http_get(port)) == pid1
    assert hr.stop() == 0


# --------------------------------------------------------------------------------------------------------
# concurrency, timeouts, stop


def test_concurrent_reload_clients_are_all_answered(launch, ctl_dir):
    """Requests that arrive during a reload coalesce into the next one; every requester gets an answer."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port),
                         ["--ready", "0.5", "--rollback-window", "0"])
    hr.wait_ready(1)
    since = hr.mark()
    a = ctl.start("reload", "--json")
    hr.wait_for(r"gen 2 started", since=since)
    b = ctl.start("reload", "--json")
    c = ctl.start("reload", "--json")
    hr.wait_for(r"control: reload queued until the current one completes", since=since)
    reps = []
    for p in (a, b, c):
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, (out, err)
        reps.append(json.loads(out))
    assert reps[0]["reload"] == 1 and reps[0]["generation"] == 2
    assert reps[1]["reload"] == reps[2]["reload"] == 2 and reps[1]["generation"] == 3, reps
    assert sorted(hr.gen_pids) == [1, 2, 3], hr.log()
    assert hr.stop() == 0


def test_reload_timeout_exits_124_and_the_reload_goes_on(launch, ctl_dir):
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port), ["--ready", "2", "--rollback-window", "0"])
    hr.wait_ready(1)
    rc, out, err = ctl.run("reload", "--timeout", "0.3")
    assert rc == 124, (out, err)
    assert "the reload goes on" in err, err
    hr.wait_for(r"reload 1: gen 2 \(pid \d+\) serving", since=0)
    assert ctl.status()["serving"]["generation"] == 2
    assert hr.stop() == 0


def test_stop_waits_and_returns_the_exit_status(launch, ctl_dir):
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port))
    pid1 = hr.wait_ready(1)
    slow = start_accepted_slow(port, pid1, 800)
    rc, out, err = ctl.run("stop")
    assert rc == 0, (out, err)
    # The launcher is gone when stop returns: drained, stopped, nothing left, socket removed.
    assert hr.proc.wait(5) == 0
    slow.join(10)
    assert slow.error is None and reply_pid(slow.body) == pid1
    assert not os.path.exists(ctl.path)
    hr.assert_no_process_left()
    rc, out, err = ctl.run("status")
    assert rc == 125 and "no launcher at %s" % ctl.path in err, (rc, err)


def test_stop_asked_again_does_not_cut_requests(launch, ctl_dir):
    """A script whose `stop --timeout` ran out asks again: it waits for the same graceful stop."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port))
    pid1 = hr.wait_ready(1)
    slow = start_accepted_slow(port, pid1, 2000)
    rc, out, err = ctl.run("stop", "--timeout", "0.3")
    assert rc == 124, (rc, out, err)
    rc, out, err = ctl.run("stop")
    assert rc == 0, (rc, out, err)
    slow.join(10)
    assert slow.error is None and reply_pid(slow.body) == pid1, (slow.error, slow.body)
    assert "stopping now" not in hr.log(), hr.log()
    hr.assert_no_process_left()


def test_many_concurrent_clients_all_answered(launch, ctl_dir):
    """More clients at once than the launcher serves at a time (64): the others wait, none is dropped."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port), ["--ready", "0.3", "--rollback-window", "0"])
    hr.wait_ready(1)
    procs = [ctl.start("reload") for _ in range(80)]
    codes = []
    for p in procs:
        p.communicate(timeout=60)
        codes.append(p.returncode)
    assert codes == [0] * 80, codes
    assert hr.stop() == 0


def test_reload_while_stopping_is_aborted(launch, ctl_dir):
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("threads", port))
    pid1 = hr.wait_ready(1)
    slow = start_accepted_slow(port, pid1, 1500)
    stopper = ctl.start("stop")
    hr.wait_for(r"control: stopping gracefully", since=0)
    rc, out, err = ctl.run("reload")
    assert rc == 1 and out.startswith("reload aborted: the launcher is stopping"), (rc, out, err)
    stopper.communicate(timeout=30)
    assert stopper.returncode == 0
    slow.join(10)
    assert slow.error is None


# --------------------------------------------------------------------------------------------------------
# the control socket itself


def test_control_socket_is_private(launch, ctl_dir):
    """Mode 0600, owned by the launcher's user; another user is refused, even when the mode would let it in."""
    port = free_port()
    hr, ctl = launch_ctl(launch, ctl_dir, server_argv("iterative", port))
    hr.wait_ready(1)
    st = os.lstat(ctl.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    rc, out, err = ctl.run("reload", user="nobody")
    assert rc == 125 and "Permission denied" in err, (rc, out, err)
    os.chmod(ctl.path, 0o666)  # the peer's uid, from the kernel, still decides
    rc, out, err = ctl.run("reload", user="nobody")
    assert rc == 125 and "refused: uid 65534" in err, (rc, out, err)
    hr.wait_for(r"control: refused a connection from uid 65534", since=0)
    assert "gen 2" not in hr.log()
    assert hr.stop() == 0


def test_stale_socket_is_replaced_and_a_live_one_refused(launch, ctl_dir):
    path = os.path.join(ctl_dir, "control.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody answers: what a SIGKILLed launcher leaves
    port = free_port()
    hr = launch(server_argv("iterative", port), options=["--control", path])
    hr.wait_ready(1)
    ctl = Ctl(path)
    assert ctl.status()["launcher_pid"] == hr.pid

    p = subprocess.run([LAUNCHER, "--control", path, "--"] + server_argv("iterative", free_port()),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    assert "a running launcher serves on it" in err and path in err, err
    assert "gen 1 started" not in err
    assert ctl.status()["launcher_pid"] == hr.pid  # the first one is untouched

    with open(os.path.join(ctl_dir, "file"), "w") as f:
        f.write("not a socket\n")
    p = subprocess.run([LAUNCHER, "--control", os.path.join(ctl_dir, "file"), "--", "true"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 125 and "it exists and is not a socket" in p.stderr.decode(), p.stderr
    assert hr.stop() == 0


def test_client_usage_errors(ctl_dir):
    env = dict(os.environ)
    env.pop("HOTRESTART_CONTROL", None)
    for args, why in ((["reload"], "no control socket"), (["reload", "--timeout", "x", "--control", "/x"], "invalid --timeout"),
                      (["status", "--bogus"], "unknown argument")):
        p = subprocess.run([LAUNCHER] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=10)
        assert p.returncode == 125 and why in p.stderr.decode(), (args, p.stderr)
    env["HOTRESTART_CONTROL"] = os.path.join(ctl_dir, "none.sock")
    p = subprocess.run([LAUNCHER, "status"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=10)
    assert p.returncode == 125 and "no launcher at %s" % env["HOTRESTART_CONTROL"] in p.stderr.decode()
