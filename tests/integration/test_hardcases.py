"""Hard cases: the kernel facts of shared/PITFALLS.md, one server shape each, under continuous load.

Every test reloads (10 times unless said otherwise) while clients open a new connection per request, and
checks the one behaviour that would break without the corresponding feature of the launcher or the shim.
Model servers live in servers/ (the C ones are compiled into build/ by a module fixture). Every wait is on
an event (a launcher log line, a reply, a process disappearing) with a deadline; processes are killed by
the fixtures whatever happens."""
import datetime
import errno
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import time

import pytest

from conftest import (BUILD, PYTHON, fd_count, free_port, processes_naming, group_alive, http_get, pid_alive, reply_pid,
                      server_argv, server_ends_held, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")
RELOADS = 10
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2", "-pthread"]
C_SERVERS = ("blockmode", "shutdown_acceptors", "exit_acceptor")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def cbin():
    """Compiles the C model servers into build/ (atomically: other test runs may be using them)."""
    out = {}
    for name in C_SERVERS:
        dst = os.path.join(BUILD, name)
        tmp = "%s.tmp.%d" % (dst, os.getpid())
        r = subprocess.run(["gcc"] + CFLAGS + ["-o", tmp, os.path.join(SERVERS, name + ".c")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "gcc %s.c failed:\n%s" % (name, r.stderr)
        os.replace(tmp, dst)
        out[name] = dst
    return out


def py(name, *args):
    return [PYTHON, os.path.join(SERVERS, name)] + [str(a) for a in args]


def no_failures(ld, what="requests"):
    n = ld.ok + len(ld.failures)
    assert ld.failures == [], "%d failed %s of %d: %s" % (len(ld.failures), what, n, ld.failures[:5])


def wallclock():
    """Now, formatted like the launcher's log timestamps (UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def since_log(hr, since):
    with hr.cond:
        return "\n".join(l for l in hr.lines[since:] if l is not None)


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z hotrestart\[\d+\]: ")


def log_time(hr, pattern, since=0):
    """Timestamp (seconds, float) of the first launcher line at or after `since` matching pattern."""
    rx = re.compile(pattern)
    with hr.cond:
        lines = [l for l in hr.lines[since:] if l is not None]
    for line in lines:
        m = _TS.match(line)
        if m and rx.search(line):
            return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    raise AssertionError("no launcher line matches %r; log:\n%s" % (pattern, "\n".join(lines)))


def finish(hr, *loads):
    """Stops the loads (asserting zero failures), then the launcher (status 0), and checks nothing is left."""
    for ld in loads:
        ld.stop()
        no_failures(ld)
    reloads = len(re.findall(r"reload \d+: gen \d+ \(pid \d+\) serving", hr.log()))
    print("\n[stats] %d generations, %d completed reloads, requests %s, failures %s" % (
        len(hr.gen_pids), reloads, [ld.ok for ld in loads], [len(ld.failures) for ld in loads]))
    assert hr.stop() == 0, hr.log()
    hr.assert_no_process_left()


def gone_promptly(hr, old, mark):
    """The old generation left within 2 s of its stop signal, without SIGKILL."""
    t_term = log_time(hr, r"gen %d: sending SIG" % old, mark)
    t_gone = log_time(hr, r"gen %d gone$" % old, mark)
    text = since_log(hr, mark)
    assert "gen %d: still running" % old not in text, text
    assert t_gone - t_term < 2.0, "gen %d took %.2f s to go after its stop signal:\n%s" % (old, t_gone - t_term, text)


def reload(hr, timeout=20.0):
    """SIGHUP, then wait for the reload to complete and the old generation to be gone; fails at once (with
    the log) if it is rolled back. Returns the new generation number."""
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    gen = int(hr.wait_for(r"gen (\d+) started \(pid", timeout, since=since).group(1))
    m = hr.wait_for(r"reload \d+: gen %d \(pid \d+\) serving|reload \d+ failed: gen %d " % (gen, gen), timeout,
                    since=since)
    assert " failed: " not in m.group(0), "reload to gen %d failed:\n%s" % (gen, since_log(hr, since))
    old = int(hr.wait_for(r"gen %d ready in \d+ ms; gen (\d+) stops accepting" % gen, since=since).group(1))
    hr.wait_for(r"gen %d gone$" % old, timeout, since=since)
    return gen


def reload_loop(hr, ld, reloads=RELOADS, served_count=10, after=None):
    """`reloads` reloads under load; each new generation must serve `served_count` requests, each old one
    must be gone (its whole process group) within 2 s of its stop signal. after(gen, old_gen, seconds the
    reload took until the old generation was gone, log mark before it) runs after each one."""
    for _ in range(reloads):
        old = max(hr.gen_pids)
        mark = hr.mark()
        t0 = time.monotonic()
        gen = reload(hr)
        took = time.monotonic() - t0
        assert not group_alive(hr.gen_pids[old]), "gen %d still has processes" % old
        gone_promptly(hr, old, mark)
        if ld is not None:
            ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=served_count)
        if after:
            after(gen, old, took, mark)
    return max(hr.gen_pids)


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def pgid_of(pid):
    try:
        return int(proc_stat(pid)[2])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def cpu_ticks(pid):
    f = proc_stat(pid)
    return int(f[11]) + int(f[12])  # utime + stime (fields 14 and 15 of /proc/<pid>/stat)


def listen_backlog(port):
    """Send-Q of the listening socket on port (for a listener: its backlog), from `ss -ltn`."""
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True, text=True,
                         timeout=10).stdout
    rows = [l.split() for l in out.splitlines() if l.strip()]
    assert len(rows) == 1, "expected one listener on port %d, ss says:\n%s" % (port, out)
    return int(rows[0][2])


def socket_inode(pid, fd):
    target = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    m = re.match(r"socket:\[(\d+)\]$", target)
    assert m, "fd %d of pid %d is %s, not a socket" % (fd, pid, target)
    return int(m.group(1))


def free_dual_port():
    """A port free on both 0.0.0.0 and [::] right now."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def http_get_rst(port, host="127.0.0.1"):
    """http_get, but the client closes with a RST once it has read the whole reply: the server's side of the
    connection then leaves no TIME_WAIT behind on the server's port (which would keep the port from being
    bound again without SO_REUSEADDR for a minute, whatever the launcher does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    text = data.decode(errors="replace")
    if not text.startswith("HTTP/1.0 200 "):
        raise IOError("bad reply: %r" % text[:200])
    return reply_pid(text)


# --------------------------------------------------------------------------------------------------------
# 1. blocking mode per process (PITFALLS 2)

MODES = ["blocking", "nonblocking", "blocking", "fcntl", "blocking", "ioctl",
         "blocking", "nonblocking", "blocking", "fcntl", "blocking"]


def test_blocking_mode_is_per_process(cbin, launch, load, tmp_path):
    """Generations alternate between a blocking listener (threads in plain accept(), EAGAIN fatal) and a
    non-blocking one (SOCK_NONBLOCK, fcntl or ioctl(FIONBIO), poll loop); they share one open file
    description. Each must see, and get, the mode it asked for."""
    port = free_port()
    mode_file = tmp_path / "mode"
    mode_file.write_text(MODES[0])
    hr = launch([cbin["blockmode"], "--port", str(port), "--mode-file", str(mode_file)], options=["-v"])
    hr.wait_ready(1)
    wrong = []
    mode_by_pid = {}

    def request():
        body = http_get(port)
        pid = reply_pid(body)
        m = re.search(r"nonblock=(\d) mode=(\w+)", body)
        if not m:
            raise IOError("bad body %r" % body)
        if m.group(1) != ("0" if m.group(2) == "blocking" else "1"):
            wrong.append(body.strip())
        mode_by_pid.setdefault(pid, set()).add(m.group(2))
        return pid

    ld = load(port, request=request)
    ld.wait_requests(20)
    for i in range(1, RELOADS + 1):
        mode_file.write_text(MODES[i])
        reload_loop(hr, ld, reloads=1, served_count=50)
    ld.stop()
    log = hr.log()
    assert "blockmode: fatal" not in log, log
    assert not re.search(r"exited with status [34]\b", log), log
    assert wrong == [], "replies whose nonblock= contradicts their process's mode: %s" % wrong[:5]
    for gen, pid in hr.gen_pids.items():
        assert mode_by_pid.get(pid) == {MODES[gen - 1]}, \
            "gen %d (pid %d) should be %s, replies say %s" % (gen, pid, MODES[gen - 1], mode_by_pid.get(pid))
    finish(hr, ld)
    assert not re.search(r"exited with status [1-9]", hr.log()), hr.log()


# --------------------------------------------------------------------------------------------------------
# 2. shutdown()/connect(AF_UNSPEC)/listen() on the shared listener (PITFALLS 3)


@pytest.mark.parametrize("how", ["shutdown", "unspec"])
def test_old_generation_stopping_its_listener_leaves_it_alive(how, cbin, launch, load):
    """On SIGTERM each generation wakes its acceptor threads by shutdown(lfd, SHUT_RDWR) (or
    connect(lfd, AF_UNSPEC)); that must stop the listener for that process only."""
    port = free_port()
    hr = launch([cbin["shutdown_acceptors"], "--port", str(port), "--how", how], options=["-v"])
    hr.wait_ready(1)
    ld = load(port)
    ld.wait_requests(20)

    def check(gen, old, took, mark):
        gone_promptly(hr, old, mark)  # reload_loop checks it too: the point of this test
        text = since_log(hr, mark)
        assert re.search(r"gen %d: main process %d exited with status 0" % (old, hr.gen_pids[old]), text), text
        assert "shutdown_acceptors: pid=%d joined 4 threads" % hr.gen_pids[old] in text, text

    reload_loop(hr, ld, served_count=50, after=check)
    ld.stop()
    assert "shutdown_acceptors: fatal" not in hr.log(), hr.log()
    finish(hr, ld)


def test_relisten_does_not_shrink_shared_backlog(cbin, launch, load, tmp_path):
    """gen 1 listens with backlog 100; every later generation listens with 5 and then calls listen(lfd, 0)
    (memcached's throttle). The shared socket's backlog (Send-Q in `ss -ltn`) must stay 100."""
    port = free_port()
    opts = tmp_path / "opts"  # absent for gen 1
    hr = launch([cbin["shutdown_acceptors"], "--port", str(port), "--backlog", "100", "--opts-file", str(opts)])
    hr.wait_ready(1)
    assert listen_backlog(port) == 100
    opts.write_text("--backlog 5 --relisten 0\n")
    ld = load(port)
    ld.wait_requests(20)

    def check(gen, old, took, mark):
        assert "pid=%d listening on 127.0.0.1:%d backlog=5 relisten=0" % (hr.gen_pids[gen], port) \
            in since_log(hr, mark), since_log(hr, mark)
        assert listen_backlog(port) == 100, "gen %d shrank the shared backlog" % gen

    reload_loop(hr, ld, after=check)
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 3. pre-fork workers and exec'd descendants (PITFALLS 8)


def test_prefork_old_process_groups_are_gone(launch, load):
    port = free_port()
    hr = launch(server_argv("prefork", port))
    hr.wait_ready(1)
    group_of = {}  # worker pid -> its process group, read while it answers

    def request():
        pid = reply_pid(http_get(port))
        if pid not in group_of:
            group_of[pid] = pgid_of(pid)
        return pid

    ld = load(port, request=request)
    ld.wait_requests(20)
    for _ in range(RELOADS):
        old = max(hr.gen_pids)
        old_workers = [p for p, g in list(group_of.items()) if g == hr.gen_pids[old]]
        assert old_workers, "no reply from a worker of gen %d" % old
        gen = reload(hr)
        assert not group_alive(hr.gen_pids[old]), "gen %d's process group lives on" % old
        assert [p for p in old_workers if pid_alive(p)] == [], "workers of gen %d survive" % old
        ld.wait_served_by(lambda p, g=gen: group_of.get(p) == hr.gen_pids[g], count=10)
    finish(hr, ld)


CGI_CMD = "echo HR=${HOTRESTART:-none}; echo PRELOAD=${LD_PRELOAD:-none}; ls /proc/self/fd | wc -l"


def parse_cgi(text):
    m = re.search(r"HR=(.*)\nPRELOAD=(.*)\n\s*(\d+)\s*\npid=(\d+)", text)
    if not m:
        raise IOError("bad CGI output %r" % text)
    return m.group(1), m.group(2), int(m.group(3)), int(m.group(4))


def test_cgi_child_runs_as_if_the_shim_were_absent(launch, load):
    """GET /cgi forks and execs /bin/sh without closing anything: the child must not see HOTRESTART or
    LD_PRELOAD, and must hold exactly the descriptors the same command has when the test runs it with
    0, 1, 2 only (no private descriptor of the shim leaks into it)."""
    base = subprocess.run(["/bin/sh", "-c", CGI_CMD], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, close_fds=True, text=True, timeout=10,
                          env={k: v for k, v in os.environ.items() if k not in ("HOTRESTART", "LD_PRELOAD")})
    base_fds = int(base.stdout.split()[-1])
    assert base_fds == 4, "the test's own run: %r" % base.stdout  # 0, 1, 2 and ls's directory fd
    port = free_port()
    hr = launch(py("cgi_server.py", "--port", port))
    hr.wait_ready(1)
    bad = []

    def cgi_request():
        hr_var, preload, nfds, pid = parse_cgi(http_get(port, "/cgi"))
        if (hr_var, preload, nfds) != ("none", "none", base_fds):
            bad.append("pid %d: HR=%s PRELOAD=%s fds=%d" % (pid, hr_var, preload, nfds))
        return pid

    ld = load(port, threads=2)
    cgi = load(port, threads=2, request=cgi_request)
    cgi.wait_requests(5)

    def check(gen, old, took, mark):
        cgi.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=3)

    reload_loop(hr, ld, after=check)
    cgi.stop()
    assert bad == [], "CGI children that saw the shim: %s" % bad[:5]
    assert cgi.ok >= RELOADS * 3
    finish(hr, ld, cgi)


# --------------------------------------------------------------------------------------------------------
# 4. event loops of a draining generation must not spin (PITFALLS 4)


@pytest.mark.parametrize("loop", ["epoll", "poll", "select"])
def test_draining_event_loop_does_not_spin(loop, launch, load):
    port = free_port()
    if loop == "epoll":
        argv = server_argv("epoll", port)  # level-triggered epoll, non-blocking listener
    else:
        argv = py("pollserver.py", "--port", port, "--loop", loop)
    hr = launch(argv)
    g1 = hr.wait_ready(1)
    http_get(port)
    base = fd_count(g1)
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        idle.sendall(b"GET /idle HTTP/1.0\r\nHost: test\r\n")  # no blank line: the request never ends
        wait_until(lambda: fd_count(g1) == base + 1, 5, "gen 1 to accept the idle connection")
        ld = load(port)
        ld.wait_requests(20)
        since = hr.mark()
        hr.signal(signal.SIGHUP)
        hr.wait_for(r"gen 2 ready in", since=since)
        m = hr.wait_for(r"gen 1 draining \((\d+) connections? open\)", since=since)
        assert int(m.group(1)) >= 1, "gen 1's idle connection is not counted"
        g2 = hr.gen_pids[2]
        ld.wait_served_by(lambda p: p == g2, count=1)
        # the requests gen 1 had in flight finish; then only the idle connection keeps it draining
        wait_until(lambda: fd_count(g1) == base + 1, 5, "gen 1 to be left with its idle connection only")
        # gen 1 drains (its idle connection) while the new generation keeps the shared socket busy
        t0, c0, n0 = time.monotonic(), cpu_ticks(g1), ld.by_pid.get(g2, 0)
        while time.monotonic() - t0 < 1.0:
            ld.wait_requests(1)
        wall, cpu = time.monotonic() - t0, cpu_ticks(g1) - c0
        served = ld.by_pid.get(g2, 0) - n0
        assert pid_alive(g1), "gen 1 should still be draining (its idle connection is open)"
        assert served >= 50, "only %d requests reached gen 2 during the window" % served
        assert cpu < 0.05 * wall * CLK_TCK, \
            "draining gen 1 used %d ticks of CPU in %.2f s (%d requests to gen 2): it spins" % (cpu, wall, served)
    finally:
        idle.close()
    hr.wait_for(r"gen 1 gone", timeout=2.0, since=since)
    hr.wait_for(r"reload \d+: gen 2 \(pid \d+\) serving", since=since)
    reload_loop(hr, ld, reloads=RELOADS - 1)
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 5. closes the shim does not see


@pytest.mark.parametrize("style", ["syscall", "fork"])
def test_unseen_closes_do_not_hold_up_the_drain(style, launch, load):
    """Connections closed by syscall(SYS_close) (no libc close()) or left to the kernel by a forked child's
    _exit(): the old generation must still be found idle long before --drain-timeout."""
    port = free_port()
    hr = launch(py("rawclose.py", "--port", port, "--style", style), options=["--drain-timeout", "20"])
    hr.wait_ready(1)
    times = []

    def request():
        body = http_get(port)
        if "style=%s" % style not in body:
            raise IOError("bad body %r" % body)
        return reply_pid(body)

    ld = load(port, request=request)
    ld.wait_requests(20)
    reload_loop(hr, ld, after=lambda gen, old, took, mark: times.append(took))
    assert max(times) < 5.0, "reload times %s" % ["%.2f" % t for t in times]
    assert "drain timeout" not in hr.log(), hr.log()
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 6. unix sockets (PITFALLS 6)


def unix_request(addr):
    def request():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(addr)
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        return reply_pid(data.decode(errors="replace"))
    return request


def is_socket_file(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("probe", [False, True], ids=["unlink-first", "lighttpd-probe"])
def test_unix_socket_path_survives_unlinks(probe, launch, load, tmp_path):
    """Each generation unlinks the path before bind() and again at SIGTERM (lighttpd-style: after a
    connect() probe that must not find the socket "in use"). Clients use the path throughout."""
    path = str(tmp_path / "srv.sock")
    assert len(path) < 100
    hr = launch(py("unixserver.py", "--path", path, *(["--probe"] if probe else [])))
    hr.wait_ready(1)
    assert is_socket_file(path)
    ld = load(None, request=unix_request(path))
    ld.wait_requests(20)

    def check(gen, old, took, mark):
        assert is_socket_file(path), "the socket path is gone after gen %d started" % gen

    reload_loop(hr, ld, after=check)
    assert "already in use" not in hr.log(), hr.log()
    finish(hr, ld)
    assert not os.path.exists(path), "the socket path outlives the launcher"


def test_unix_abstract_socket(launch, load):
    name = "@hotrestart-test-%d-%d" % (os.getpid(), free_port())
    hr = launch(py("unixserver.py", "--path", name))
    hr.wait_ready(1)
    ld = load(None, request=unix_request("\0" + name[1:]))
    ld.wait_requests(20)
    reload_loop(hr, ld)
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 7. UDP


def udp_request(port, host="127.0.0.1"):
    """One datagram, one reply within 2 s, no retry: a lost datagram is a failure."""
    nonce = os.urandom(8).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        sent = wallclock()
        s.sendto(nonce, (host, port))
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            raise IOError("no reply within 2 s to datagram %s sent at %s" % (nonce.decode(), sent))
    m = re.match(rb"pid=(\d+) (.*)$", data)
    if not m or m.group(2) != nonce:
        raise IOError("bad reply %r to %r" % (data, nonce))
    return int(m.group(1))


def test_udp_no_datagram_lost(launch, load):
    """Datagrams under load, and at each reload one "slow" datagram that the old generation has taken but
    not yet answered when the drain begins (a request in flight): its reply must still arrive."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the port must be free for UDP too
        s.bind(("127.0.0.1", port))
    hr = launch(py("udpserver.py", "--port", port))
    hr.wait_ready(1)
    ld = load(None, request=lambda: udp_request(port), threads=2)
    ld.wait_requests(20)
    in_flight_lost = []
    for _ in range(RELOADS):
        old = max(hr.gen_pids)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as slow:
            slow.settimeout(5.0)
            nonce = b"slow:" + os.urandom(8).hex().encode()
            slow.sendto(nonce, ("127.0.0.1", port))
            hr.wait_for(r"pid=%d took slow datagram %s" % (hr.gen_pids[old], nonce.decode()), since=0)
            mark = hr.mark()
            gen = reload(hr)
            slow.settimeout(0.5)  # the old generation is gone: its reply, if sent, is already here
            try:
                data = slow.recv(2048)
                assert data == b"pid=%d %s" % (hr.gen_pids[old], nonce), data
            except socket.timeout:
                in_flight_lost.append("gen %d: %s; log:\n%s" % (old, nonce.decode(), since_log(hr, mark)))
        gone_promptly(hr, old, mark)
        assert hr.wait_for(r"gen %d gone" % old, since=mark)
        pids = [udp_request(port) for _ in range(20)]
        assert set(pids) == {hr.gen_pids[gen]}, "after gen %d is gone: replies from %s" % (old, set(pids))
        ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=10)
    ld.stop()
    assert in_flight_lost == [], "%d of %d replies to datagrams in flight at a reload never came:\n%s" % (
        len(in_flight_lost), RELOADS, in_flight_lost[0])
    assert ld.failures == [], "%d datagrams of %d lost: %s\nlog:\n%s" % (
        len(ld.failures), ld.ok + len(ld.failures), ld.failures[:5], hr.log())
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 8. IPv6

V6_CASES = {
    # id: (listen specs, client hosts)
    "v6-loopback": (["[::1]:{p}"], ["::1"]),
    "v6-wildcard-v6only": (["[::]:{p},v6only=1"], ["::1"]),
    "dual-stack": (["[::]:{p},v6only=0"], ["127.0.0.1", "::1"]),
    "v4-and-v6only": (["0.0.0.0:{p}", "[::]:{p},v6only=1"], ["127.0.0.1", "::1"]),
}


def refused(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.mark.parametrize("case", list(V6_CASES))
def test_ipv6_listeners(case, launch, load):
    specs, hosts = V6_CASES[case]
    port = free_dual_port()
    args = []
    for s in specs:
        args += ["--listen", s.format(p=port)]
    hr = launch(py("multiserver.py", *args))
    hr.wait_ready(1)
    # The first generation is ready once it listens on one socket (nothing says how many it will open):
    # load each address only once the launcher has seen every listener.
    for i in range(len(specs)):
        hr.wait_for(r"gen 1 listening on ", since=0 if i == 0 else None)
    loads = [load(port, host=h, threads=2) for h in hosts]
    for ld in loads:
        ld.wait_requests(10)
    for _ in range(RELOADS):
        gen = reload_loop(hr, None, reloads=1)
        for ld in loads:
            ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=5)
    if case == "v6-wildcard-v6only":
        assert refused("127.0.0.1", port), "a V6ONLY listener answers IPv4 after the reloads"
    if case == "v4-and-v6only":
        assert re.search(r"sock=0 ", http_get(port, host="127.0.0.1"))
        assert re.search(r"sock=1 ", http_get(port, host="::1"))
    finish(hr, *loads)


def test_ipv6_v6only_flip_is_not_adopted(launch, load, tmp_path):
    """gen 1 listens on [::]:P dual-stack (V6ONLY=0); the new configuration asks for V6ONLY=1. That socket
    must not be handed over (it would keep answering IPv4): observed outcome, asserted here: the new
    generation's own bind() fails (the old socket holds the port), the reload is rolled back, gen 1 keeps
    serving both families without a failed request, and a reload back to V6ONLY=0 works again."""
    port = free_dual_port()
    cfg = tmp_path / "listen.conf"
    cfg.write_text("[::]:%d,v6only=0\n" % port)
    hr = launch(py("multiserver.py", "--config", cfg))
    g1 = hr.wait_ready(1)
    loads = [load(port, host=h, threads=2) for h in ("127.0.0.1", "::1")]
    for ld in loads:
        ld.wait_requests(10)
    cfg.write_text("[::]:%d,v6only=1\n" % port)
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    m = hr.wait_for(r"reload \d+ failed: gen 2 (.*); rolled back, gen 1 keeps serving|gen 2 ready in", since=since)
    text = since_log(hr, since)
    assert " failed: " in m.group(0), "gen 2 adopted or got a V6ONLY socket:\n" + text
    assert re.search(r"gen 2 \(pid \d+\): bind \[::\]:%d failed: Address already in use" % port, text), text
    assert "multiserver: fatal: unable to bind [::]:%d,v6only=1" % port in text, text
    hr.wait_for(r"gen 2 gone", since=since)
    for ld in loads:
        n = ld.by_pid.get(g1, 0)
        ld.wait_served_by(lambda p: p == g1, count=n + 5)
    cfg.write_text("[::]:%d,v6only=0\n" % port)
    gen = reload(hr)
    for ld in loads:
        ld.wait_served_by(lambda p: p == hr.gen_pids[gen], count=5)
    finish(hr, *loads)


# --------------------------------------------------------------------------------------------------------
# 9. SO_REUSEPORT groups (PITFALLS 1)


def test_reuseport_group_handed_over_in_order(launch, load):
    port = free_port()
    hr = launch(py("multiserver.py", "--listen", "127.0.0.1:%d,reuseport,count=2" % port))
    g1 = hr.wait_ready(1)
    socks_by_pid = {}
    lfds_by_pid = {}

    def request():
        body = http_get(port)
        pid = reply_pid(body)
        m = re.search(r"sock=(\d+) .*lfds=([\d,]+)", body)
        if not m:
            raise IOError("bad body %r" % body)
        socks_by_pid.setdefault(pid, set()).add(int(m.group(1)))
        lfds_by_pid[pid] = [int(x) for x in m.group(2).split(",")]
        return pid

    ld = load(port, request=request)
    wait_until(lambda: socks_by_pid.get(g1) == {0, 1}, 10, "both sockets of gen 1 to serve")
    inodes = [socket_inode(g1, fd) for fd in lfds_by_pid[g1]]
    assert len(set(inodes)) == 2

    def check(gen, old, took, mark):
        pid = hr.gen_pids[gen]
        wait_until(lambda: socks_by_pid.get(pid) == {0, 1}, 10, "both sockets of gen %d to serve" % gen)
        now = [socket_inode(pid, fd) for fd in lfds_by_pid[pid]]
        assert now == inodes, "gen %d listens on sockets %s, gen 1 on %s" % (gen, now, inodes)

    reload_loop(hr, ld, after=check)
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# 10. a new configuration adds and drops ports


def test_ports_added_and_released(launch, load, tmp_path):
    a, b = free_port(), free_port()
    while b == a:
        b = free_port()
    cfg = tmp_path / "listen.conf"
    cfg.write_text("127.0.0.1:%d\n" % a)
    hr = launch(py("multiserver.py", "--config", cfg), options=["--ready-timeout", "5"])
    hr.wait_ready(1)
    lda = load(a, request=lambda: http_get_rst(a))
    lda.wait_requests(20)

    cfg.write_text("127.0.0.1:%d\n127.0.0.1:%d\n" % (a, b))
    mark = hr.mark()
    gen = reload(hr)
    assert "gen %d listening on 127.0.0.1:%d" % (gen, b) in since_log(hr, mark), since_log(hr, mark)
    assert reply_pid(http_get(b)) == hr.gen_pids[gen]
    lda.wait_served_by(lambda p: p == hr.gen_pids[gen], count=10)
    ldb = load(b, request=lambda: http_get_rst(b))
    ldb.wait_requests(20)
    lda.stop()
    no_failures(lda, "requests to port A")

    cfg.write_text("127.0.0.1:%d\n" % b)
    mark = hr.mark()
    gen = reload(hr)
    hr.wait_for(r"released 127\.0\.0\.1:%d: no generation uses it" % a, since=mark)

    def bindable():  # without SO_REUSEADDR: nobody may hold port A any more
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", a))
                return True
            except OSError:
                return False
    # The new generation closes its inherited copy at its next accept or wait (at most ~1 s).
    wait_until(bindable, 5, "port %d to be free" % a)
    assert refused("127.0.0.1", a)
    ldb.wait_served_by(lambda p: p == hr.gen_pids[gen], count=10)
    reload_loop(hr, ldb, reloads=RELOADS - 2)
    finish(hr, ldb)


# --------------------------------------------------------------------------------------------------------
# 11. daemonizing and re-exec


@pytest.mark.parametrize("how", ["fork", "setsid"])
def test_daemonizing_program_is_refused_and_cleaned_up(how, launch, tmp_path):
    """A program that daemonizes (its main process exits 0 while what it started lives on, in its process
    group or out of it after setsid and a double fork): one line naming the fix, everything it left is
    stopped, the launcher exits 125 and the port is free."""
    port = free_port()
    pid_file = tmp_path / "child.pid"
    hr = launch(py("daemonize.py", "--port", port, "--pid-file", pid_file, *(["--setsid"] if how == "setsid" else [])))
    status = hr.wait_exit(30)
    log = hr.log()
    g1 = hr.gen_pids[1]
    assert status == 125, log
    assert "the program daemonized" in log and "run it in the foreground" in log, log
    assert not group_alive(g1), "the daemonized child's process group survives the launcher"
    # Whatever it started (its command line names this test's pid file) is gone: nothing left running.
    left = wait_until(lambda: not processes_naming(str(pid_file)), 5, "the daemon's processes to be gone")
    assert left
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free


def test_self_reexec_keeps_hot_restart(launch, load):
    port = free_port()
    hr = launch(py("multiserver.py", "--listen", "127.0.0.1:%d" % port, "--reexec"))
    hr.wait_ready(1)
    ld = load(port)
    ld.wait_requests(20)

    def check(gen, old, took, mark):
        assert "pid=%d (re-executed) listening" % hr.gen_pids[gen] in since_log(hr, mark), since_log(hr, mark)

    reload_loop(hr, ld, reloads=5, after=check)
    finish(hr, ld)


# --------------------------------------------------------------------------------------------------------
# Regressions found in review: vfork children, unix connections in the kernel check


VFORK_SERVER = r'''
import os, signal, socket, subprocess, sys
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()  # plain blocking accept: EAGAIN here would crash the server
    c.recv(4096)
    # Python 3.11 runs this through vfork() and close_range() in the child: the child shares our
    # memory, and must leave the shim's state (fd table, counters, epoll records) alone.
    subprocess.run(["true"], check=True)
    body = b"pid=%d\n" % os.getpid()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
'''


def test_vfork_children_leave_the_shim_state_alone(launch, load, tmp_path):
    script = tmp_path / "vfork_server.py"
    script.write_text(VFORK_SERVER)
    port = free_port()
    hr = launch([PYTHON, str(script), str(port)])
    hr.wait_ready(1)
    ld = load(port, threads=3)
    ld.wait_requests(20)
    reload_loop(hr, ld, reloads=5)
    assert "exited with status" not in "\n".join(l for l in hr.log().splitlines() if "on its own" in l)
    finish(hr, ld)


UNIX_SLOW_SERVER = r'''
import os, signal, socket, sys, time
path = sys.argv[1]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(16)
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
while True:
    c, _ = s.accept()
    if c.recv(16) == b"slow":
        time.sleep(3)
    c.sendall(b"pid=%d\n" % os.getpid())
    c.close()
'''


def test_unix_connection_in_flight_holds_the_drain(launch, tmp_path):
    """The kernel check must see accepted unix connections (their address carries the listener's path):
    a slow request on the old generation completes, and the old generation waits for it."""
    script = tmp_path / "unix_slow.py"
    script.write_text(UNIX_SLOW_SERVER)
    path = str(tmp_path / "slow.sock")
    hr = launch([PYTHON, str(script), path], options=["--drain-timeout", "20"])
    hr.wait_ready(1)
    gen1 = hr.gen_pids[1]
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(15)
    c.connect(path)
    c.sendall(b"slow")
    wait_until(lambda: any("socket:" in os.readlink("/proc/%d/fd/%s" % (gen1, f))
                           for f in os.listdir("/proc/%d/fd" % gen1) if int(f) > 3), 5, "the slow request accepted")
    t0 = time.monotonic()
    hr.signal(signal.SIGHUP)
    hr.wait_for(r"gen 2 ready in")
    reply = c.recv(100)
    t_reply = time.monotonic() - t0
    c.close()
    assert reply == b"pid=%d\n" % gen1, reply
    hr.wait_for(r"gen 1 gone")
    assert t_reply > 2.0, "the reply came after %.2f s: the old generation was cut short" % t_reply
    assert "drain timeout" not in hr.log()
    assert hr.stop() == 0


# --------------------------------------------------------------------------------------------------------
# 2b. a process that is exiting while its other threads run


def test_exiting_process_takes_no_connection(cbin, launch):
    """A process stopping (a stop signal's handler calling _exit(), or exit() running its destructors)
    still runs its other threads until the kernel ends it: an acceptor that calls accept() in that window
    must take nothing, or the connection is reset a moment later. Found as one ConnectionResetError in
    test_failing_ready_check_rolls_back on a loaded machine: a worker of the rolled-back generation that
    had just closed its last connection went back to accept() while another thread ran SIGTERM's
    _exit(), after the shim had switched itself off. Here exit() is held inside stdio's final flush
    (after every destructor) and the acceptor is released only then."""
    port = free_port()
    hr = launch([cbin["exit_acceptor"], "--port", str(port)])
    pid = hr.wait_ready(1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        os.kill(pid, signal.SIGUSR1)
        hr.wait_for(r"exit_acceptor: exiting pid=%d$" % pid)  # exit(): the destructors ran
        os.kill(pid, signal.SIGUSR2)
        said = hr.wait_for(r"exit_acceptor: (accept: .*|no connection queued.*)").group(1)
        assert said == "accept: %s" % os.strerror(errno.EAGAIN), (said, hr.log())
        assert server_ends_held(client.getsockname()[1], port, [pid]) == []
    os.kill(pid, signal.SIGKILL)
    hr.wait_exit()
