#!/usr/bin/python3
"""make demo: a real reload under load, end to end.

Starts build/testserver (several threads blocked in accept()) under build/hotrestart through a wrapper
script, the way deploys usually look, drives it with client threads that open a new connection per
request, and deploys ten new versions with SIGHUP while the load runs. Each reply names the process and
version that served it. Prints one line per reload and a summary; exits 1 if any request failed.
"""
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import TESTSERVER, Launcher, Load, free_port, http_get, reply_pid  # noqa: E402

RELOADS = 10
CLIENTS = 8


def main():
    port = free_port()
    work = tempfile.mkdtemp(prefix="hotrestart-demo-")
    version = os.path.join(work, "version")
    run = os.path.join(work, "run.sh")
    with open(version, "w") as f:
        f.write("v1\n")
    with open(run, "w") as f:
        f.write('#!/bin/sh\n# the "deployed" server: a new version is just a new tag here\n'
                'exec %s --model threads --workers 8 --port %d --tag "$(cat %s)"\n' % (TESTSERVER, port, version))
    os.chmod(run, 0o755)
    print("demo: hotrestart -- %s   (127.0.0.1:%d)" % (run, port))
    hr = Launcher([run])
    tags = {}

    def request():
        body = http_get(port)
        pid = reply_pid(body)
        tags[pid] = body.split("tag=")[1].split()[0]
        return pid

    try:
        hr.wait_ready(1)
        ld = Load(port, threads=CLIENTS, request=request)
        ld.wait_requests(200)
        durations = []
        for i in range(2, RELOADS + 2):
            with open(version, "w") as f:
                f.write("v%d\n" % i)
            since = hr.mark()
            t0 = time.monotonic()
            os.kill(hr.pid, signal.SIGHUP)
            m = hr.wait_for(r"gen (\d+) ready in (\d+) ms", since=since)
            gen, ready_ms = int(m.group(1)), int(m.group(2))
            hr.wait_for(r"reload complete: gen %d serving" % gen, since=since)
            total_ms = (time.monotonic() - t0) * 1000
            durations.append(total_ms)
            ld.wait_served_by(lambda p: p == hr.gen_pids[gen], count=200)
            with ld.lock:
                ok, failed = ld.ok, len(ld.failures)
            print("reload %2d: gen %2d (%s) ready in %3d ms, old generation gone after %5.1f ms; "
                  "%6d requests so far, %d failed" % (i - 1, gen, tags.get(hr.gen_pids[gen], "?"), ready_ms,
                                                      total_ms, ok, failed))
        ld.stop()
        status = hr.stop()
        gens = {g for g, p in hr.gen_pids.items() if p in ld.by_pid}
        durations.sort()
        print("demo: %d reloads, %d requests from %d clients, %d failed, served by %d generations; "
              "reload took %.1f ms median, %.1f ms max; launcher exit status %d"
              % (RELOADS, ld.ok, CLIENTS, len(ld.failures), len(gens), durations[len(durations) // 2],
                 durations[-1], status))
        for f in ld.failures[:5]:
            print("demo: failure:", f)
        return 0 if not ld.failures and status == 0 else 1
    finally:
        hr.cleanup()


if __name__ == "__main__":
    sys.exit(main())
