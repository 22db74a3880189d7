#!/usr/bin/python3
"""Benchmarks: prints numbers and ratios, asserts nothing.

1. Shim overhead on an accept/close-heavy load: wrk against build/testserver (epoll model, one connection
   per request: HTTP/1.0 with Connection: close), started (a) plainly, (b) with the shim preloaded but no
   launcher (pass-through), (c) under the launcher (shim active: every accept and close is tracked).
   Rounds are interleaved so drift on the machine hits every variant alike; medians are compared.
2. Handover against the program itself, as ratios: SIGHUP -> new generation accepting, against how long the
   same program takes to start and accept on its own; the old generation's last connection closed -> the
   generation gone (the launcher's log), against how long the program takes to stop on its own (SIGTERM ->
   exited).
"""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import SHIM, TESTSERVER, Launcher, free_port, http_get, line_time  # noqa: E402

DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.001)
    raise RuntimeError("server on %d did not come up" % port)


def wrk(port):
    out = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % DURATION, "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=DURATION + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return float(m.group(1)) if m else 0.0, errors.group(1) if errors else ""


def run_variant(variant, port):
    argv = [TESTSERVER, "--model", "epoll", "--port", str(port)]
    if variant == "launcher":
        hr = Launcher(argv)
        try:
            hr.wait_ready(1)
            return wrk(port)
        finally:
            hr.stop()
            hr.cleanup()
    env = dict(os.environ)
    if variant == "preload":
        env["LD_PRELOAD"] = SHIM
    p = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        return wrk(port)
    finally:
        p.terminate()
        p.wait(10)


def throughput():
    variants = ["plain", "preload", "launcher"]
    results = {v: [] for v in variants}
    for r in range(ROUNDS):
        for v in variants:
            rps, errors = run_variant(v, free_port())
            results[v].append(rps)
            print("  round %d %-9s %10.0f req/s %s" % (r + 1, v, rps, ("socket errors: " + errors) if errors else ""))
    med = {v: statistics.median(results[v]) for v in variants}
    print("throughput (median of %d x %d s, wrk -t2 -c32, new connection per request):" % (ROUNDS, DURATION))
    for v in variants:
        print("  %-9s %10.0f req/s   ratio to plain %.3f" % (v, med[v], med[v] / med["plain"] if med["plain"] else 0))


def microbench(rounds=5):
    """In-process connect/accept/write/close loop: best-of ns per iteration, plain vs shim vs launcher."""
    exe = os.path.join(os.path.dirname(TESTSERVER), "accept_close")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accept_close.c")
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    args = [exe, "--iterations", "20000", "--rounds", "3"]
    env = dict(os.environ, LD_PRELOAD=SHIM)
    launcher = os.path.join(os.path.dirname(TESTSERVER), "hotrestart")
    res = {"plain": [], "preload": [], "launcher": []}
    for _ in range(rounds):
        res["plain"].append(float(subprocess.run(args, capture_output=True, text=True, check=True).stdout))
        res["preload"].append(float(subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout))
        out = subprocess.run([launcher, "--"] + args, capture_output=True, text=True, check=True).stdout
        res["launcher"].append(float(out))
    med = {k: statistics.median(v) for k, v in res.items()}
    print("accept/close loop (median of %d, best-of-3 x 20000 iterations each):" % rounds)
    for k in ("plain", "preload", "launcher"):
        print("  %-9s %7.0f ns/iteration   cost vs plain %+.1f%%" % (k, med[k], (med[k] / med["plain"] - 1) * 100))
    if not shutil.which("valgrind"):
        return
    # Instructions executed in user space are repeatable whatever else the machine does; kernel work
    # (the bulk of each iteration) is not counted. Two runs of different lengths, so that start-up cancels
    # out. Only plain against the shim preloaded without a launcher (pass-through): valgrind's tools are
    # static executables, which the shim leaves as they are, so under the launcher the program valgrind
    # runs has no shim to measure (the ns/iteration line above covers that path).
    counts = {}
    for k, e in (("plain", None), ("preload", env)):
        per = []
        for n in (1000, 3000):
            out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe,
                                  "--iterations", str(n), "--rounds", "1"], capture_output=True, text=True, env=e).stderr
            m = re.search(r"Collected : (\d+)", out)
            per.append(int(m.group(1)) if m else float("nan"))
        counts[k] = (per[1] - per[0]) / 2000
    print("user-space instructions per iteration (callgrind, 3000 - 1000 iterations, start-up cancelled):")
    for k in ("plain", "preload"):
        print("  %-9s %7.0f   added by the shim %+.0f" % (k, counts[k], counts[k] - counts["plain"]))


