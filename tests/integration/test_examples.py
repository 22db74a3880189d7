"""The examples leave nothing behind: examples/*/run.sh and `make demo` (examples/demo.py) remove the scratch
directory they create, however they end (the launcher stopped with kill -TERM, or Ctrl-C).

Each run gets its own TMPDIR, which must be empty afterwards. Waits are on the launcher's log lines (read
from the script's output) and on process exits, with deadlines; everything started is killed by process
group at the end whatever happened."""
import os
import re
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import ROOT, dual_stack_port, free_port, group_alive, pid_alive, wait_until

EXAMPLES = os.path.join(ROOT, "examples")

# name: (binary it needs, package, port picker)
RUN_SH = {
    "python": ("/usr/bin/python3", "python3", free_port),
    "redis": ("/usr/bin/redis-server", "redis-server", free_port),
    "memcached": ("/usr/bin/memcached", "memcached", free_port),
    "node": (shutil.which("node") or shutil.which("nodejs") or "/usr/bin/node", "nodejs", free_port),
    "nginx": ("/usr/sbin/nginx", "nginx-light", dual_stack_port),
    "apache2": ("/usr/sbin/apache2", "apache2", free_port),
    "haproxy": ("/usr/sbin/haproxy", "haproxy", free_port),
}


class Script:
    """A script in its own session (as in a terminal: Ctrl-C signals its process group), its output read
    line by line in a thread."""

    def __init__(self, argv, env):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern, timeout):
        rx = re.compile(pattern)
        with self.cond:
            ok = self.cond.wait_for(lambda: any(rx.search(l) for l in self.lines) or self.proc.poll() is not None,
                                    timeout)
            for l in self.lines:
                m = rx.search(l)
                if m:
                    return m
        raise AssertionError("%r not seen (%s); output:\n%s" % (pattern, "exited" if ok else "timed out",
                                                               self.output()))

    def wait(self, timeout):
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the script did not exit within %d s; output:\n%s" % (timeout, self.output()))
        self._reader.join(10)
        return status

    def kill(self):
        gens = [int(p) for p in re.findall(r"gen \d+ started \(pid (\d+)\)", self.output())]
        for pgid in [self.proc.pid] + gens:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.wait(10)


@pytest.mark.parametrize("how", ["kill-term", "ctrl-c"])
@pytest.mark.parametrize("name", list(RUN_SH))
def test_run_sh_removes_its_directory(name, how, tmp_path):
    binary, package, pick_port = RUN_SH[name]
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.skip("%s is not installed (apt-get install %s)" % (binary, package))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    script = Script(["/bin/sh", os.path.join(EXAMPLES, name, "run.sh"), str(pick_port())], env)
    try:
        pid = int(script.wait_for(r"gen 1 started \(pid (\d+)\)", 20).group(1))
        script.wait_for(r"gen 1 ready in", 20)
        made = os.listdir(str(scratch))
        assert len(made) == 1 and made[0].startswith("hotrestart-%s." % name), made
        if how == "kill-term":
            with open(os.path.join(str(scratch), made[0], "hotrestart.pid")) as f:
                os.kill(int(f.read()), signal.SIGTERM)  # what the script tells its user to do
        else:
            os.killpg(script.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        script.wait(30)
        wait_until(lambda: not pid_alive(pid) and not group_alive(pid), 10, "gen 1 to be gone")
        assert os.listdir(str(scratch)) == [], "left behind: %r\n%s" % (os.listdir(str(scratch)), script.output())
    finally:
        script.kill()


def test_demo_removes_its_directory(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    script = Script(["/usr/bin/python3", os.path.join(EXAMPLES, "demo.py")], dict(os.environ, TMPDIR=str(scratch)))
    try:
        status = script.wait(120)
        assert status == 0, script.output()
        assert os.listdir(str(scratch)) == [], "left behind: %r" % os.listdir(str(scratch))
    finally:
        script.kill()
