"""Real, unmodified servers under hotrestart: nginx (master + workers, also with reuseport), redis (TCP and a
unix socket), Python's http.server, Node.js (http and cluster), memcached (TCP and UDP on one port), apache2
(prefork, with its pid-file guard) and haproxy (which skips listen() on a socket that already listens).

Each test starts the server from its Debian package on an ephemeral port in a scratch directory, drives it
with client threads that open a new connection (or a new UDP socket) per request in the server's own
protocol, deploys RELOADS new generations under that load, and checks: no request failed, every reload
completed, the replies came from every generation (or, where the protocol does not name the process, the
server reports the new generation's pid and the old generation's process group is gone), and a graceful
stop (with the server's own graceful-stop signal) leaves nothing running, the ports closed and no socket file
behind. test_nginx_pid_file_survives_reload checks that the server's own pid file still names the serving
master after a reload, as it would without hotrestart.

A test is skipped only when the server's binary is not installed (the reason names the package)."""
import itertools
import os
import random
import re
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time

import pytest

from conftest import PYSERVER, PYTHON, dual_stack_port, free_port, group_alive, group_members, http_get, pid_alive, reply_pid, wait_until

RELOADS = 10
CLIENTS = 4
LOAD_SECONDS = 90        # a load stops by itself after this, whatever happens
REQUEST_TIMEOUT = 5.0    # one request (connect + reply)
UDP_TIMEOUT = 2.0        # a UDP reply not back within this is a lost request
PER_GEN = 10             # replies each new generation must have served before the next reload

NGINX = "/usr/sbin/nginx"
REDIS = "/usr/bin/redis-server"
MEMCACHED = "/usr/bin/memcached"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
HAPROXY = "/usr/sbin/haproxy"
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")
NODE_SERVER = os.path.join(EXAMPLES, "node", "server.js")
NODE_CLUSTER = os.path.join(EXAMPLES, "node", "cluster.js")


# --------------------------------------------------------------------------------------------------------
# helpers


def need(path, package):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("%s is not installed (apt-get install %s)" % (path, package))
    return path


def node_binary():
    for path in ("/usr/bin/node", "/usr/bin/nodejs", shutil.which("node") or ""):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip("node is not installed (apt-get install nodejs)")


