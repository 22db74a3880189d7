"""--seccomp: a `gcc -static` server that makes, binds and listens on its socket itself, knowing nothing of
hotrestart (no LISTEN_FDS, no READY=1), gets the launcher's socket through seccomp user notification: the
same socket in every generation, reloads under load with no failed request, a connection queued before it
bound is served, an old generation's shutdown() or connect(AF_UNSPEC) of the listener at exit does not stop
it for the new one,
pre-fork workers and a program with a seccomp filter of its own work, and a kernel without the features
fails cleanly at start.

Every wait is on an event (a launcher log line, a reply, a process exit) with a deadline."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import pytest

from conftest import BUILD, LAUNCHER, Launcher, free_port, group_members, http_get, pid_alive, wait_until

BINDSERVER = os.path.join(BUILD, "bindserver")
NOFEATURE = os.path.join(BUILD, "nofeature")


def ino_of(body):
    m = re.search(r"ino=(\d+)", body)
    assert m, body
    return int(m.group(1))


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(os.path.join(d, name)))
        except FileNotFoundError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def seccomp_launch(launch, port, extra=(), options=()):
    hr = launch([BINDSERVER, "--listen", "127.0.0.1:%d" % port] + list(extra),
                options=["--seccomp", "-v"] + list(options))
    return hr


def test_static_server_binds_itself_reloaded_under_load(launch, load):
    """The first generation's own socket joins the registry when it listens; generations 2..11 bind the
    same address and get that socket: one inode throughout, held by the launcher, and 0 failed requests
    over 10 reloads."""
    port = free_port()
    hr = seccomp_launch(launch, port)
    hr.wait_for(r"gen 1: .*bindserver is a static executable .* answered by seccomp \(--seccomp\)")
    hr.wait_for(r"gen 1 listening on 127\.0\.0\.1:%d$" % port)
    pid1 = hr.wait_ready(1)
    ino = ino_of(http_get(port))
    assert ino in socket_inodes(hr.pid), "the launcher holds the program's socket"
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: p == pid1, count=20)
    pids = [pid1]
    for _ in range(10):
        gen = hr.reload()
        pids.append(hr.gen_pids[gen])
        hr.wait_for(r"gen %d \(pid %d\): bind answered with 127\.0\.0\.1:%d" % (gen, pids[-1], port), since=0)
        ld.wait_served_by(lambda p, want=pids[-1]: p == want, count=5)
        assert ino_of(http_get(port)) == ino
    ld.stop()
    assert ld.failures == [], "%d of %d requests failed: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])
    assert set(pids) <= set(ld.by_pid), ld.by_pid
    assert "sending SIGKILL" not in hr.log()
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_connection_before_the_program_binds_is_served(launch):
    """--listen: the launcher's socket exists before the program; a connection made before the program has
    even made its socket (it waits on a FIFO) is served once its bind() is answered with that socket."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        gate = os.path.join(d, "gate")
        os.mkfifo(gate)
        hr = seccomp_launch(launch, port, extra=["--gate", gate], options=["--listen", "127.0.0.1:%d" % port])
        hr.wait_for(r"listening on 127\.0\.0\.1:%d \(--listen\)" % port)
        hr.wait_for(r"gen 1 started \(pid")
        early = socket.create_connection(("127.0.0.1", port), timeout=10)
        early.sendall(b"GET /early HTTP/1.0\r\nHost: test\r\n\r\n")
        assert "gen 1 ready" not in hr.log()
        # Opening the FIFO for writing lets the program go on (its open for reading returns).
        fd = os.open(gate, os.O_WRONLY)
        os.close(fd)
        pid1 = hr.wait_ready(1)
        early.settimeout(10)
        reply = b""
        while True:
            b = early.recv(65536)
            if not b:
                break
            reply += b
        early.close()
        assert b" 200 " in reply.split(b"\r\n")[0] and ("pid=%d " % pid1).encode() in reply, reply
        assert ino_of(reply.decode()) in socket_inodes(hr.pid)
        assert hr.stop() == 0


