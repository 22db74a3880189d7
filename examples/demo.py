#!/usr/bin/python3
"""make demo: a real reload under load, end to end.

Starts build/testserver (several threads blocked in accept()) under build/hotrestart through a wrapper
script, the way deploys usually look, drives it with client threads that open a new connection per
request, and deploys ten new versions while the load runs, each with `hotrestart reload --json`, as a
deploy script would: it waits for the outcome and reads it. Each reply names the process and version
that served it. Prints one line per reload and a summary; exits 1 if any request or reload failed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import LAUNCHER, TESTSERVER, Launcher, Load, free_port, http_get, reply_pid  # noqa: E402

RELOADS = 10
CLIENTS = 8
WINDOW = "0.5"  # rollback window: the old version stands by this long after each switch


def main():
    work = tempfile.mkdtemp(prefix="hotrestart-demo-")
    try:
        return demo(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # after demo() has stopped the launcher and its generations


def demo(work):
    port = free_port()
    version = os.path.join(work, "version")
    run = os.path.join(work, "run.sh")
    control = os.path.join(work, "control.sock")
    with open(version, "w") as f:
        f.write("v1\n")
    with open(run, "w") as f:
        f.write('#!/bin/sh\n# the "deployed" server: a new version is just a new tag here\n'
                'exec %s --model threads --workers 8 --port %d --tag "$(cat %s)"\n' % (TESTSERVER, port, version))
    os.chmod(run, 0o755)
    print("demo: hotrestart --control %s --rollback-window %s -- %s   (127.0.0.1:%d)" % (control, WINDOW, run, port))
    hr = Launcher([run], options=["--control", control, "--rollback-window", WINDOW])
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
        ready, bad = [], 0
        for i in range(2, RELOADS + 2):
            with open(version, "w") as f:
                f.write("v%d\n" % i)
            t0 = time.monotonic()
            out = subprocess.run([LAUNCHER, "reload", "--control", control, "--json", "--timeout", "30"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            took = (time.monotonic() - t0) * 1000
            try:
                rep = json.loads(out.stdout)
            except ValueError:
                rep = {"outcome": "?", "text": out.stdout.decode(errors="replace").strip()}
            if out.returncode != 0 or rep.get("outcome") != "ok":
                bad += 1
                print("reload %2d: exit %d: %s" % (i - 1, out.returncode, rep.get("text")))
                continue
            gen = rep["generation"]
            ready.append(rep["ready_ms"])
            ld.wait_served_by(lambda p: p == rep["pid"], count=200)
            with ld.lock:
                ok, failed = ld.ok, len(ld.failures)
            print("reload %2d: exit 0 after %4.0f ms: gen %2d (%s) ready in %3d ms; %6d requests so far, %d failed"
                  % (i - 1, took, gen, tags.get(rep["pid"], "?"), rep["ready_ms"], ok, failed))
        ld.stop()
        status = hr.stop()
        gens = {g for g, p in hr.gen_pids.items() if p in ld.by_pid}
        ready.sort()
        print("demo: %d reloads (%d failed), %d requests from %d clients, %d failed, served by %d generations; "
              "new generation ready in %d ms median, %d ms max; launcher exit status %d"
              % (RELOADS, bad, ld.ok, CLIENTS, len(ld.failures), len(gens), ready[len(ready) // 2] if ready else -1,
                 ready[-1] if ready else -1, status))
        for f in ld.failures[:5]:
            print("demo: failure:", f)
        return 0 if not ld.failures and not bad and status == 0 else 1
    finally:
        hr.cleanup()


if __name__ == "__main__":
    sys.exit(main())