def tcp_udp_port():
    """A port free right now for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise AssertionError("no port free for both TCP and UDP")


def workers_of(hr, gen, n, timeout=15.0):
    """The n worker processes of generation gen (its process group minus its main process)."""
    main = hr.gen_pids[gen]
    return set(wait_until(lambda: (lambda w: w if len(w) == n else None)(
        [p for p in group_members(main) if p != main]), timeout, "gen %d to have %d workers" % (gen, n)))


def quietly(f):
    """f() for wait_until: False while it raises (not listening yet, no reply yet)."""
    def attempt():
        try:
            return f()
        except (OSError, IOError):
            return False
    return attempt


def recv_until(sock, done):
    data = b""
    while not done(data):
        b = sock.recv(65536)
        if not b:
            break
        data += b
    return data


class Stats:
    """Per-test numbers, printed together at the end of the module."""
    lines = []

    def __init__(self, name):
        self.name = name
        self.t0 = time.monotonic()

    def done(self, hr, reloads, ld, extra=""):
        line = "%-20s %2d reloads %7d requests  %d failed  %5.1f s%s" % (
            self.name, reloads, ld.ok + len(ld.failures), len(ld.failures), time.monotonic() - self.t0,
            ("  " + extra) if extra else "")
        Stats.lines.append(line)
        # Anything the launcher or the shim warned about is worth seeing, even when the test passes.
        for l in hr.log().splitlines():
            if "warning" in l or "error" in l:
                Stats.lines.append("    " + l)
        if os.environ.get("HOTRESTART_TEST_LOGS"):
            with open(os.path.join(os.environ["HOTRESTART_TEST_LOGS"], self.name.replace(" ", "_") + ".log"), "w") as f:
                f.write(hr.log() + "\n")


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capture is None or not Stats.lines:
        return
    with capture.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line("real servers under hotrestart:")
        for line in Stats.lines:
            tr.write_line("  " + line)
    del Stats.lines[:]


@pytest.fixture
def workdir():
    """A scratch directory that unprivileged workers (nginx's, memcached's) can reach."""
    d = tempfile.mkdtemp(prefix="hotrestart-real-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def assert_load_clean(ld, reloads):
    assert ld.failures == [], "%d failed requests of %d: %s" % (
        len(ld.failures), ld.ok + len(ld.failures), ld.failures[:5])
    assert ld.ok > reloads * PER_GEN, "only %d requests served" % ld.ok


def assert_reloads_clean(hr, reloads):
    log = hr.log()
    assert len(re.findall(r"reload \d+: gen \d+ \(pid \d+\) serving", log)) == reloads, log
    assert "rolled back" not in log, "a reload was rolled back:\n" + log
    assert "drain timeout" not in log and "SIGKILL" not in log, "a generation did not stop gracefully:\n" + log
    crash = re.search(r".*(Unhandled|Traceback|Segmentation fault|core dumped|Aborted).*", log)
    assert not crash, "the server crashed (%s); log:\n%s" % (crash.group(0), log)


def refused(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(REQUEST_TIMEOUT)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def stop_cleanly(hr, tcp=(), unix_paths=()):
    """Graceful stop: status 0, no process of any generation left, the ports closed, unix socket files
    removed (as the server itself would on a plain stop)."""
    status = hr.stop()
    hr.assert_no_process_left()
    assert status == 0, "launcher exited with status %r; log:\n%s" % (status, hr.log())
    for host, port in tcp:
        assert refused(host, port), "%s port %d still accepts connections after the stop" % (host, port)
    for path in unix_paths:
        assert not os.path.exists(path), "%s left behind after the stop" % path


def reload_and_check_old_gone(hr):
    """One reload; returns the new generation. The previous generation (its whole group) must be gone."""
    old = max(hr.gen_pids)
    gen = hr.reload()
    assert not group_alive(hr.gen_pids[old]), "gen %d (process group %d) still has processes %s" % (
        old, hr.gen_pids[old], group_members(hr.gen_pids[old]))
    assert not pid_alive(hr.gen_pids[old])
    return gen


# --------------------------------------------------------------------------------------------------------
# nginx: master + 2 workers, every reply names the worker


def nginx_config(d, port, reuseport=False):
    return """\
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port}{reuseport};
        listen [::1]:{port};
        location / {{
            default_type text/plain;
            return 200 "pid=$pid\\n";
        }}
    }}
}}
""".format(d=d, port=port, reuseport=" reuseport" if reuseport else "")


def nginx_errors(d, but=None):
    """[error], [crit], [alert] and [emerg] lines of nginx's error.log (except those matching `but`)."""
    with open(os.path.join(d, "error.log"), errors="replace") as f:
        return [l for l in f.read().splitlines()
                if re.search(r"\[(error|crit|alert|emerg)\]", l) and not (but and re.search(but, l))]


