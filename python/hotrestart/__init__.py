"""Zero-downtime checks for your own server, in Python: run it under the hotrestart launcher, drive load,
reload it, and see every request's outcome.

    from hotrestart import Server, load, assert_no_failures, http_get, free_port

    port = free_port()
    with Server(["./myserver", "--port", str(port)], rollback_window=0.1) as srv:
        with load(lambda: http_get(port), clients=8) as ld:
            srv.reload()
            srv.reload()
        assert_no_failures(ld)

With pytest, `pytest -p hotrestart.pytest_plugin` gives the fixture `hotrestart_launch`, which stops
everything it started at teardown (see hotrestart.pytest_plugin).

The launcher is $HOTRESTART_LAUNCHER, else `hotrestart` on $PATH. Only the standard library is used.
"""
import collections
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

__all__ = ["Server", "Load", "ReloadFailed", "load", "assert_no_failures", "http_get", "reply_pid", "free_port",
           "launcher_path"]


def launcher_path():
    """The launcher to run: $HOTRESTART_LAUNCHER, else `hotrestart` on $PATH."""
    path = os.environ.get("HOTRESTART_LAUNCHER") or shutil.which("hotrestart")
    if not path:
        raise RuntimeError("hotrestart: no launcher found: install hotrestart or set HOTRESTART_LAUNCHER")
    return path


def free_port(host="127.0.0.1"):
    """A TCP port free right now on host (the kernel picks an ephemeral one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(port, path="/", host="127.0.0.1", timeout=10.0):
    """GET path on a new connection (HTTP/1.0). Returns the body; raises on refusal, reset, timeout or a
    status other than 2xx."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(("GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks).decode(errors="replace")
    head, sep, body = data.partition("\r\n\r\n")
    status = head.split("\r\n")[0].split(" ")
    if not sep or not status[0].startswith("HTTP/1.") or len(status) < 2 or not status[1].startswith("2"):
        raise IOError("bad reply: %r" % data[:200])
    return body


def reply_pid(body):
    """The pid a reply names as "pid=N" (as hotrestart's test servers write it)."""
    m = re.search(r"pid=(\d+)", body)
    if not m:
        raise IOError("reply without pid=N: %r" % body[:200])
    return int(m.group(1))


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_gone(pid, timeout):
    """Waits until process pid has exited (on its pidfd: no polling). True if it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


class ReloadFailed(AssertionError):
    """A reload was rolled back (or the launcher refused it); .report is its report (a dict) or None."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


# Every Server alive in this process: a Load attributes its failures to their reloads.
_servers = []
_servers_lock = threading.Lock()