def handover(reloads=20):
    """Each reload with one connection held by the old generation and closed once the new one is ready:
    SIGHUP -> new generation accepting, against the program's own start-up (start -> accepting); the old
    generation's last connection closed by the server -> the generation gone, against the program's own stop
    (SIGTERM -> exited). The program is forkhold (a master and one worker), which logs when it accepts and
    when its worker closed its last connection (a timestamp taken by the server, right after its close())."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from scale import forkhold, start_plain, stop_plain  # noqa: E402 (forkhold() compiles it into build/)

    port = free_port()
    argv = [forkhold(), "--port", str(port), "--workers", "1"]
    starts, stops = [], []
    for _ in range(5):
        t0 = time.time()
        p, line = start_plain(argv)
        starts.append((float(line.split()[-1]) - t0) * 1000)  # "... accepting ... at T"
        stops.append(stop_plain(p))  # SIGTERM -> every process of it exited
    # No rollback window: this measures the hand-over itself.
    hr = Launcher(argv, options=["--rollback-window", "0"])
    ready, launcher_ready, gone = [], [], []
    try:
        hr.wait_ready(1)
        hr.wait_for(r"forkhold: pid=\d+ 1 workers accepting", since=0)
        for _ in range(reloads):
            conn = socket.create_connection(("127.0.0.1", port), timeout=30)
            conn.sendall(b"HOLD\n")
            worker = int(conn.recv(64).split(b"=")[1])
            since = hr.mark()
            t0 = time.time()
            hr.signal(signal.SIGHUP)
            b = hr.wait_for(r"gen (\d+) ready in (\d+) ms", since=since)
            up = hr.wait_for(r"forkhold: pid=%d 1 workers accepting on \d+ sockets at ([\d.]+)"
                             % hr.gen_pids[int(b.group(1))], since=since)
            ready.append((float(up.group(1)) - t0) * 1000)
            launcher_ready.append(int(b.group(2)))
            conn.close()
            closed = float(hr.wait_for(r"forkhold: pid=%d closes its last connection at ([\d.]+)" % worker,
                                       since=since).group(1))
            c = hr.wait_for(r"gen \d+ gone", since=since).string
            gone.append((line_time(c) - closed) * 1000)
            http_get(port)
    finally:
        hr.stop()
        hr.cleanup()
    med = statistics.median
    print("handover (%d reloads of a pre-fork server, a master and 1 worker, one connection held across each):"
          % reloads)
    print("  program start-up on its own (start -> accepting):  %.1f ms median" % med(starts))
    print("  program stop on its own (SIGTERM -> every process exited): %.1f ms median" % med(stops))
    print("  SIGHUP -> new generation accepting: %.1f ms median, %.1f ms max (launcher's \"ready in\": %d ms "
          "median); ratio to start-up %.2f" % (med(ready), max(ready), med(launcher_ready), med(ready) / med(starts)))
    print("  old generation's last connection closed -> generation gone: %.1f ms median, %.1f ms max; ratio to its "
          "own stop %.2f (the log's resolution is 1 ms)" % (med(gone), max(gone), med(gone) / med(stops)))


if __name__ == "__main__":
    microbench()
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (apt-get install wrk); skipping the throughput part")
    else:
        throughput()
    handover()