def nginx_argv(d, conf):
    return [NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log"), "-g", "daemon off; master_process on;"]


@pytest.mark.parametrize("reuseport", [False, True], ids=["shared", "reuseport"])
def test_nginx(workdir, reuseport, launch, load):
    need(NGINX, "nginx-light")
    stats = Stats("nginx" + (" reuseport" if reuseport else ""))
    port = dual_stack_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(workdir, port, reuseport))
    os.chmod(conf, 0o644)

    hr = launch(nginx_argv(workdir, conf), options=["-v", "--stop-signal", "QUIT", "--ready-timeout", "20"],
                cwd=workdir)
    hr.wait_ready(1)
    gen_workers = {1: workers_of(hr, 1, 2)}
    hosts = ["127.0.0.1", "::1"]
    for host in hosts:
        wait_until(quietly(lambda h=host: reply_pid(http_get(port, "/", h, timeout=REQUEST_TIMEOUT)) in gen_workers[1]),
                   10, "nginx to answer on %s" % host)

    counter = itertools.count()
    by_host = {h: 0 for h in hosts}
    lock = threading.Lock()

    def request():
        host = hosts[next(counter) % 2]
        pid = reply_pid(http_get(port, "/", host, timeout=REQUEST_TIMEOUT))
        with lock:
            by_host[host] += 1
        return pid

    ld = load(port, threads=CLIENTS, request=request, max_seconds=LOAD_SECONDS)
    ld.wait_served_by(lambda p: p in gen_workers[1], count=PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        gen_workers[gen] = workers_of(hr, gen, 2)
        ld.wait_served_by(lambda p, w=gen_workers[gen]: p in w, count=PER_GEN)
    ld.stop()

    assert_load_clean(ld, RELOADS)
    assert all(n > RELOADS for n in by_host.values()), "load by address: %r" % by_host
    served = {g for g, w in gen_workers.items() if any(p in ld.by_pid for p in w)}
    assert served == set(range(1, RELOADS + 2)), "replies from gens %s" % sorted(served)
    unknown = [p for p in ld.by_pid if not any(p in w for w in gen_workers.values())]
    assert unknown == [], "replies from pids that are no known worker: %s" % unknown
    assert_reloads_clean(hr, RELOADS)
    if reuseport:
        # One socket per worker on 127.0.0.1:port: every generation takes over both.
        took = re.findall(r"gen %d took over 127\.0\.0\.1:%d" % (RELOADS + 1, port), hr.log())
        assert len(took) == 2, hr.log()
    stop_cleanly(hr, tcp=[(h, port) for h in hosts])
    # The last master's "unlink() .../nginx.pid failed" is test_nginx_pid_file_survives_reload's business.
    assert nginx_errors(workdir, but=r'unlink\(\) ".*/nginx\.pid" failed') == [], "nginx's error.log"
    stats.done(hr, RELOADS, ld, "by address %s, %d workers seen" % (
        {h: n for h, n in by_host.items()}, sum(len(w) for w in gen_workers.values())))


def test_nginx_pid_file_survives_reload(workdir, launch):
    """nginx's `pid` file names the master that serves, as it does without hotrestart: after a reload it
    must name the new master. (Every generation has the same configuration, so the same pid path; the old
    master removes the file when it exits, after the new one wrote it.)"""
    need(NGINX, "nginx-light")
    port = dual_stack_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(workdir, port))
    pid_file = os.path.join(workdir, "nginx.pid")
    hr = launch(nginx_argv(workdir, conf), options=["-v", "--stop-signal", "QUIT"], cwd=workdir)
    hr.wait_ready(1)

    def pid_in_file():
        try:
            with open(pid_file) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return None

    wait_until(lambda: pid_in_file() == hr.gen_pids[1], 10, "nginx.pid to name gen 1's master")
    for _ in range(2):
        gen = reload_and_check_old_gone(hr)
        assert pid_in_file() == hr.gen_pids[gen], (
            "after reload to gen %d (master %d), nginx.pid holds %r (None: the file is gone); launcher log:\n%s"
            % (gen, hr.gen_pids[gen], pid_in_file(), hr.log()))
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    assert nginx_errors(workdir) == [], "nginx's error.log"


# --------------------------------------------------------------------------------------------------------
# redis: PING over TCP and over the unix socket; INFO server names the process


def redis_connect(port, sock_path):
    if sock_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = sock_path
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = ("127.0.0.1", port)
    s.settimeout(REQUEST_TIMEOUT)
    try:
        s.connect(target)
    except BaseException:
        s.close()
        raise
    return s