def test_old_generation_shutdown_at_exit_does_not_stop_the_listener(launch, load):
    """A server that calls shutdown(SHUT_RDWR) on its listening socket as it exits would make the shared
    socket refuse every new connection: the launcher answers that call for the old generation alone."""
    port = free_port()
    hr = seccomp_launch(launch, port, extra=["--shutdown-at-exit"])
    pid1 = hr.wait_ready(1)
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: p == pid1, count=10)
    for _ in range(2):
        gen = hr.reload()  # returns once the old generation is gone: it has shut down and exited
        pid = hr.gen_pids[gen]
        ld.wait_served_by(lambda p, want=pid: p == want, count=20)
    ld.stop()
    assert ld.failures == [], "%d of %d requests failed: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])
    assert "pid=%d " % pid in http_get(port)
    for g in (1, 2):
        hr.wait_for(r"gen %d \(pid %d\): shutdown of 127\.0\.0\.1:%d answered without shutting it down"
                    % (g, hr.gen_pids[g], port), since=0)
    assert hr.stop() == 0


def test_old_generation_disconnect_at_exit_does_not_stop_the_listener(launch, load):
    """connect(AF_UNSPEC) disconnects a TCP socket: on the shared listener, as an old generation exits, it
    would stop the listen for the new one. Trapped (the family read from the caller) and answered for the
    old generation alone; an ordinary connect (AF_INET, the server's own at start) runs as made."""
    port = free_port()
    hr = seccomp_launch(launch, port, extra=["--unspec-at-exit", "--self-connect"])
    pid1 = hr.wait_ready(1)
    assert "self_connect=ok" in http_get(port)
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: p == pid1, count=10)
    for _ in range(2):
        gen = hr.reload()  # returns once the old generation is gone: it has disconnected and exited
        pid = hr.gen_pids[gen]
        ld.wait_served_by(lambda p, want=pid: p == want, count=20)
    ld.stop()
    assert ld.failures == [], "%d of %d requests failed: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])
    assert "pid=%d " % pid in http_get(port)
    for g in (1, 2):
        hr.wait_for(r"gen %d \(pid %d\): connect\(AF_UNSPEC\) of 127\.0\.0\.1:%d answered without "
                    r"disconnecting it" % (g, hr.gen_pids[g], port), since=0)
    assert hr.stop() == 0


def test_prefork_workers(launch, load):
    """A pre-fork server: the first process binds and listens, its 3 workers accept. After a reload the new
    generation's workers serve, each holding the same socket."""
    port = free_port()
    hr = seccomp_launch(launch, port, extra=["--prefork", "3"])
    hr.wait_ready(1)
    ino = ino_of(http_get(port))
    gen = hr.reload()
    pgid = hr.gen_pids[gen]
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: os.getpgid(p) == pgid if pid_alive(p) else False, count=30)
    ld.stop()
    assert ld.failures == [], ld.failures[:5]
    # Which worker the kernel wakes is its choice: each of them holds the launcher's socket.
    workers = [p for p in group_members(pgid) if p != pgid]
    assert len(workers) == 3, workers
    for w in workers:
        assert ino in socket_inodes(w), "worker %d lacks the launcher's socket" % w
    assert ino_of(http_get(port)) == ino
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_program_with_its_own_seccomp_filter(launch):
    """A program that installs a filter of its own before binding: its filter works (sethostname fails
    with EROFS), and its bind still gets the launcher's socket. Its own user-notification listener is
    refused with EBUSY (documented: one listener per filter chain)."""
    port = free_port()
    hr = seccomp_launch(launch, port, extra=["--own-filter"])
    hr.wait_ready(1)
    body = http_get(port)
    assert "own_filter=ok own_listener=EBUSY" in body, body
    ino = ino_of(body)
    gen = hr.reload()
    body = http_get(port)
    assert "pid=%d " % hr.gen_pids[gen] in body and ino_of(body) == ino, body
    assert hr.stop() == 0


