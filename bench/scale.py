#!/usr/bin/python3
"""Scale benchmarks: prints numbers, asserts nothing.

1. listeners: K listening sockets (127.0.0.1 and 127.0.1.x, one port) handed over at each reload: handover
   time against the program's own start-up, launcher memory (RSS, PSS) and descriptors, the shim's memory in
   the generation (its RSS and PSS against the same program started plainly, and the library's own
   mappings). K is capped at the per-generation limit (kMaxInherited, 1024), which is printed.
2. connections: N live connections held by a 4-worker server across a reload, then closed by the client:
   launcher CPU while the old generation drains with them open, time from the client's last close to the
   drain being detected (the stop signal) and to the old generation being gone, launcher CPU in between,
   launcher memory.
3. processes: a generation of P processes (a master and P-1 workers, one connection held per process),
   reloaded and drained the same way: handover time, launcher CPU during the drain and the teardown.
4. nginx: R reloads under wrk (Connection: close, a new connection per request): launcher descriptors (one
   is the control socket `status` is asked through) and memory and the reload's "ready in" at reload 1, 10
   and 100, and failed requests over the whole run.

Launcher CPU is utime+stime from /proc/PID/stat (in clock ticks). Sizes (defaults are the issue's: a few
minutes on a many-core machine; BENCH_SCALE=small for about a minute on 2 cores):
    BENCH_LISTENERS (1000)  BENCH_CONNS (10000)  BENCH_PROCS (2000)  BENCH_NGINX_RELOADS (100)
    BENCH_HOLD_SECONDS (2): how long the CPU of a drain with connections open is sampled
    BENCH_PARTS: a comma-separated subset of listeners,connections,processes,nginx (default: all)
"""
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import BUILD, Launcher, dual_stack_port, free_port, http_get, line_time, reply_pid  # noqa: E402

SMALL = os.environ.get("BENCH_SCALE") == "small"
LISTENERS = int(os.environ.get("BENCH_LISTENERS", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "2000" if SMALL else "10000"))
PROCS = int(os.environ.get("BENCH_PROCS", "200" if SMALL else "2000"))
NGINX_RELOADS = int(os.environ.get("BENCH_NGINX_RELOADS", "20" if SMALL else "100"))
HOLD = float(os.environ.get("BENCH_HOLD_SECONDS", "2"))
PARTS = os.environ.get("BENCH_PARTS", "listeners,connections,processes,nginx").split(",")
CLK_TCK = os.sysconf("SC_CLK_TCK")
FORKHOLD_SRC = os.path.join(ROOT, "tests", "integration", "servers", "forkhold.c")
# No rollback window (it would only add its length to every handover) and drains that end by themselves.
OPTIONS = ["--rollback-window", "0", "--drain-timeout", "600", "--ready-timeout", "120"]


def forkhold():
    dst = os.path.join(BUILD, "forkhold")
    tmp = "%s.tmp.%d" % (dst, os.getpid())
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-O2", "-o", tmp, FORKHOLD_SRC], check=True)
    os.replace(tmp, dst)
    return dst


def start_plain(argv):
    """The program on its own, in its own process group; returns (Popen, its "accepting ... at T" line)."""
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return p, p.stderr.readline()


def stop_plain(p):
    """SIGTERM to its process group, and wait until none of its processes is left (the workers too, so the
    next start finds its ports free). Returns how long that took, in ms."""
    with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
        workers = [os.pidfd_open(int(w)) for w in f.read().split()]
    t0 = time.monotonic()
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(10)
    for fd in workers:
        select.select([fd], [], [], 10)  # a pidfd is readable once its process has exited
        os.close(fd)
    took = (time.monotonic() - t0) * 1000
    p.stderr.close()
    return took


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_ms(ticks):
    return ticks * 1000.0 / CLK_TCK


def memory_kb(pid):
    """(VmRSS, VmHWM) in kB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def pss_kb(pid):
    """Proportional set size in kB (shared pages divided among the processes mapping them)."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        return int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))