def redis_ping(port, sock_path=None):
    with redis_connect(port, sock_path) as s:
        s.sendall(b"PING\r\n")
        data = recv_until(s, lambda d: d.endswith(b"\r\n"))
    if data != b"+PONG\r\n":
        raise IOError("bad PING reply over %s: %r" % ("unix" if sock_path else "tcp", data[:200]))


def redis_process_id(port, sock_path=None):
    def complete(d):
        head, sep, rest = d.partition(b"\r\n")
        return sep and head.startswith(b"$") and len(rest) >= int(head[1:]) + 2
    with redis_connect(port, sock_path) as s:
        s.sendall(b"INFO server\r\n")
        data = recv_until(s, complete)
    m = re.search(rb"\r\nprocess_id:(\d+)\r\n", data)
    if not m:
        raise IOError("INFO server without process_id: %r" % data[:300])
    return int(m.group(1))


def test_redis(workdir, launch, load):
    need(REDIS, "redis-server")
    stats = Stats("redis")
    port = free_port()
    sock_path = os.path.join(workdir, "redis.sock")
    argv = [REDIS, "--port", str(port), "--unixsocket", sock_path, "--unixsocketperm", "777",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", workdir]
    hr = launch(argv, options=["-v", "--stop-signal", "TERM", "--ready-timeout", "20"], cwd=workdir)
    hr.wait_ready(1)
    wait_until(lambda: os.path.exists(sock_path), 10, "the unix socket %s" % sock_path)
    assert wait_until(quietly(lambda: redis_process_id(port) == hr.gen_pids[1]), 10, "redis to answer over TCP")
    assert redis_process_id(port, sock_path) == hr.gen_pids[1]

    counter = itertools.count()

    def request():
        if next(counter) % 2:
            redis_ping(port, sock_path)
            return "unix"
        redis_ping(port)
        return "tcp"

    ld = load(port, threads=CLIENTS, request=request, max_seconds=LOAD_SECONDS)
    ld.wait_requests(PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        st = os.stat(sock_path)  # the old generation's exit must not have unlinked it
        assert stat.S_ISSOCK(st.st_mode), "%s is no socket after gen %d" % (sock_path, gen)
        assert redis_process_id(port) == hr.gen_pids[gen], "TCP still served by an older generation"
        assert redis_process_id(port, sock_path) == hr.gen_pids[gen], "unix socket served by an older generation"
        ld.wait_requests(PER_GEN)
    ld.stop()

    assert_load_clean(ld, RELOADS)
    assert ld.by_pid.get("tcp", 0) > RELOADS and ld.by_pid.get("unix", 0) > RELOADS, ld.by_pid
    assert_reloads_clean(hr, RELOADS)
    stop_cleanly(hr, tcp=[("127.0.0.1", port)], unix_paths=[sock_path])
    stats.done(hr, RELOADS, ld, "PINGs %r" % ld.by_pid)


def test_redis_accepts_after_bgsave(workdir, launch):
    """redis' BGSAVE child closes its copies of the listeners; the parent shares its epoll set with that
    child, so the shim must not take the listeners out of it on the child's behalf."""
    need(REDIS, "redis-server")
    port = free_port()
    argv = [REDIS, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", workdir]
    hr = launch(argv, options=["--stop-signal", "TERM"], cwd=workdir)
    hr.wait_ready(1)
    wait_until(quietly(lambda: redis_ping(port) or True), 10, "redis to answer")
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"BGSAVE\r\n")
            assert recv_until(s, lambda b: b.endswith(b"\r\n")).startswith(b"+Background saving started")

        def saved():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"INFO persistence\r\n")
                return b"rdb_bgsave_in_progress:0" in recv_until(s, lambda b: b"rdb_last_bgsave_status" in b)
        wait_until(quietly(saved), 10, "the background save to finish")
        for _ in range(20):
            redis_ping(port)  # new connections after the child exited: still accepted
        hr.reload()
    assert hr.stop() == 0
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# Python http.server and Node.js: one process per generation, replies name it


def run_single_process_server(hr, ld_factory, port, stats):
    hr.wait_ready(1)
    wait_until(quietly(lambda: reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)) == hr.gen_pids[1]), 10,
               "the server to answer")
    ld = ld_factory(port, threads=CLIENTS, max_seconds=LOAD_SECONDS,
                    request=lambda: reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)))
    ld.wait_served_by(lambda p: p == hr.gen_pids[1], count=PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=PER_GEN)
    ld.stop()
    assert_load_clean(ld, RELOADS)
    served = {g for g, p in hr.gen_pids.items() if p in ld.by_pid}
    assert served == set(range(1, RELOADS + 2)), "replies from gens %s" % sorted(served)
    assert_reloads_clean(hr, RELOADS)
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    stats.done(hr, RELOADS, ld, "%d generations answered" % len(served))


