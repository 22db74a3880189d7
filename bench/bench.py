#!/usr/bin/python3
"""Benchmarks: prints numbers and ratios, asserts nothing.

1. Shim overhead on an accept/close-heavy load: wrk against build/testserver (epoll model, one connection
   per request: HTTP/1.0 with Connection: close), started (a) plainly, (b) with the shim preloaded but no
   launcher (pass-through), (c) under the launcher (shim active: every accept and close is tracked).
   Rounds are interleaved so drift on the machine hits every variant alike; medians are compared.
2. Handover cost: SIGHUP -> new generation ready -> old generation gone, from the launcher's own log
   timestamps, next to how long the same program takes to start and listen on its own.
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
from harness import SHIM, TESTSERVER, Launcher, free_port, http_get  # noqa: E402

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
    # (the bulk of each iteration) is not counted, so this bounds the shim's own cost from above.
    n = 2000
    small = [exe, "--iterations", str(n), "--rounds", "1"]
    counts = {}
    for k, prefix, e in (("plain", [], None), ("preload", [], env), ("launcher", [launcher, "--"], None)):
        out = subprocess.run(prefix + ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + small,
                             capture_output=True, text=True, env=e).stderr
        m = re.search(r"Collected : (\d+)", out)
        counts[k] = int(m.group(1)) / n if m else float("nan")
    print("user-space instructions per iteration (callgrind, %d iterations, start-up included):" % n)
    for k in ("plain", "preload", "launcher"):
        print("  %-9s %7.0f   added by the shim %+.0f" % (k, counts[k], counts[k] - counts["plain"]))


def stamp(line):
    m = re.match(r"\d+-\d+-\d+T(\d+):(\d+):([\d.]+)Z", line)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def handover(reloads=20):
    port = free_port()
    starts = []
    for _ in range(5):
        t0 = time.monotonic()
        p = subprocess.Popen([TESTSERVER, "--model", "threads", "--port", str(port)], stderr=subprocess.DEVNULL)
        wait_listening(port)
        starts.append((time.monotonic() - t0) * 1000)
        p.terminate()
        p.wait(10)
    # No rollback window: this measures the hand-over itself.
    hr = Launcher([TESTSERVER, "--model", "threads", "--port", str(port)], options=["--rollback-window", "0"])
    ready, total = [], []
    try:
        hr.wait_ready(1)
        for _ in range(reloads):
            since = hr.mark()
            hr.signal(signal.SIGHUP)
            a = hr.wait_for(r"SIGHUP: reloading", since=since).string
            b = hr.wait_for(r"gen \d+ ready in", since=since).string
            c = hr.wait_for(r"gen \d+ gone", since=since).string
            ready.append((stamp(b) - stamp(a)) * 1000)
            total.append((stamp(c) - stamp(a)) * 1000)
            http_get(port)
    finally:
        hr.stop()
        hr.cleanup()
    print("handover (%d reloads of an idle threads server):" % reloads)
    print("  program start-up on its own: %.1f ms median" % statistics.median(starts))
    print("  SIGHUP -> new generation ready: %.1f ms median, %.1f ms max" % (statistics.median(ready), max(ready)))
    print("  SIGHUP -> old generation gone:  %.1f ms median, %.1f ms max" % (statistics.median(total), max(total)))
    print("  handover overhead over start-up: %.1f ms median" % (statistics.median(total) - statistics.median(starts)))


if __name__ == "__main__":
    microbench()
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (apt-get install wrk); skipping the throughput part")
    else:
        throughput()
    handover()