@pytest.mark.parametrize("feature,missing", [
    ("seccomp", r"seccomp user notification \(SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5\.0\) is not available: "
                r"seccomp: Function not implemented"),
    ("addfd", r"SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD \(Linux 5\.14\) is not available: "
              r"ioctl: Invalid argument"),
])
def test_probe_names_the_missing_feature(feature, missing):
    """On a kernel without what --seccomp needs (simulated by a filter over the launcher), it exits 125 at
    start with one line naming what is missing, before any generation."""
    port = free_port()
    p = subprocess.run([NOFEATURE, feature, LAUNCHER, "--seccomp", "--", BINDSERVER, "--listen",
                        "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(r"fatal: --seccomp: %s; run it on Linux 5\.14 or later, or without --seccomp$" % missing,
                     lines[0]), err
    assert "gen 1" not in err


# The system call a thread waits in (/proc/PID/syscall), by machine: accept and accept4, epoll_pwait.
WAIT_NR = {"x86_64": {"blocking": {43, 288}, "epoll": {281}},
           "aarch64": {"blocking": {202, 242}, "epoll": {22}}}


def waiting_in(pid, mode):
    try:
        with open("/proc/%d/syscall" % pid) as f:
            nr = f.read().split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return nr.lstrip("-").isdigit() and int(nr) in WAIT_NR[os.uname().machine][mode]


@pytest.mark.parametrize("mode", ["blocking", "epoll"])
def test_seccomp_accept_draining_generation_takes_no_connection(launch, mode):
    """--seccomp-accept: an old generation waiting in accept (a plain blocking accept(), or epoll with a
    non-blocking accept4()) when the reload comes, and still accepting for a while after its SIGTERM
    (--linger-ms 4000), takes no connection: every request after the reload is answered by the new generation.
    A blocking accept is answered by the launcher with a connection it accepted (the peer's address
    written as accept() would); a draining one waits, and its stop signal still interrupts it."""
    if os.uname().machine not in WAIT_NR:
        pytest.skip("no system call numbers for this machine")
    port = free_port()
    hr = launch([BINDSERVER, "--listen", "127.0.0.1:%d" % port, "--accept", mode, "--linger-ms", "4000"],
                options=["--seccomp-accept", "-v"])
    pid1 = hr.wait_ready(1)
    local = []
    body = http_get(port, connected=lambda s: local.append(s.getsockname()))
    assert "pid=%d " % pid1 in body and "peer=%s:%d" % local[0] in body, (body, local)
    wait_until(lambda: waiting_in(pid1, mode), 10, "gen 1 (pid %d) to wait in accept again" % pid1)
    gen = hr.reload(wait_old=False)
    pid2 = hr.gen_pids[gen]
    hr.wait_for(r"gen 1 draining: sending SIGTERM", since=0)
    pids = [int(re.search(r"pid=(\d+) ", http_get(port)).group(1)) for _ in range(30)]
    assert pid_alive(pid1), "gen 1 stopped before the requests: the test proves nothing"
    assert pids == [pid2] * 30, "answered by %s (gen 1 is %d, gen 2 is %d)" % (pids, pid1, pid2)
    hr.wait_for(r"gen 1 gone$", since=0)
    assert "sending SIGKILL" not in hr.log()
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_seccomp_accept_invalid_accept4_flags_fail_as_without_the_filter(launch):
    """--seccomp-accept: an accept4() with a flag bit that is neither SOCK_NONBLOCK nor SOCK_CLOEXEC, on the
    shared (blocking) socket, fails with EINVAL at once, as it does without the filter. Held like a valid
    blocking accept, it would have been handed the first connection instead."""
    port = free_port()
    hr = launch([BINDSERVER, "--listen", "127.0.0.1:%d" % port, "--accept", "blocking", "--bad-accept4"],
                options=["--seccomp-accept"])
    pid1 = hr.wait_ready(1)
    body = http_get(port)
    assert "pid=%d " % pid1 in body and "bad_accept4=EINVAL" in body, body
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_seccomp_accept_needs_the_fast_wakeup():
    """Without SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (simulated), --seccomp-accept is refused at start (exit
    125, one line naming it), before any generation."""
    port = free_port()
    argv = [NOFEATURE, "syncwake", LAUNCHER, "--seccomp-accept", "--", BINDSERVER, "--listen",
            "127.0.0.1:%d" % port]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(r"fatal: --seccomp-accept: seccomp user notification with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP "
                     r"\(Linux 6\.6\) is not available: ioctl SECCOMP_IOCTL_NOTIF_SET_FLAGS: Invalid argument; "
                     r"run it on Linux 6\.6 or later, or without --seccomp-accept$", lines[0]), err
    assert "gen 1" not in err


class NobodyLauncher(Launcher):
    """The launcher itself run as nobody (setpriv): not root, so each generation gets no_new_privs."""

    def __init__(self, argv, options=()):
        options = list(options) + ["--rollback-window", "0.1"]
        self.argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", LAUNCHER] + options + \
            ["--"] + list(argv)
        self.lines = []
        self.cond = threading.Condition()
        self.gen_pids = {}
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self.proc.pid  # setpriv execs the launcher: the same pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._scan = 0


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1:]
    raise AssertionError("no %s line for pid %d" % (name, pid))