def shim_mapped_kb(pid):
    """(Rss, Pss) in kB of the mappings of libhotrestart.so itself in pid (its code and data, not the
    anonymous tables it maps)."""
    rss = pss = 0
    mine = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                mine = head[-1].endswith("/libhotrestart.so")
            elif mine and head[0] == "Rss:":
                rss += int(head[1])
            elif mine and head[0] == "Pss:":
                pss += int(head[1])
    return rss, pss


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_kinds(pid):
    """What the descriptors are, as "socket 3, pipe 2, ...": a growing count says what leaks."""
    kinds = {}
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, f))
        except OSError:
            continue
        kind = re.sub(r":\[?\d+\]?$|:.*\(deleted\)$", "", target)
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join("%s %d" % (k, n) for k, n in sorted(kinds.items()))


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need <= hard or (soft < hard and need > hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def hold(port, n, host="127.0.0.1", batch=256):
    """Opens n connections, each answered "pid=<worker>" (so accepted and held). Returns (sockets, {pid: n})."""
    socks, by_pid = [], {}
    for start in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection((host, port), timeout=60)
            s.sendall(b"HOLD\n")
            group.append(s)
        for s in group:
            pid = int(s.recv(64).split(b"=")[1])
            by_pid[pid] = by_pid.get(pid, 0) + 1
        socks += group
    return socks, by_pid


def forkhold_up(hr, workers, since):
    """Waits until every worker of a generation accepts; returns when that was (the server's clock)."""
    m = hr.wait_for(r"forkhold: pid=\d+ %d workers accepting on \d+ sockets at ([\d.]+)" % workers, since=since,
                    timeout=120)
    return float(m.group(1))


def reload_line(hr, since, timeout=120):
    """Waits for the reload's summary: (number, new generation, ready ms)."""
    m = hr.wait_for(r"reload (\d+): gen (\d+) \(pid \d+\) serving; ready in (\d+) ms", since=since, timeout=timeout)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def drain_and_measure(hr, socks, by_pid, old, label):
    """The old generation drains with socks open (CPU sampled over HOLD s), then the client closes them all:
    prints when the server closed its last one (as its workers log it), when the launcher noticed (its stop
    signal), when the generation was gone, and the launcher's CPU in between."""
    since = hr.mark()
    c0, t0 = cpu_ticks(hr.pid), time.monotonic()
    time.sleep(HOLD)  # a fixed window of a drain with every connection open: what a long drain costs
    c1, t1 = cpu_ticks(hr.pid), time.monotonic()
    for s in socks:
        s.close()
    t_close = time.time()
    last = 0.0
    for pid in by_pid:
        m = hr.wait_for(r"forkhold: pid=%d closes its last connection at ([\d.]+)" % pid, since=since, timeout=120)
        last = max(last, float(m.group(1)))
    stop = hr.wait_for(r"gen %d: sending SIG\w+ to process group" % old, since=since, timeout=120).string
    gone = hr.wait_for(r"gen %d gone$" % old, since=since, timeout=120).string
    c2 = cpu_ticks(hr.pid)
    print("  launcher CPU while gen %d drains with %s open: %.1f%% of a core (%.0f ms in %.1f s)"
          % (old, label, 100.0 * cpu_ms(c1 - c0) / ((t1 - t0) * 1000), cpu_ms(c1 - c0), t1 - t0))
    print("  server's last close (%.0f ms after the client's) -> drain detected (stop signal): %.0f ms; -> gen %d gone: "
          "%.0f ms (the log's resolution is 1 ms)" % ((last - t_close) * 1000, (line_time(stop) - last) * 1000, old,
                                                      (line_time(gone) - last) * 1000))
    print("  launcher CPU from the last close to gone: %.0f ms" % cpu_ms(c2 - c1))


def part_listeners(server):
    with open(os.path.join(ROOT, "shim", "protocol.h")) as f:
        limit = int(re.search(r"kMaxInherited\s*=\s*(\d+)", f.read()).group(1))
    k = min(LISTENERS, limit)
    print("listeners: %d asked; a generation inherits at most %d (kMaxInherited): handing over %d" % (LISTENERS, limit, k))
    port = free_port()
    argv = [server, "--port", str(port), "--workers", "1", "--listeners", str(k)]
    # The program on its own: start until it accepts on every socket, and its memory.
    starts, plain_rss = [], 0
    for _ in range(5):
        t0 = time.time()
        p, line = start_plain(argv)  # "forkhold: ... workers accepting ... at T": every socket listens, watched
        starts.append((float(line.split()[-1]) - t0) * 1000)
        plain_rss, plain_pss = memory_kb(p.pid)[0], pss_kb(p.pid)
        stop_plain(p)
    hr = Launcher(argv, OPTIONS)
    try:
        hr.wait_ready(1, timeout=60)
        forkhold_up(hr, 1, 0)
        ready, launcher_ready, failed = [], [], 0
        for i in range(5):
            since = hr.mark()
            t0 = time.time()
            hr.signal(signal.SIGHUP)
            _, gen, ready_ms = reload_line(hr, since)
            ready.append((forkhold_up(hr, 1, since) - t0) * 1000)
            launcher_ready.append(ready_ms)
            hr.wait_for(r"gen %d gone$" % (gen - 1), since=since, timeout=60)
            for j in range(k):  # every socket answers, from the new generation
                host = "127.0.0.1" if j == 0 else "127.0.%d.%d" % (1 + (j - 1) // 250, 1 + (j - 1) % 250)
                try:
                    if os.getpgid(reply_pid(http_get(port, host=host, timeout=10))) != hr.gen_pids[gen]:
                        failed += 1  # served by a process that is not of the new generation
                except OSError:
                    failed += 1
        rss, hwm = memory_kb(hr.pid)
        gen_rss, gen_pss = memory_kb(hr.gen_pids[gen])[0], pss_kb(hr.gen_pids[gen])
        shim_rss, shim_pss = shim_mapped_kb(hr.gen_pids[gen])
        print("  program start-up on its own (%d sockets listening and watched): %.1f ms median"
              % (k, statistics.median(starts)))
        print("  SIGHUP -> new generation accepting on every socket: %.1f ms median of 5, %.1f max (launcher's \"ready "
              "in\": %d ms median); ratio to start-up %.2f" % (statistics.median(ready), max(ready),
                                                           statistics.median(launcher_ready),
                                                           statistics.median(ready) / statistics.median(starts)))
        print("  requests to each socket after each reload: %d, %d failed" % (5 * k, failed))
        print("  launcher: %d descriptors, RSS %d kB (peak %d kB), PSS %d kB" % (fds(hr.pid), rss, hwm, pss_kb(hr.pid)))
        print("  generation's main process: RSS %d kB, PSS %d kB; started plainly: RSS %d kB, PSS %d kB (shim: %+d kB "
              "RSS, %+d kB PSS)" % (gen_rss, gen_pss, plain_rss, plain_pss, gen_rss - plain_rss, gen_pss - plain_pss))
        print("  libhotrestart.so's own mappings in it: RSS %d kB, PSS %d kB" % (shim_rss, shim_pss))
        hr.stop(60)
    finally:
        hr.cleanup()


def part_connections(server):
    limit = raise_fd_limit(CONNS + 256)
    n = min(CONNS, limit - 256)
    print("connections: %d held across a reload by a 4-worker server, then closed%s"
          % (n, "" if n == CONNS else " (%d asked; RLIMIT_NOFILE allows %d)" % (CONNS, limit)))
    port = free_port()
    hr = Launcher([server, "--port", str(port), "--workers", "4"], OPTIONS)
    socks = []
    try:
        hr.wait_ready(1)
        forkhold_up(hr, 4, 0)
        rss0 = memory_kb(hr.pid)[0]
        t0 = time.monotonic()
        socks, by_pid = hold(port, n)
        print("  %d connections open (%.1f s), held by %d processes of gen 1" % (n, time.monotonic() - t0, len(by_pid)))
        since = hr.mark()
        hr.signal(signal.SIGHUP)
        _, gen, ready_ms = reload_line(hr, since)
        forkhold_up(hr, 4, since)
        reply_pid(http_get(port))
        print("  reload with them open: gen %d ready in %d ms" % (gen, ready_ms))
        drain_and_measure(hr, socks, by_pid, gen - 1, "%d connections" % n)
        socks = []
        rss, hwm = memory_kb(hr.pid)
        print("  launcher: RSS %d kB before the connections, %d kB after (peak %d kB), %d descriptors"
              % (rss0, rss, hwm, fds(hr.pid)))
        hr.stop(60)
    finally:
        for s in socks:
            s.close()
        hr.cleanup()


def part_processes(server):
    workers = max(1, PROCS - 1)
    print("processes: a generation of %d (a master and %d workers), %d connections held" % (PROCS, workers, PROCS))
    port = free_port()
    t0 = time.time()
    hr = Launcher([server, "--port", str(port), "--workers", str(workers)], OPTIONS)
    socks = []
    try:
        hr.wait_ready(1, timeout=120)
        t_up = forkhold_up(hr, workers, 0)
        print("  gen 1 started: every worker accepting %.0f ms after the launcher started" % ((t_up - t0) * 1000))
        socks, by_pid = hold(port, PROCS, batch=64)
        print("  %d connections held by %d processes" % (len(socks), len(by_pid)))
        since = hr.mark()
        c0 = cpu_ticks(hr.pid)
        t_hup = time.time()
        hr.signal(signal.SIGHUP)  # (in the launcher's log too, but to the ms only)
        _, gen, ready_ms = reload_line(hr, since)
        t_all = forkhold_up(hr, workers, since)
        c1 = cpu_ticks(hr.pid)
        reply_pid(http_get(port))
        print("  reload: gen %d ready in %d ms (handover); its %d workers all accepting %.0f ms after SIGHUP; "
              "launcher CPU %.0f ms" % (gen, ready_ms, workers, (t_all - t_hup) * 1000, cpu_ms(c1 - c0)))
        drain_and_measure(hr, socks, by_pid, gen - 1, "%d processes, %d connections" % (PROCS, len(socks)))
        socks = []
        rss, hwm = memory_kb(hr.pid)
        print("  launcher: RSS %d kB (peak %d kB), %d descriptors" % (rss, hwm, fds(hr.pid)))
        t2 = time.monotonic()
        hr.stop(300)
        print("  final stop of the %d processes of gen %d: launcher exited %.0f ms after SIGTERM"
              % (PROCS, gen, (time.monotonic() - t2) * 1000))
    finally:
        for s in socks:
            s.close()
        hr.cleanup()


def part_nginx():
    import nginx_wrk  # noqa: E402 (same directory)

    for tool, package in ((nginx_wrk.NGINX, "nginx-light"), ("wrk", "wrk")):
        if not shutil.which(tool):
            print("nginx: %s is not installed (apt-get install %s); skipping" % (tool, package))
            return
    work = tempfile.mkdtemp(prefix="hotrestart-scale-nginx-")
    os.chmod(work, 0o755)
    port = dual_stack_port()
    d, argv = nginx_wrk.render(work, port)
    print("nginx: %d reloads under wrk -t2 -c32 -H \"Connection: close\"" % NGINX_RELOADS)
    control = os.path.join(work, "control.sock")
    hr = Launcher(argv, ["--stop-signal", "QUIT", "--control", control] + OPTIONS, cwd=d)
    wrk = None
    try:
        hr.wait_ready(1)
        nginx_wrk.wait_answering(port)
        totals = {"requests": 0, "errors": 0, "non2xx": 0, "segments": 0}
        samples, ready = [], []

        def finish(w):
            out = w.communicate(timeout=60)[0]
            m = re.search(r"(\d+) requests in", out)
            totals["requests"] += int(m.group(1)) if m else 0
            e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
            totals["errors"] += sum(int(x) for x in e.groups()) if e else 0
            x = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            totals["non2xx"] += int(x.group(1)) if x else 0
            totals["segments"] += 1
            if not m:
                totals["errors"] += 1
                print("  wrk said: %r" % out[-300:])

        done = 0
        while done < NGINX_RELOADS:
            # Load in 5 s segments, reloads back to back while one runs: the load never waits for the reloads.
            wrk = subprocess.Popen(["wrk", "-t2", "-c32", "-d5s", "-H", "Connection: close",
                                    "http://127.0.0.1:%d/" % port], stdout=subprocess.PIPE, text=True)
            time.sleep(0.2)  # wrk's threads connect
            while wrk.poll() is None and done < NGINX_RELOADS:
                since = hr.mark()
                hr.signal(signal.SIGHUP)
                number, gen, ready_ms = reload_line(hr, since, timeout=60)
                hr.wait_for(r"gen %d gone$" % (gen - 1), since=since, timeout=60)
                done += 1
                ready.append(ready_ms)
                if done in (1, 10, 100) or done == NGINX_RELOADS:
                    rss, hwm = memory_kb(hr.pid)
                    status = json.loads(subprocess.run([os.path.join(BUILD, "hotrestart"), "status", "--json", "--control",
                                                        control], capture_output=True, text=True).stdout)
                    others = ", ".join("gen %d %s" % (g["generation"], g["state"]) for g in status["generations"])
                    samples.append((done, fds(hr.pid), rss, hwm, ready_ms, fd_kinds(hr.pid) + (
                        "; besides the serving one: " + others if others else "")))
            finish(wrk)
            wrk = None
        for n, f, rss, hwm, ms, kinds in samples:
            print("  after reload %3d: launcher %d descriptors (%s), RSS %d kB (peak %d kB); that reload ready in %d ms"
                  % (n, f, kinds, rss, hwm, ms))
        print("  ready in: %.0f ms median, %d ms max over %d reloads" % (statistics.median(ready), max(ready), len(ready)))
        print("  requests: %d in %d wrk runs, failed %d (socket errors %d, non-2xx %d)"
              % (totals["requests"], totals["segments"], totals["errors"] + totals["non2xx"], totals["errors"],
                 totals["non2xx"]))
        hr.stop(60)
    finally:
        if wrk is not None:
            wrk.kill()
            wrk.wait(10)
        hr.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def main():
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it comes, also through a pipe
    server = forkhold()
    print("scale (%s sizes; %d CPUs)" % ("small" if SMALL else "full", os.cpu_count()), flush=True)
    if "listeners" in PARTS:
        part_listeners(server)
    if "connections" in PARTS:
        part_connections(server)
    if "processes" in PARTS:
        part_processes(server)
    if "nginx" in PARTS:
        sys.path.insert(0, HERE)
        part_nginx()


if __name__ == "__main__":
    main()
