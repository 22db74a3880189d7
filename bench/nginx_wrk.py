#!/usr/bin/python3
"""nginx with and without hotrestart: prints numbers and a ratio, asserts nothing.

nginx (master + 2 workers, examples/nginx/nginx.conf: `return 200 "pid=$pid\\n"` on 127.0.0.1 and ::1) is
started plainly, then under build/hotrestart, alternately, ROUNDS times each, with the same configuration;
each run is measured with `wrk -t2 -c32 -d5s`. wrk keeps its connections alive, so that line is mostly
nginx itself; a second series sends `Connection: close` (a new connection per request: every accept and
close goes through the shim). Medians are compared: ratio = hotrestart / plain.

    bench/nginx_wrk.py            (BENCH_SECONDS, BENCH_ROUNDS override 5 s and 3 rounds)
"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Launcher, dual_stack_port  # noqa: E402

NGINX = "/usr/sbin/nginx"
TEMPLATE = os.path.join(HERE, "..", "examples", "nginx", "nginx.conf")
DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
VARIANTS = ["plain", "hotrestart"]


def render(work, port, workers=2):
    d = tempfile.mkdtemp(prefix="run-", dir=work)
    os.chmod(d, 0o755)
    with open(TEMPLATE) as f:
        text = f.read().replace("@DIR@", d).replace("@PORT@", str(port))
    text = text.replace("worker_processes 2;", "worker_processes %d;" % workers)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    return d, [NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log"), "-g", "daemon off; master_process on;"]


def wait_answering(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("nginx on port %d did not answer" % port)


def wrk(port, close, threads=2):
    argv = ["wrk", "-t%d" % threads, "-c%d" % (32 * threads), "-d%ds" % DURATION]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + ["http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                         timeout=DURATION + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    notes = []
    if errors:
        notes.append("socket errors: " + errors.group(1))
    if non2xx:
        notes.append("non-2xx: " + non2xx.group(1))
    return (float(m.group(1)) if m else 0.0), "  ".join(notes)


def stop_plain(p):
    """SIGQUIT (nginx's graceful stop) to its process group, SIGKILL if it is still there after 10 s."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGQUIT)
        except ProcessLookupError:
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # the workers, whatever happened to the master
    except ProcessLookupError:
        pass
    p.wait(10)


def run(variant, work, close, workers=2, threads=2):
    port = dual_stack_port()
    d, argv = render(work, port, workers)
    if variant == "hotrestart":
        hr = Launcher(argv, ["--stop-signal", "QUIT"], cwd=d)
        try:
            hr.wait_ready(1)
            wait_answering(port)
            return wrk(port, close, threads)
        finally:
            try:
                hr.stop()
            finally:
                hr.cleanup()
    p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_answering(port)
        return wrk(port, close, threads)
    finally:
        stop_plain(p)


def series(work, close):
    label = "Connection: close (new connection per request)" if close else "keep-alive (wrk's default)"
    print("nginx, 2 workers, wrk -t2 -c32 -d%ds%s:" % (DURATION, ' -H "Connection: close"' if close else ""))
    results = {v: [] for v in VARIANTS}
    for r in range(ROUNDS):
        for v in VARIANTS:
            rps, notes = run(v, work, close)
            results[v].append(rps)
            print("  round %d %-10s %10.0f req/s  %s" % (r + 1, v, rps, notes), flush=True)
    med = {v: statistics.median(results[v]) for v in VARIANTS}
    print("  %s, median of %d:" % (label, ROUNDS))
    for v in VARIANTS:
        print("    %-10s %10.0f req/s" % (v, med[v]))
    print("    ratio hotrestart/plain: %.3f" % (med["hotrestart"] / med["plain"] if med["plain"] else 0.0), flush=True)


def worker_counts():
    given = os.environ.get("BENCH_WORKERS")
    if given is not None:
        return [int(w) for w in given.split()]
    counts, n = [], 1
    while n < os.cpu_count():
        counts.append(n)
        n *= 2
    return counts + [os.cpu_count()]


def workers_series(work):
    """Connection: close by worker count: whatever the shim does per connection must not grow with them."""
    counts = worker_counts()
    if not counts:
        return
    threads = max(2, os.cpu_count() // 2)
    print("nginx, Connection: close, by worker count (wrk -t%d -c%d -d%ds), median of %d rounds:" % (
        threads, 32 * threads, DURATION, ROUNDS), flush=True)
    for workers in counts:
        results = {v: [] for v in VARIANTS}
        for _ in range(ROUNDS):
            for v in VARIANTS:
                results[v].append(run(v, work, True, workers, threads)[0])
        med = {v: statistics.median(results[v]) for v in VARIANTS}
        ratio = med["hotrestart"] / med["plain"] if med["plain"] else 0.0
        spread = max(results["plain"]) / min(results["plain"]) - 1 if min(results["plain"]) else 0.0
        print("  %2d workers: plain %10.0f  hotrestart %10.0f req/s  ratio %.3f  (plain's own spread %.0f%%)" % (
            workers, med["plain"], med["hotrestart"], ratio, 100 * spread), flush=True)


def main():
    for tool, package in ((NGINX, "nginx-light"), ("wrk", "wrk")):
        if not shutil.which(tool):
            print("nginx_wrk: %s is not installed (apt-get install %s); skipping" % (tool, package))
            return
    work = tempfile.mkdtemp(prefix="hotrestart-nginx-bench-")
    os.chmod(work, 0o755)
    try:
        series(work, close=False)
        series(work, close=True)
        workers_series(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