@pytest.mark.parametrize("who", ["launcher-as-nobody", "user-nobody"])
def test_privileges(launch, who):
    """A launcher that is not root gives its generations no_new_privs (enough for the filter); a root
    launcher with --user nobody installs the filter before switching user and sets no no_new_privs (a
    set-id program it runs keeps working). Both reload onto the same socket."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv (CI runs as root)")
    port = free_port()
    argv = [BINDSERVER, "--listen", "127.0.0.1:%d" % port]
    if who == "user-nobody":
        hr = launch(argv, options=["--seccomp", "--user", "nobody"])
    else:
        hr = NobodyLauncher(argv, options=["--seccomp"])
    try:
        pid1 = hr.wait_ready(1)
        assert status_field(pid1, "Uid")[0] == "65534"
        assert status_field(pid1, "NoNewPrivs") == (["1"] if who == "launcher-as-nobody" else ["0"])
        assert status_field(pid1, "Seccomp") == ["2"]
        ino = ino_of(http_get(port))
        gen = hr.reload()
        body = http_get(port)
        assert "pid=%d " % hr.gen_pids[gen] in body and ino_of(body) == ino, body
        assert hr.stop() == 0
    finally:
        hr.cleanup()


def test_launcher_death_stops_the_generation(launch):
    """The filter outlives the launcher, but its answers do not: a generation left alone would fail every
    later bind. It gets its stop signal when the launcher is SIGKILLed (its parent-death signal and the
    sentinel), as a generation with the shim does."""
    port = free_port()
    hr = seccomp_launch(launch, port)
    pid1 = hr.wait_ready(1)
    assert "pid=%d " % pid1 in http_get(port)
    os.kill(hr.pid, signal.SIGKILL)
    hr.proc.wait(10)
    # Not our child: it is gone once /proc says so (the sentinel, its reaper, exits after it).
    wait_until(lambda: not pid_alive(pid1), 15, "gen 1 (pid %d) to stop after the launcher died" % pid1)


def unix_get(address):
    """One request over a unix stream socket (a path, or "\\0name" for an abstract one). Returns the body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(address)
        s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    assert " 200 " in head.split("\r\n")[0], data
    return body


