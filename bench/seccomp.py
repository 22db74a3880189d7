#!/usr/bin/python3
"""--seccomp benchmarks: prints numbers and ratios, asserts nothing.

1. Steady-state cost: wrk against build/bindserver (a static server that binds itself; one connection per
   request) run plainly, under `hotrestart --seccomp` (its bind and listen trapped once at start; accept,
   read, write and close pass the filter untrapped) and under `hotrestart --seccomp-accept` (every accept
   trapped too), each with two accept loops: poll + accept4 on a blocking socket (--seccomp-accept: the
   launcher accepts and hands the connection over) and epoll + accept4 on a non-blocking one
   (--seccomp-accept: the call continues). Rounds interleaved, medians compared.
2. Handover: SIGHUP -> new generation ready (its trapped bind and listen answered) -> old generation gone,
   from the launcher's log timestamps.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import BUILD, Launcher, free_port, http_get  # noqa: E402
from bench import DURATION, ROUNDS, wait_listening, wrk  # noqa: E402

BINDSERVER = os.path.join(BUILD, "bindserver")


def stamp(line):
    """Seconds of the day of a launcher log line's timestamp (2026-01-02T03:04:05.678Z)."""
    m = re.match(r"\d+-\d+-\d+T(\d+):(\d+):([\d.]+)Z", line)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def run_variant(variant, loop, port):
    argv = [BINDSERVER, "--listen", "127.0.0.1:%d" % port] + (["--accept", "epoll"] if loop == "epoll" else [])
    if variant != "plain":
        hr = Launcher(argv, options=["--" + variant])
        try:
            hr.wait_ready(1)
            return wrk(port)
        finally:
            hr.stop()
            hr.cleanup()
    p = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        return wrk(port)
    finally:
        p.terminate()
        p.wait(10)


def throughput():
    variants = ["plain", "seccomp", "seccomp-accept"]
    loops = ["poll", "epoll"]
    results = {(v, lp): [] for v in variants for lp in loops}
    for r in range(ROUNDS):
        for lp in loops:
            for v in variants:
                rps, errors = run_variant(v, lp, free_port())
                results[(v, lp)].append(rps)
                print("  round %d %-5s %-14s %10.0f req/s %s" % (r + 1, lp, v, rps,
                                                               ("socket errors: " + errors) if errors else ""))
    med = {k: statistics.median(x) for k, x in results.items()}
    print("--seccomp throughput (median of %d x %d s, wrk -t2 -c32, static server, new connection per request):"
          % (ROUNDS, DURATION))
    for lp in loops:
        print("  %s:" % {"poll": "poll + accept4, blocking socket", "epoll": "epoll + accept4, non-blocking socket"}[lp])
        for v in variants:
            plain, sec = med[("plain", lp)], med[("seccomp", lp)]
            print("    %-14s %10.0f req/s   ratio to plain %.3f   to --seccomp %.3f" % (
                v, med[(v, lp)], med[(v, lp)] / plain if plain else 0, med[(v, lp)] / sec if sec else 0))


def handover(reloads=20):
    port = free_port()
    hr = Launcher([BINDSERVER, "--listen", "127.0.0.1:%d" % port], options=["--seccomp", "--rollback-window", "0"])
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
    print("--seccomp handover (%d reloads of an idle static server):" % reloads)
    print("  SIGHUP -> new generation ready: %.1f ms median, %.1f ms max" % (statistics.median(ready), max(ready)))
    print("  SIGHUP -> old generation gone:  %.1f ms median, %.1f ms max" % (statistics.median(total), max(total)))


if __name__ == "__main__":
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (apt-get install wrk); skipping the --seccomp throughput part")
    else:
        throughput()
    handover()
