"""`hotrestart verify`: the tool users run in their CI to prove their server reloads without losing a
connection. It must pass a server that loses nothing, fail one that resets connections during reloads (and
say during which reload), and keep its counts consistent."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import LAUNCHER, PYTHON, ROOT, TESTSERVER, free_port, processes_naming
from test_real_servers import NGINX, need, nginx_argv, nginx_config

SERVERS = os.path.join(ROOT, "tests", "integration", "servers")


def verify(*args, timeout=60):
    """Runs `hotrestart verify ARGS`; returns (exit status, stdout, stderr)."""
    p = subprocess.run([LAUNCHER, "verify"] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def verify_json(*args, timeout=60):
    rc, out, err = verify("--json", *args, timeout=timeout)
    assert out.count("\n") == 1, "not one JSON line (exit %d): %r %s" % (rc, out, err)
    return rc, json.loads(out), err


def assert_consistent(v, reloads):
    """What a verify report must add up to, whatever happened."""
    f = v["failures"]
    assert f["total"] == f["refused"] + f["reset"] + f["timeout"] + f["bad_reply"]
    assert v["requests"] == v["succeeded"] + f["total"]
    assert f["total"] == f["outside_reloads"] + sum(r["failures"] for r in v["reloads"])
    lat = v["latency_ms"]
    assert lat["during_reloads"]["requests"] + lat["outside_reloads"]["requests"] == v["succeeded"]
    assert sum(v["generations"].values()) + v["replies_from_other_processes"] + v["replies_without_pid"] == \
        v["succeeded"]
    assert [r["reload"] for r in v["reloads"]] == list(range(1, reloads + 1))
    assert len(v["failed_requests"]) == min(f["total"], 100)
    assert v["ok"] == (f["total"] == 0 and all(r["completed"] for r in v["reloads"]))


@pytest.mark.parametrize("model,host", [("epoll", "127.0.0.1"), ("threads", "::1")])
def test_verify_passes_a_server_that_loses_nothing(model, host):
    port = free_port()
    rc, v, err = verify_json("--reloads", 3, "--clients", 4, "--rollback-window", "0", "--",
                             TESTSERVER, "--model", model, "--host", host, "--port", port)
    assert rc == 0, (v, err)
    assert_consistent(v, 3)
    assert v["ok"] and v["failures"]["total"] == 0 and v["exit_status"] == 0
    # --connect defaulted to what the program listened on; every generation answered.
    assert v["connect"] == ["%s:%d" % ("[::1]" if ":" in host else host, port)]
    assert sorted(v["generations"]) == ["1", "2", "3", "4"] and v["replies_from_other_processes"] == 0
    for i, r in enumerate(v["reloads"], 1):
        rep = r["report"]
        assert r["completed"] and rep["outcome"] == "ok" and rep["generation"] == i + 1, r
        assert rep["drain_ms"] is not None, "the report is the final one, with its drain: %r" % rep
    assert v["latency_ms"]["outside_reloads"]["requests"] > 0 and v["latency_ms"]["during_reloads"]["requests"] > 0
    assert not processes_naming(TESTSERVER), "verify left a process behind"


@pytest.mark.parametrize("reset", [True, False], ids=["reset-on-stop", "graceful"])
def test_verify_fails_resets_and_names_the_reload(reset):
    """Slow requests are in flight when the old generation gets its stop signal (the drain timeout is shorter
    than they are; more clients than the server has threads keep every thread busy). A server that resets
    them fails verify, every failure attributed to the reload it happened in; without --reset-on-stop the
    server exits closing them without a reply: a bad reply, still a failure."""
    port = free_port()
    extra = ["--reset-on-stop"] if reset else []
    rc, v, err = verify_json("--reloads", 2, "--clients", 4, "--probe", "http:/slow?ms=200", "--rollback-window", "0",
                             "--drain-timeout", "0.05", "--", TESTSERVER, "--model", "threads", "--workers", 2,
                             "--port", port, *extra)
    assert rc == 1, (v, err)
    assert_consistent(v, 2)
    assert not v["ok"] and v["failures"]["outside_reloads"] == 0, v
    kind = "reset" if reset else "bad_reply"
    assert v["failures"][kind] == v["failures"]["total"] > 0, v["failures"]
    assert all(r["failures"] > 0 and r["completed"] for r in v["reloads"]), v["reloads"]
    for f in v["failed_requests"]:
        assert f["kind"] == kind and f["reload"] in (1, 2), f
        r = v["reloads"][f["reload"] - 1]
        assert f["started_at_s"] <= r["started_at_s"] + r["window_s"] and f["at_s"] >= r["started_at_s"], (f, r)
    assert "the launcher's last log lines" in err and "drain timeout" in err, err


def test_verify_passes_the_same_server_with_time_to_drain():
    """The control for the test above: the same slow requests and the same server, with the default drain,
    lose nothing (verify fails the server, not the slow requests)."""
    port = free_port()
    rc, out, err = verify("--reloads", 1, "--clients", 4, "--probe", "http:/slow?ms=200", "--rollback-window", "0",
                          "--", TESTSERVER, "--model", "threads", "--workers", 2, "--port", port, "--reset-on-stop")
    assert rc == 0, out + err
    assert out.startswith("hotrestart verify: PASS: 1 of 1 reloads completed, "), out
    assert "failures: refused 0, reset 0, timeout 0, bad reply 0\n" in out, out
    assert "\nreload 1: gen 2 (pid " in out and "stopped: the launcher exited with status 0\n" in out, out


def test_verify_nginx():
    need(NGINX, "nginx-light")
    d = tempfile.mkdtemp(prefix="hotrestart-verify-")
    os.chmod(d, 0o755)
    try:
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_config(d, port))
        rc, v, err = verify_json("--reloads", 2, "--clients", 4, "--rollback-window", "0.1", "--",
                                 *nginx_argv(d, conf), timeout=90)
        assert rc == 0, (v, err)
        assert_consistent(v, 2)
        # Both listeners are probed (the second one at least once gen 2 took over both: gen 1 counts as
        # ready once it listens on one); the replies name nginx workers, found in their generation's group.
        assert sorted(v["connect"]) == sorted(["127.0.0.1:%d" % port, "[::1]:%d" % port]), v["connect"]
        assert sorted(v["generations"]) == ["1", "2", "3"], v
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("probe,argv", [
    ("tcp", lambda port: [TESTSERVER, "--port", port]),
    ("line:hello", lambda port: [PYTHON, os.path.join(SERVERS, "lineecho.py"), port]),
])
def test_verify_tcp_and_line_probes(probe, argv):
    port = free_port()
    rc, v, err = verify_json("--reloads", 1, "--clients", 2, "--probe", probe, "--connect", "127.0.0.1:%d" % port,
                             "--rollback-window", "0.1", "--", *argv(str(port)))
    assert rc == 0, (v, err)
    assert_consistent(v, 1)
    if probe == "tcp":
        assert v["replies_without_pid"] == v["succeeded"]  # nothing to read: no generation shown
    else:
        assert sorted(v["generations"]) == ["1", "2"], v


@pytest.mark.parametrize("args,message", [
    (["--reloads", "x", "--", "/bin/true"], "invalid --reloads 'x': expected 0 to 10000"),
    (["--clients", "0", "--", "/bin/true"], "invalid --clients '0': expected 1 to 1000"),
    (["--probe", "udp", "--", "/bin/true"], "invalid --probe 'udp': expected http, http:/PATH, tcp or line:TEXT"),
    (["--connect", "nowhere", "--", "/bin/true"], "invalid --connect 'nowhere': HOST:PORT, [V6]:PORT or unix:PATH"),
    (["--reloads", "1"], "no PROGRAM: put it after --"),
    (["--drain-timeout", "-1", "--", "/bin/true"], "invalid --drain-timeout"),
])
def test_verify_usage_errors(args, message):
    rc, out, err = verify(*args)
    assert rc == 125 and out == "", (rc, out, err)
    assert err.startswith("hotrestart verify: " + message), err
    assert "usage: hotrestart verify" in err


def test_verify_program_that_never_serves():
    rc, out, err = verify("--reloads", "1", "--", "/bin/sh", "-c", "echo broken config >&2; exit 3")
    assert rc == 125 and out == "", (rc, out, err)
    assert err.startswith("hotrestart verify: the launcher exited with status 3 before /bin/sh served\n"), err
    assert "broken config" in err, err


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_verify_unix_socket(abstract, tmp_path):
    """--connect defaults to a unix socket too (a path or an abstract name); the server writes its pid and
    closes, which the tcp probe reads up to the orderly close."""
    path = "@hotrestart-verify-%d" % os.getpid() if abstract else str(tmp_path / "s.sock")
    rc, v, err = verify_json("--reloads", 1, "--clients", 2, "--probe", "tcp", "--rollback-window", "0", "--",
                             PYTHON, os.path.join(SERVERS, "unixserver.py"), "--path", path)
    assert rc == 0, (v, err)
    assert_consistent(v, 1)
    assert v["connect"] == ["unix:" + path]
    assert sorted(v["generations"]) == ["1", "2"], v


def test_verify_help():
    rc, out, err = verify("--help")
    assert rc == 0 and err == "" and out.startswith("usage: hotrestart verify [--reloads N]"), (rc, out, err)