def test_python_http_server(workdir, launch, load):
    need(PYTHON, "python3")
    stats = Stats("python http.server")
    port = free_port()
    hr = launch([PYTHON, PYSERVER, "--host", "127.0.0.1", "--port", str(port)],
                options=["-v", "--stop-signal", "TERM"], cwd=workdir)
    run_single_process_server(hr, load, port, stats)


def test_node_http(workdir, launch, load):
    node = node_binary()
    stats = Stats("node http")
    port = free_port()
    hr = launch([node, NODE_SERVER, str(port), "127.0.0.1"], options=["-v", "--stop-signal", "TERM"],
                cwd=workdir)
    run_single_process_server(hr, load, port, stats)


def test_node_cluster(workdir, launch, load):
    node = node_binary()
    stats = Stats("node cluster")
    port = free_port()
    hr = launch([node, NODE_CLUSTER, str(port), "127.0.0.1"], options=["-v", "--stop-signal", "TERM"],
                cwd=workdir)
    hr.wait_ready(1)
    gen_workers = {1: workers_of(hr, 1, 2)}
    wait_until(quietly(lambda: reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)) in gen_workers[1]), 10,
               "the cluster to answer")
    ld = load(port, threads=CLIENTS, max_seconds=LOAD_SECONDS,
              request=lambda: reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)))

    def wait_gen_up(gen):
        # The launcher calls a generation ready once its primary listens (when the first worker asks it
        # to); the second worker may still be booting. Each worker serving is what "up" means here.
        ld.wait_served_by(lambda p, w=gen_workers[gen]: p in w, count=PER_GEN)
        for w in gen_workers[gen]:
            ld.wait_served_by(lambda p, w=w: p == w)

    wait_gen_up(1)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        gen_workers[gen] = workers_of(hr, gen, 2)
        wait_gen_up(gen)
    ld.stop()
    assert_load_clean(ld, RELOADS)
    served = {g for g, w in gen_workers.items() if all(p in ld.by_pid for p in w)}
    assert served == set(range(1, RELOADS + 2)), "replies from both workers of gens %s" % sorted(served)
    assert_reloads_clean(hr, RELOADS)
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    stats.done(hr, RELOADS, ld, "%d generations answered (both workers each)" % len(served))


# --------------------------------------------------------------------------------------------------------
# memcached: TCP and UDP on one port


def mc_tcp(port, command):
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as s:
        s.sendall(command)
        return recv_until(s, lambda d: d.endswith(b"END\r\n") or (d.endswith(b"\r\n") and not d.startswith(b"STAT")))


def mc_tcp_version(port):
    data = mc_tcp(port, b"version\r\n")
    if not data.startswith(b"VERSION ") or not data.endswith(b"\r\n"):
        raise IOError("bad TCP version reply: %r" % data[:200])