@pytest.mark.parametrize("family", ["ipv6", "unix-path", "abstract"])
def test_address_families(launch, family, tmp_path):
    """The shim's address matching decides what a trapped bind gets: [::1]:PORT, a unix path and an
    abstract name each come back as the first generation's socket after a reload."""
    if family == "ipv6":
        try:
            socket.socket(socket.AF_INET6).close()
            port = free_port(socket.AF_INET6, "::1")
        except OSError:
            pytest.skip("no IPv6 loopback")
        addr, get = "[::1]:%d" % port, lambda: http_get(port, host="::1")
    elif family == "unix-path":
        path = str(tmp_path / "app.sock")
        addr, get = "unix:" + path, lambda: unix_get(path)
    else:
        name = "hotrestart-test-%d-%d" % (os.getpid(), free_port())
        addr, get = "unix:@" + name, lambda: unix_get("\0" + name)
    hr = launch([BINDSERVER, "--listen", addr], options=["--seccomp", "-v"])
    hr.wait_ready(1)
    ino = ino_of(get())
    gen = hr.reload()
    hr.wait_for(r"gen %d \(pid %d\): bind answered with " % (gen, hr.gen_pids[gen]), since=0)
    body = get()
    assert "pid=%d " % hr.gen_pids[gen] in body and ino_of(body) == ino, body
    assert hr.stop() == 0
    if family == "unix-path":
        assert not os.path.exists(path), "the launcher removes the socket file it kept"


GOHTTP_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers", "gohttp")


@pytest.fixture(scope="module")
def gohttp():
    """build/gohttp: the static Go net/http server, built here (CGO_ENABLED=0: no ELF interpreter), with its
    build cache under the build directory."""
    go = shutil.which("go")
    if not go:
        pytest.skip("go is not installed (tests/deps.sh installs golang-go)")
    exe = os.path.join(BUILD, "gohttp")
    env = dict(os.environ, CGO_ENABLED="0", GOCACHE=os.path.join(BUILD, "gocache"), GOPATH=os.path.join(BUILD, "gopath"),
               GOFLAGS="-mod=mod", GOTOOLCHAIN="local", GOPROXY="off")
    p = subprocess.run([go, "build", "-o", exe, "."], cwd=GOHTTP_SRC, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert p.returncode == 0, p.stdout.decode(errors="replace")
    return exe


def test_static_go_http_server_reloaded_under_load(launch, load, gohttp):
    """A static Go net/http server, unmodified: Go's own raw bind and listen (from any of its threads) are
    trapped; reloaded 10 times under load with no failed request and one socket inode throughout. Each old
    generation stops by its own http.Server.Shutdown on SIGTERM."""
    port = free_port()
    hr = launch([gohttp, "-listen", "127.0.0.1:%d" % port], options=["--seccomp", "-v"])
    hr.wait_for(r"gen 1: .*gohttp is a static executable")
    pid1 = hr.wait_ready(1)
    body = http_get(port)
    ino = ino_of(body)
    assert ino in socket_inodes(hr.pid), body
    ld = load(port, threads=4)
    ld.wait_served_by(lambda p: p == pid1, count=20)
    pids = [pid1]
    for _ in range(10):
        gen = hr.reload()
        pids.append(hr.gen_pids[gen])
        ld.wait_served_by(lambda p, want=pids[-1]: p == want, count=5)
        assert ino_of(http_get(port)) == ino
    ld.stop()
    assert ld.failures == [], "%d of %d requests failed: %s" % (len(ld.failures), ld.ok + len(ld.failures),
                                                               ld.failures[:5])
    assert "sending SIGKILL" not in hr.log()
    assert hr.stop() == 0
    hr.assert_no_process_left()


def test_setuid_program_refused_without_root():
    """no_new_privs would exec a setuid program without its privilege: a non-root launcher with --seccomp
    refuses it before exec (exit 125, one line naming the fix)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to make a setuid-root file) and setpriv (CI runs as root)")
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "suidserver")
        shutil.copy(BINDSERVER, exe)
        os.chmod(exe, 0o4755)
        p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", LAUNCHER,
                            "--seccomp", "--", exe, "--listen", "127.0.0.1:%d" % free_port()],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    finally:
        shutil.rmtree(d)
    err = p.stderr.decode()
    assert p.returncode == 125, err
    assert re.search(r"error: gen 1 was refused: .*suidserver is setuid or setgid \(a secure execution\), which --seccomp run by a user "
                     r"other than root would exec with no_new_privs, ignoring what it is set to gain: run the "
                     r"launcher as root or drop --seccomp$", err, re.M), err
