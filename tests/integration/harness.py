"""Harness shared by the integration tests and `make demo`: the real launcher, the real shim, real servers on loopback.

Everything here waits on events (lines the launcher logs, replies, process exits) with a deadline; nothing
sleeps a fixed time. Every process a test starts is killed by pid (and by process group for the
generations) when the test ends, whatever happened.
"""
import ctypes
import datetime
import os
import re
import signal
import socket
import subprocess
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The build under test: ROOT/build, or $HOTRESTART_BUILD (e.g. build-san for `make sanitize`; relative to ROOT).
BUILD = os.path.join(ROOT, os.environ.get("HOTRESTART_BUILD") or "build")
LAUNCHER = os.path.join(BUILD, "hotrestart")
SHIM = os.path.join(BUILD, "libhotrestart.so")
TESTSERVER = os.path.join(BUILD, "testserver")
PYSERVER = os.path.join(ROOT, "examples", "pyserver.py")
PYTHON = "/usr/bin/python3"
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: ")

for _path in (LAUNCHER, SHIM, TESTSERVER):
    if not os.path.exists(_path):
        raise RuntimeError("%s is missing: run `make` first" % _path)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that is free right now on host (the kernel's choice of an ephemeral port)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dual_stack_port():
    """A port free right now on both 127.0.0.1 and ::1."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(("::1", port))
            return port
        except OSError:
            continue
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


def wait_until(predicate, timeout, what, interval=0.01):
    """Polls predicate with a deadline (for things that send no event, e.g. a process disappearing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def line_time(line):
    """Timestamp (seconds since the epoch, float) of one launcher log line."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z hotrestart\[\d+\]: ", line)
    if not m:
        raise AssertionError("not a launcher log line: %r" % line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def processes_naming(arg):
    """Live pids whose command line contains arg."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if arg.encode() in f.read() and pid_alive(int(name)):
                    out.append(int(name))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def group_members(pgid):
    """Live (non-zombie) pids whose process group is pgid (the pgrp field of /proc/<pid>/stat)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()  # state ppid pgrp ...
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def socket_fds(pid):
    """Number of socket descriptors pid holds right now (0 if it is gone)."""
    n = 0
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for name in names:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                n += 1
        except (FileNotFoundError, ProcessLookupError):
            pass
    return n


def write_mode(path, word):
    """Atomically replaces the mode file (a generation reads it once at start)."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(word + "\n")
    os.replace(tmp, str(path))


def utc_stamp():
    """Now, as the launcher's log lines write it (2026-11-26T15:03:39.162Z)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


_libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_getfd = 438  # the same number on x86_64 and aarch64


def server_ends_held(client_port, server_port, pids):
    """The pids among pids holding the server end of the TCP connection from local port client_port to
    server_port: each socket they hold is looked at through a duplicate (pidfd_getfd), its addresses as the
    kernel gives them. Empty while the connection waits in the accept queue. (Not /proc/net/tcp: with tens
    of thousands of TIME_WAIT entries left by load tests, reading it takes longer than a slow request.)"""
    held = []
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            continue
        try:
            seen = set()
            for name in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, name))
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if not link.startswith("socket:") or link in seen:
                    continue
                seen.add(link)
                fd = _libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
                if fd < 0:
                    continue
                with socket.socket(fileno=fd) as sk:
                    try:
                        if sk.type != socket.SOCK_STREAM or sk.family not in (socket.AF_INET, socket.AF_INET6):
                            continue
                        if sk.getsockname()[1] == server_port and sk.getpeername()[1] == client_port:
                            held.append(pid)
                            break
                    except OSError:  # a listener has no peer
                        continue
        except (FileNotFoundError, ProcessLookupError):
            pass
        finally:
            os.close(pidfd)
    return held


def wait_accepted(client, pids, timeout=10):
    """Waits until one of pids has accepted the connection of socket client; returns that pid. Identified by
    the connection itself, not by a count of descriptors (a reply's connection may still be closing)."""
    return wait_accepted_ports(client.getsockname()[1], client.getpeername()[1], pids, timeout)


def wait_accepted_ports(local, server, pids, timeout=10):
    return wait_until(lambda: (server_ends_held(local, server, pids) or [None])[0], timeout,
                      "one of %s to accept the connection from port %d" % (sorted(pids), local))


def http_get(port, path="/", host="127.0.0.1", timeout=10.0, connected=None):
    """One request on a new connection. Returns the body; raises on refusal, reset, timeout or a bad reply.
    connected(sock), if given, is called once the connection is made."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        if connected:
            connected(s)
        s.sendall(("GET %s HTTP/1.0\r\nHost: test\r\n\r\n" % path).encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks).decode(errors="replace")
    head, sep, body = data.partition("\r\n\r\n")
    if not sep or not head.startswith("HTTP/1.") or " 200 " not in head.split("\r\n")[0]:
        raise IOError("bad reply: %r" % data[:200])
    return body


def reply_pid(body):
    m = re.search(r"pid=(\d+)", body)
    if not m:
        raise IOError("reply without pid: %r" % body[:200])
    return int(m.group(1))


class SlowRequest:
    """One request in a thread; records the body or the error, and when it ended (time.monotonic())."""

    def __init__(self, port, path, timeout=30.0):
        self.body = None
        self.error = None
        self.t_done = None
        self.ports = None  # (local port, server port) once connected
        self._connected = threading.Event()
        self.t_sent = time.monotonic()  # the server cannot reply before t_sent + its delay
        self._thread = threading.Thread(target=self._run, args=(port, path, timeout), daemon=True)
        self._thread.start()

    def _run(self, port, path, timeout):
        def connected(s):
            self.ports = (s.getsockname()[1], s.getpeername()[1])
            self._connected.set()
        try:
            self.body = http_get(port, path, timeout=timeout, connected=connected)
        except Exception as e:  # noqa: BLE001 - recorded for the test to judge
            self.error = e
        self.t_done = time.monotonic()
        self._connected.set()

    def wait_accepted(self, pids, timeout=10):
        """Waits until one of pids has accepted this request's connection; returns that pid. On a loaded
        machine the request may be over before it is seen held: then its reply says who accepted it."""
        assert self._connected.wait(timeout), "the request did not connect within %.0f s" % timeout
        assert self.ports is not None, "the request failed before it connected: %r" % self.error
        local, server = self.ports

        def accepted():
            held = server_ends_held(local, server, pids)
            if held:
                return held[0]
            if self.done() and self.body is not None and reply_pid(self.body) in pids:
                return reply_pid(self.body)
            return None
        return wait_until(accepted, timeout, "one of %s to accept the connection from port %d (request error: %r)"
                          % (sorted(pids), local, self.error))

    def done(self):
        return self.t_done is not None

    def join(self, timeout):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request thread did not finish within %.0f s" % timeout


def start_accepted_slow(port, pid, ms, timeout=30.0):
    """Starts /slow?ms=<ms> and waits until process pid has accepted it."""
    req = SlowRequest(port, "/slow?ms=%d" % ms, timeout=timeout)
    req.wait_accepted([pid])
    return req


class GenPids(dict):
    """generation number -> main pid, filled as the launcher's log is read. A test that learns of a
    generation another way (a reload's report over the control socket) may ask before the log line is read:
    a missing generation is waited for (bounded), not a KeyError."""

    def __init__(self, cond, ended):
        super().__init__()
        self._cond, self._ended = cond, ended

    def __getitem__(self, gen):
        deadline = time.monotonic() + 15.0
        with self._cond:
            while not dict.__contains__(self, gen) and not self._ended() and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return dict.__getitem__(self, gen)


class Launcher:
    """build/hotrestart running one program, with its stderr parsed into events."""

    def __init__(self, argv, options=(), env=None, cwd=None):
        options = list(options)
        if not any(o.startswith("--rollback-window") for o in options):
            # Every reload still goes through the rollback window, but a short one: the default (2 s)
            # would make the suite's hundreds of reloads slow. Tests of the window set their own.
            options += ["--rollback-window", "0.1"]
        self.argv = [LAUNCHER] + options + ["--"] + list(argv)
        self.lines = []
        self.cond = threading.Condition()
        # generation number -> main pid (also its process group)
        self.gen_pids = GenPids(self.cond, lambda: bool(self.lines) and self.lines[-1] is None)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._scan = 0

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            m = re.search(r"gen (\d+) started \(pid (\d+)\)", line)
            with self.cond:
                if m:
                    self.gen_pids[int(m.group(1))] = int(m.group(2))
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF marker
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return "\n".join(l for l in self.lines if l is not None)

    def wait_for(self, pattern, timeout=15.0, since=None):
        """Waits for a stderr line matching pattern, at or after line index `since` (default: after the
        last match this method returned). Returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = self._scan if since is None else since
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    i += 1
                    if line is None:
                        raise AssertionError("launcher exited while waiting for %r; log:\n%s" % (pattern, self.log()))
                    m = rx.search(line)
                    if m:
                        self._scan = i
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %r; log:\n%s" % (pattern, self.log()))
                self.cond.wait(left)

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_ready(self, gen=1, timeout=15.0):
        self.wait_for(r"gen %d ready in" % gen, timeout)
        return self.gen_pids[gen]

    def reload(self, timeout=30.0, wait_old=True):
        """SIGHUP and wait until it is reported done and (wait_old) the previous generation is gone.
        Returns the new generation number."""
        since = self.mark()
        os.kill(self.pid, signal.SIGHUP)
        m = self.wait_for(r"gen (\d+) started \(pid", timeout, since=since)
        gen = int(m.group(1))
        old = int(self.wait_for(r"gen %d ready in \d+ ms; gen (\d+) stops accepting" % gen, timeout,
                                since=since).group(1))
        self.wait_for(r"reload \d+: gen %d \(pid \d+\) serving" % gen, timeout, since=since)
        if wait_old:
            self.wait_for(r"gen %d gone$" % old, timeout, since=since)
        return gen

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=30.0):
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("launcher did not exit within %.0f s; log:\n%s" % (timeout, self.log()))
        # Its last lines may still be in the pipe (or in the reader's hands): read up to the end of it,
        # which comes at once unless one of its programs outlives it holding stderr.
        self._reader.join(5)
        return status

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        return self.wait_exit(timeout)

    def cleanup(self):
        """Kills the launcher and every generation it started, by pid and process group."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.gen_pids.values():
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        self._reader.join(5)

    def sanitizer_reports(self):
        """Lines of an AddressSanitizer, LeakSanitizer or UBSan report in its stderr (make sanitize)."""
        return [l for l in self.log().splitlines() if SANITIZER_REPORT.search(l)]

    def assert_no_process_left(self, timeout=10.0):
        for gen, pid in self.gen_pids.items():
            wait_until(lambda: not group_alive(pid) and not pid_alive(pid), timeout,
                       "gen %d (process group %d) to be gone" % (gen, pid))


class Load:
    """Continuous load: `threads` clients, each opening a new connection per request, until stopped.
    Bounded: stops by itself after max_seconds or max_requests."""

    def __init__(self, port, host="127.0.0.1", threads=4, path="/", max_seconds=120, max_requests=10 ** 6,
                 request=None):
        self.port, self.host, self.path = port, host, path
        self.request = request or (lambda: reply_pid(http_get(self.port, self.path, self.host)))
        self.ok = 0
        self.failures = []
        self.by_pid = {}
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._max = max_requests
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                pid = self.request()
            except Exception as e:  # any refused/reset/timeout/garbled reply is a failure
                # When and where (connect, send or receive), to set beside the launcher's log lines.
                where = traceback.extract_tb(e.__traceback__)[-1].line
                with self.lock:
                    self.failures.append("%s %s: %s (at `%s`)" % (utc_stamp(), type(e).__name__, e, where))
                continue
            with self.cond:
                self.ok += 1
                self.by_pid[pid] = self.by_pid.get(pid, 0) + 1
                self.cond.notify_all()
                if self.ok + len(self.failures) >= self._max:
                    self._stop.set()

    def wait_served_by(self, pid_predicate, timeout=15.0, count=1):
        """Waits until at least `count` replies came from processes matching pid_predicate."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(n for p, n in self.by_pid.items() if pid_predicate(p)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise AssertionError("no reply from the expected processes (have %r)" % self.by_pid)
                self.cond.wait(min(left, 0.5))

    def wait_requests(self, n, timeout=15.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            target = self.ok + n
            while self.ok < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise AssertionError("load made no progress (%d ok, failures %r)" % (self.ok, self.failures[:5]))
                self.cond.wait(min(left, 0.5))

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return self


def server_argv(model, port, tag="v1", host="127.0.0.1", extra=()):
    """Command line of one of the example servers."""
    if model == "python":
        return [PYTHON, PYSERVER, "--host", host, "--port", str(port), "--tag", tag] + list(extra)
    return [TESTSERVER, "--model", model, "--host", host, "--port", str(port), "--tag", tag] + list(extra)