def mc_udp_version(port):
    rid = random.randrange(1 << 16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(UDP_TIMEOUT)
        s.connect(("127.0.0.1", port))
        s.send(struct.pack("!HHHH", rid, 0, 1, 0) + b"version\r\n")
        deadline = time.monotonic() + UDP_TIMEOUT
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except socket.timeout:
                raise IOError("UDP reply to request %d lost (none within %.0f s)" % (rid, UDP_TIMEOUT))
            if len(data) >= 8 and struct.unpack("!H", data[:2])[0] == rid:
                break
    head, body = struct.unpack("!HHHH", data[:8]), data[8:]
    if head != (rid, 0, 1, 0) or not body.startswith(b"VERSION "):
        raise IOError("bad UDP reply: %r %r" % (head, body[:100]))


def mc_pid(port):
    data = mc_tcp(port, b"stats\r\n")
    m = re.search(rb"STAT pid (\d+)\r\n", data)
    if not m:
        raise IOError("stats without pid: %r" % data[:200])
    return int(m.group(1))


def test_memcached(workdir, launch, load):
    need(MEMCACHED, "memcached")
    stats = Stats("memcached")
    port = tcp_udp_port()
    argv = [MEMCACHED, "-U", str(port), "-p", str(port), "-l", "127.0.0.1"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    # SIGUSR1 is memcached's graceful stop (SIGTERM exits at once).
    hr = launch(argv, options=["-v", "--stop-signal", "USR1", "--ready-timeout", "20"], cwd=workdir)
    hr.wait_ready(1)
    assert wait_until(quietly(lambda: mc_pid(port) == hr.gen_pids[1]), 10, "memcached to answer")
    mc_udp_version(port)

    counter = itertools.count()

    def request():
        if next(counter) % 2:
            mc_udp_version(port)
            return "udp"
        mc_tcp_version(port)
        return "tcp"

    ld = load(port, threads=CLIENTS, request=request, max_seconds=LOAD_SECONDS)
    ld.wait_requests(PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        assert mc_pid(port) == hr.gen_pids[gen], "TCP still served by an older generation"
        ld.wait_requests(PER_GEN)
    ld.stop()

    assert_load_clean(ld, RELOADS)
    assert ld.by_pid.get("tcp", 0) > RELOADS and ld.by_pid.get("udp", 0) > RELOADS, ld.by_pid
    assert_reloads_clean(hr, RELOADS)
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    stats.done(hr, RELOADS, ld, "requests %r" % ld.by_pid)


# --------------------------------------------------------------------------------------------------------
# apache2: prefork MPM, `-k start -DFOREGROUND` (which refuses to start while the process its PidFile names
# is alive: the older generation must not count), graceful stop WINCH. A CGI script names the child that
# runs it and its process group (the generation's main pid).


def apache_config(d, port):
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    return """\
ServerRoot {d}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/apache2.pid
ErrorLog {d}/error.log
LogLevel warn
LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule alias_module {m}/mod_alias.so
LoadModule cgi_module {m}/mod_cgi.so
{user}StartServers 2
MinSpareServers 2
MaxSpareServers 4
KeepAlive Off
DocumentRoot {d}
ScriptAlias /pid {d}/pid.cgi
<Directory {d}>
    AllowOverride None
    Require all granted
</Directory>
""".format(d=d, port=port, m=APACHE_MODULES, user=user)


APACHE_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\npid=%s pgrp=%s\\n' "$PPID" "$(cut -d' ' -f5 /proc/$$/stat)"
"""


def apache_errors(d):
    """[error], [crit], [alert] and [emerg] lines of apache's error.log (its levels read "[module:level]")."""
    with open(os.path.join(d, "error.log"), errors="replace") as f:
        return [l for l in f.read().splitlines() if re.search(r"\[[a-z_0-9]+:(error|crit|alert|emerg)\]", l)]


def apache_pgrp(port):
    body = http_get(port, "/pid", timeout=REQUEST_TIMEOUT)
    m = re.search(r"pid=(\d+) pgrp=(\d+)", body)
    if not m:
        raise IOError("bad CGI reply: %r" % body[:200])
    return int(m.group(2))


def test_apache2(workdir, launch, load):
    need(APACHE, "apache2")
    stats = Stats("apache2 prefork")
    port = free_port()
    conf = os.path.join(workdir, "apache2.conf")
    with open(conf, "w") as f:
        f.write(apache_config(workdir, port))
    cgi = os.path.join(workdir, "pid.cgi")
    with open(cgi, "w") as f:
        f.write(APACHE_CGI)
    os.chmod(cgi, 0o755)
    hr = launch([APACHE, "-k", "start", "-f", conf, "-DFOREGROUND"],
                options=["-v", "--stop-signal", "WINCH", "--ready-timeout", "20"], cwd=workdir)
    hr.wait_ready(1)
    wait_until(quietly(lambda: apache_pgrp(port) == hr.gen_pids[1]), 10, "apache2 to answer")
    ld = load(port, threads=CLIENTS, request=lambda: apache_pgrp(port), max_seconds=LOAD_SECONDS)
    ld.wait_served_by(lambda p: p == hr.gen_pids[1], count=PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g], count=PER_GEN)
    ld.stop()

    assert_load_clean(ld, RELOADS)
    served = {g for g, p in hr.gen_pids.items() if p in ld.by_pid}
    assert served == set(range(1, RELOADS + 2)), "replies from gens %s" % sorted(served)
    assert "already running" not in hr.log(), hr.log()
    assert_reloads_clean(hr, RELOADS)
    with open(os.path.join(workdir, "apache2.pid")) as f:
        assert int(f.read()) == hr.gen_pids[RELOADS + 1], "apache2.pid names the serving generation"
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    assert apache_errors(workdir) == [], "apache's error.log"
    stats.done(hr, RELOADS, ld, "%d generations answered" % len(served))


# --------------------------------------------------------------------------------------------------------
# haproxy: `-db` (foreground), graceful stop USR1. haproxy asks SO_ACCEPTCONN after bind() and calls
# listen() only on a socket that does not listen yet. Replies name the generation ($HOTRESTART_GENERATION).


def haproxy_config(port):
    return """\
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain lf-string "gen=%[env(HOTRESTART_GENERATION)]\\n"
""".format(port=port)


def haproxy_gen(port):
    body = http_get(port, "/", timeout=REQUEST_TIMEOUT)
    m = re.match(r"gen=(\d+)\n", body)
    if not m:
        raise IOError("bad reply: %r" % body[:200])
    return int(m.group(1))


def test_haproxy(workdir, launch, load):
    need(HAPROXY, "haproxy")
    stats = Stats("haproxy")
    port = free_port()
    conf = os.path.join(workdir, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(haproxy_config(port))
    hr = launch([HAPROXY, "-db", "-f", conf], options=["-v", "--stop-signal", "USR1", "--ready-timeout", "20"],
                cwd=workdir)
    hr.wait_ready(1)
    wait_until(quietly(lambda: haproxy_gen(port) == 1), 10, "haproxy to answer")
    ld = load(port, threads=CLIENTS, request=lambda: haproxy_gen(port), max_seconds=LOAD_SECONDS)
    ld.wait_served_by(lambda g: g == 1, count=PER_GEN)
    for _ in range(RELOADS):
        gen = reload_and_check_old_gone(hr)
        ld.wait_served_by(lambda g, n=gen: g == n, count=PER_GEN)
    ld.stop()

    assert_load_clean(ld, RELOADS)
    assert set(ld.by_pid) == set(range(1, RELOADS + 2)), "replies from gens %s" % sorted(ld.by_pid)
    assert_reloads_clean(hr, RELOADS)
    assert re.search(r"gen %d took over 127\.0\.0\.1:%d" % (RELOADS + 1, port), hr.log()), hr.log()
    stop_cleanly(hr, tcp=[("127.0.0.1", port)])
    alerts = [l for l in hr.log().splitlines() if l.startswith("[ALERT]")]
    assert alerts == [], "haproxy alerts: %s" % alerts
    stats.done(hr, RELOADS, ld, "%d generations answered" % len(ld.by_pid))