class Server:
    """A command running under the launcher, with a private control socket.

    Options are the launcher's, as keywords: rollback_window=0.1 is --rollback-window 0.1, restart="always"
    is --restart always, verbose=True is --verbose (False or None: left out). The launcher's stderr (its log
    and the program's) is kept in .log; stdout goes there too."""

    def __init__(self, argv, wait=True, timeout=30.0, env=None, cwd=None, launcher=None, **options):
        self.argv = [str(a) for a in argv]
        self._dir = tempfile.mkdtemp(prefix="hotrestart-")
        self.control = os.path.join(self._dir, "control")
        opts = []
        for key, value in options.items():
            if value is None or value is False:
                continue
            flag = "--" + key.replace("_", "-")
            opts += [flag] if value is True else [flag, str(value)]
        self.launcher = launcher or launcher_path()
        self.command = [self.launcher] + opts + ["--control", self.control, "--"] + self.argv
        self.reloads = []  # (number, t_start, t_end, report): time.monotonic() of the window
        self.gen_pids = {}  # generation -> main pid (its process group): every one the launcher started
        self._lines = []
        self._cond = threading.Condition()
        self._stopped = False
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        with _servers_lock:
            _servers.append(self)
        if wait:
            try:
                self.wait_serving(timeout)
            except BaseException:
                self.kill()
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
        finally:
            self.kill()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            m = re.search(r"hotrestart\[\d+\]: gen (\d+) started \(pid (\d+)\)", line)
            with self._cond:
                if m:
                    self.gen_pids[int(m.group(1))] = int(m.group(2))
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._lines.append(None)
            self._cond.notify_all()

    @property
    def log(self):
        """Everything the launcher and the program wrote so far."""
        with self._cond:
            return "\n".join(l for l in self._lines if l is not None)

    def _request(self, command, timeout=60.0):
        """One control request: (exit status, body)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control)
            s.sendall((command + "\n").encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        reply = b"".join(chunks).decode(errors="replace")
        status, sep, body = reply.partition("\n")
        if not sep:
            raise RuntimeError("hotrestart: the launcher closed the control connection without an answer; log:\n"
                               + self.log)
        return int(status), body

    def wait_serving(self, timeout=30.0):
        """Waits until a generation serves (the control socket has no event for it: asked every 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise RuntimeError("hotrestart: the launcher exited with status %d before %s served; log:\n%s"
                                   % (self.proc.returncode, self.argv[0], self.log))
            try:
                st = self.status()
                if st.get("serving"):
                    return st
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hotrestart: %s did not serve within %.0f s; log:\n%s"
                                   % (self.argv[0], timeout, self.log))
            time.sleep(0.02)

    def status(self):
        """The launcher's status, as `hotrestart status --json` prints it."""
        rc, body = self._request("status json")
        if rc != 0:
            raise RuntimeError("hotrestart status: %s" % body.strip())
        return json.loads(body)

    @property
    def serving_pid(self):
        """The serving generation's main process (None if none serves)."""
        serving = self.status().get("serving")
        return serving["pid"] if serving else None

    @property
    def listeners(self):
        """The sockets the launcher holds, as it names them ("127.0.0.1:8080")."""
        return self.status()["listeners"]

    def generation_of(self, pid):
        """The generation pid belongs to (its main process, or a process in its group); None if unknown."""
        for gen, main in self.gen_pids.items():
            if main == pid:
                return gen
        try:
            with open("/proc/%d/stat" % pid) as f:
                pgrp = int(f.read().rsplit(")", 1)[1].split()[2])
        except (OSError, IndexError, ValueError):
            return None
        for gen, main in self.gen_pids.items():
            if main == pgrp:
                return gen
        return None

    def reload(self, check=True, timeout=60.0, wait_drained=True):
        """Reloads through the control socket and returns the report (a dict, as `hotrestart reload --json`
        prints it). Raises ReloadFailed if it was rolled back, unless check=False. With wait_drained, it
        returns once the previous generation has exited, so that what that one does while draining and
        stopping counts as this reload's; the report is then the final one (with the drain's outcome)."""
        t0 = time.monotonic()
        rc, body = self._request("reload json", timeout)
        try:
            report = json.loads(body)
        except ValueError:
            report = None
        if report and report.get("generation") and report.get("pid"):
            self.gen_pids.setdefault(report["generation"], report["pid"])
        if rc == 0 and wait_drained:
            prev = self.gen_pids.get(report.get("previous_generation"))
            if prev and not _wait_gone(prev, timeout):
                raise AssertionError("hotrestart: gen %s (pid %d) still runs %.0f s after reload %s; log:\n%s"
                                     % (report.get("previous_generation"), prev, timeout, report.get("reload"),
                                        self.log))
            last = self.status().get("last_reload")
            if last and last.get("reload") == report.get("reload"):
                report = last
        number = report.get("reload") if report else None
        self.reloads.append((number, t0, time.monotonic(), report))
        if check and rc != 0:
            text = report.get("text") if report else body.strip()
            raise ReloadFailed("hotrestart reload failed (exit %d): %s" % (rc, text), report)
        return report

    def stop(self, timeout=60.0):
        """Graceful stop (as `hotrestart stop`); returns the launcher's exit status."""
        if self.proc.poll() is None:
            try:
                self._request("stop", timeout)
            except (FileNotFoundError, ConnectionRefusedError, RuntimeError):
                pass
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("hotrestart: the launcher did not exit within %.0f s of stop; log:\n%s"
                                 % (timeout, self.log))
        self._reader.join(5)
        self._stopped = True
        return status

    def kill(self):
        """Kills the launcher and every generation it started, by pid and process group; removes its
        directory. Safe to call more than once (fixtures call it at teardown whatever happened)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in list(self.gen_pids.values()):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        with _servers_lock:
            if self in _servers:
                _servers.remove(self)
            _ended.append(self)
            del _ended[:-64]

    def reload_at(self, t0, t1):
        """The reload whose window overlaps [t0, t1] (monotonic times), as (number, report), or None."""
        for number, start, end, report in self.reloads:
            if t0 <= end and t1 >= start:
                return number, report
        return None


_ended = []  # recently stopped servers: their reloads still explain a load's failures


Failure = collections.namedtuple("Failure", "started ended error reload")


class Load:
    """`clients` threads calling request() in a loop until stopped; counts every outcome. request should
    open a new connection each time and raise on any failure; what it returns is counted in .values."""

    def __init__(self, request, clients=8, max_seconds=300.0):
        self.request = request
        self.t0 = time.monotonic()
        self.ok = 0
        self._values = collections.Counter()
        self.failures = []  # Failure(started, ended, error, reload): seconds since the load started
        self._outcomes = []  # (started, ended, error or None) in monotonic time
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._deadline = self.t0 + max_seconds
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            t0 = time.monotonic()
            try:
                value = self.request()
                err = None
            except Exception as e:  # noqa: BLE001 - every failure is an outcome to count
                err = "%s: %s" % (type(e).__name__, e)
            t1 = time.monotonic()
            with self._cond:
                if err is None:
                    self.ok += 1
                    try:
                        self._values[value] += 1
                    except TypeError:
                        self._values[repr(value)] += 1
                self._outcomes.append((t0, t1, err))
                self._cond.notify_all()

    @property
    def values(self):
        """What the successful requests returned, counted (a copy: collections.Counter)."""
        with self._cond:
            return collections.Counter(self._values)

    @property
    def total(self):
        with self._cond:
            return len(self._outcomes)

    def wait(self, n, timeout=30.0):
        """Waits until n more requests have succeeded."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.ok + n
            while self.ok < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise AssertionError("load made no progress: %d ok, %d failed, first failures: %s"
                                         % (self.ok, len(self._outcomes) - self.ok,
                                            [o[2] for o in self._outcomes if o[2]][:3]))
                self._cond.wait(min(left, 0.5))

    def wait_for(self, predicate, count=1, timeout=30.0):
        """Waits until at least count successful requests returned a value for which predicate(value) is
        true (e.g. a pid of the new generation)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(n for v, n in self._values.items() if predicate(v)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise AssertionError("no %d replies as expected within %.0f s (have %r)"
                                         % (count, timeout, dict(self._values)))
                self._cond.wait(min(left, 0.5))

    def stop(self):
        """Stops the clients (each finishes its request) and attributes the failures to reloads."""
        self._stop.set()
        for t in self._threads:
            t.join(60)
        with _servers_lock:
            servers = list(_servers) + list(_ended)
        self.failures = []
        for t0, t1, err in self._outcomes:
            if err is None:
                continue
            during = None
            for s in servers:
                during = s.reload_at(t0, t1)
                if during:
                    break
            self.failures.append(Failure(t0 - self.t0, t1 - self.t0, err, during))
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def load(request, clients=8, max_seconds=300.0):
    """A context manager: `with load(lambda: http_get(port), clients=8) as ld: ...` runs the clients in the
    block, stops them at its end (even on an exception), then assert_no_failures(ld)."""
    return Load(request, clients=clients, max_seconds=max_seconds)


def assert_no_failures(ld, show=10):
    """Fails with which requests failed, when, and during which reload (or outside any). Stops the load
    first if it still runs."""
    if not ld._stop.is_set():
        ld.stop()
    if ld.failures:
        lines = []
        for f in ld.failures[:show]:
            if f.reload:
                number, report = f.reload
                where = "during reload %s (%s)" % (number, (report or {}).get("text", "no report"))
            else:
                where = "outside reloads"
            lines.append("  at %.3f s (sent at %.3f s), %s: %s" % (f.ended, f.started, where, f.error))
        more = "\n  ... and %d more" % (len(ld.failures) - show) if len(ld.failures) > show else ""
        raise AssertionError("%d of %d requests failed:\n%s%s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                                 "\n".join(lines), more))
