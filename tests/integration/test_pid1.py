"""The launcher as PID 1 of a pid namespace, as a container's entrypoint: `unshare --fork --pid --mount-proc
hotrestart ...` (root only). Every orphan of the namespace is reaped, a process that entered from outside
(nsenter, as `docker exec` does) is never taken for a generation's, SIGTERM and SIGQUIT stop gracefully,
and the launcher's exit status (which unshare passes on) is the program's.

Pids in the launcher's log are the namespace's; the test maps them to its own through /proc/PID/status
(NSpid). Waits are on log lines, replies and process exits, with deadlines; killing the launcher (PID 1)
kills everything in its namespace, which is how each test cleans up."""
import os
import re
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import (LAUNCHER, Launcher, free_port, http_get, pid_alive, reply_pid, server_argv, start_accepted_slow, wait_until,
                      write_mode)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"),
                                reason="a pid namespace needs root (and util-linux's unshare and nsenter)")


class Pid1Launcher(Launcher):
    """build/hotrestart as PID 1 of a new pid namespace (with its own /proc), its stderr parsed as Launcher's."""

    def __init__(self, argv, options=()):
        self.argv = ["unshare", "--fork", "--pid", "--mount-proc", LAUNCHER, "--rollback-window", "0.1"] + \
            list(options) + ["--"] + list(argv)
        self.lines = []
        self.cond = threading.Condition()
        self.gen_pids = {}  # namespace pids
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._scan = 0
        # The launcher: unshare's only child.
        children = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        self.pid = wait_until(lambda: int(open(children).read().split()[0]) if open(children).read().split() else 0,
                              10, "unshare to start the launcher")
        self.pidns = os.readlink("/proc/%d/ns/pid" % self.pid)

    def host_pid(self, ns_pid):
        """The pid, as this test sees it, of the namespace's process ns_pid (0 if there is none)."""
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % name) != self.pidns:
                    continue
                with open("/proc/%s/status" % name) as f:
                    nspid = next(l for l in f if l.startswith("NSpid:")).split()
            except (OSError, StopIteration):
                continue
            if int(nspid[-1]) == ns_pid:
                return int(name)
        return 0

    def zombies(self):
        """Zombies in the launcher's namespace."""
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % name) != self.pidns:
                    continue
                with open("/proc/%s/stat" % name) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        out.append(int(name))
            except OSError:
                continue
        return out

    def enter(self, *argv):
        """Runs argv inside the launcher's pid and mount namespaces, as `docker exec` does."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-p", "-m", "--"] + list(argv), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # PID 1 gone: the kernel kills its whole namespace
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def pid1():
    started = []

    def start(argv, options=()):
        l = Pid1Launcher(argv, options)
        started.append(l)
        return l

    yield start
    for l in started:
        l.cleanup()
    # Under `make sanitize`: a report from the launcher fails the test.
    reports = [(l.pid, l.sanitizer_reports()) for l in started]
    assert not any(r for _, r in reports), "sanitizer reports: %r" % reports


def test_pid1_reaps_orphans_keeps_foreign_processes_apart_and_stops_on_sigterm(pid1, tmp_path):
    """Orphans from outside (nsenter) are reaped; a long-lived one is not taken for the draining generation's
    (it would be stopped with it); `hotrestart reload` run inside the namespace reloads; SIGTERM lets an
    in-flight request finish, and the launcher's status (0, the program's) is unshare's."""
    port = free_port()
    control = str(tmp_path / "control")
    hr = pid1(server_argv("threads", port), ["--control", control])
    gen1 = hr.host_pid(hr.wait_ready(1))
    assert gen1 and reply_pid(http_get(port)) == hr.gen_pids[1]
    assert "hotrestart[1]:" in hr.log(), hr.log()

    # Short-lived orphans: their shell exits at once, they are reparented to PID 1 and must be reaped.
    r = hr.enter("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/sleep 0.05 & done; "
                                  "/bin/sleep 60 >/dev/null 2>&1 & echo $!")
    assert r.returncode == 0, r
    stray = hr.host_pid(int(r.stdout.split()[-1]))
    assert stray, "the long-lived orphan is not in the namespace"
    wait_until(lambda: open("/proc/%d/stat" % stray).read().rsplit(")", 1)[1].split()[1] == str(hr.pid), 10,
               "the orphan to be reparented to the launcher")
    wait_until(lambda: not hr.zombies(), 10, "the namespace's orphans to be reaped (zombies: %r)" % hr.zombies())

    # A reload from inside, as `docker exec CONTAINER hotrestart reload --control PATH` would.
    since = hr.mark()
    r = hr.enter(LAUNCHER, "reload", "--control", control)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    hr.wait_for(r"gen 1 gone$", since=since)
    assert "out of its process group" not in hr.log(), hr.log()
    assert pid_alive(stray), "the foreign orphan was stopped with gen 1"
    wait_until(lambda: not hr.zombies(), 10, "gen 1's processes to be reaped")

    pid2 = hr.host_pid(hr.gen_pids[2])
    slow = start_accepted_slow(port, pid2, 600, timeout=20)
    since = hr.mark()
    os.kill(hr.pid, signal.SIGTERM)
    hr.wait_for(r"SIGTERM: stopping gracefully", since=since)
    slow.join(15)
    assert slow.error is None, "the in-flight request failed: %r" % slow.error
    assert hr.wait_exit(15) == 0, hr.log()
    hr.wait_for(r"exiting with status 0", since=since)


def test_pid1_sigquit_from_inside_stops_gracefully(pid1):
    """SIGQUIT sent from inside the namespace (kill 1, as a process of the container would): PID 1 gets only
    the signals it handles, and the launcher does."""
    port = free_port()
    hr = pid1(server_argv("threads", port))
    hr.wait_ready(1)
    since = hr.mark()
    r = hr.enter("/bin/sh", "-c", "kill -QUIT 1")
    # The shell is inside the namespace: if PID 1 is done before the shell has exited, the kernel kills it
    # (SIGKILL) with the namespace. The log below says whether the launcher got the signal.
    assert r.returncode in (0, -signal.SIGKILL), r
    hr.wait_for(r"SIGQUIT: stopping gracefully", since=since)
    assert hr.wait_exit(15) == 0, hr.log()
    assert "stopping now" not in hr.log()


def test_pid1_exit_status_is_the_programs(pid1, tmp_path):
    """The program dies on its own (abort() after one request): the launcher, PID 1, exits 128+SIGABRT."""
    port = free_port()
    mode = tmp_path / "mode"
    write_mode(mode, "crash")
    hr = pid1(server_argv("iterative", port, extra=["--mode-file", str(mode)]))
    hr.wait_ready(1)
    http_get(port, "/", timeout=10)
    status = hr.wait_exit(15)
    assert status == 128 + signal.SIGABRT, "status %d\n%s" % (status, hr.log())
    assert re.search(r"exiting with status %d" % (128 + signal.SIGABRT), hr.log()), hr.log()
