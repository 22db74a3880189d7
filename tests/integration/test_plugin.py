"""The pytest plugin (python/hotrestart) itself: failures are reported with the reload they happened in,
a rolled-back reload raises, and whatever a test started is gone after it, even when it fails."""
import os
import subprocess
import textwrap

import pytest

from conftest import PYTHON, ROOT, TESTSERVER, group_alive, pid_alive, server_argv, write_mode
from hotrestart import ReloadFailed, assert_no_failures, http_get, load, reply_pid


def test_failures_are_attributed_to_their_reload(hotrestart_launch, hotrestart_port):
    """Slow requests in flight when the old generation gets its stop signal, from a server that resets its
    connections then (more clients than server threads: every thread is busy when the reload comes):
    assert_no_failures names each failed request and the reload it happened in."""
    port = hotrestart_port
    srv = hotrestart_launch([TESTSERVER, "--model", "threads", "--workers", "2", "--port", str(port), "--reset-on-stop"],
                            rollback_window=0, drain_timeout=0.05)
    with load(lambda: reply_pid(http_get(port, "/slow?ms=300")), clients=4) as ld:
        ld.wait(4)
        rep = srv.reload()
        ld.wait(4)
    assert rep["outcome"] == "ok" and rep["stopped_by"] == "SIGTERM", rep
    assert ld.failures and all(f.reload and f.reload[0] == 1 for f in ld.failures), ld.failures
    with pytest.raises(AssertionError) as e:
        assert_no_failures(ld)
    msg = str(e.value)
    assert msg.startswith("%d of %d requests failed:\n" % (len(ld.failures), ld.ok + len(ld.failures))), msg
    assert "during reload 1 (reload 1: gen 2 (pid %d) serving" % rep["pid"] in msg, msg
    assert "ConnectionResetError" in msg, msg


def test_rolled_back_reload_raises_and_nothing_is_lost(hotrestart_launch, hotrestart_port, tmp_path):
    port = hotrestart_port
    mode = tmp_path / "mode"
    write_mode(mode, "serve")
    srv = hotrestart_launch(server_argv("threads", port, extra=["--mode-file", str(mode)]), rollback_window=0.1)
    pid1 = srv.serving_pid
    with load(lambda: reply_pid(http_get(port)), clients=4) as ld:
        ld.wait(20)
        write_mode(mode, "exit1")
        with pytest.raises(ReloadFailed) as e:
            srv.reload()
        assert e.value.report["outcome"] == "rolled_back" and e.value.report["generation"] == 2
        assert "exit 1" in str(e.value) and "rolled back, gen 1 keeps serving" in str(e.value)
        rep = srv.reload(check=False)
        assert rep["outcome"] == "rolled_back" and rep["reload"] == 2
        ld.wait(20)
    assert_no_failures(ld)
    assert set(ld.values) == {pid1} and srv.serving_pid == pid1
    assert "gen 3 started (pid" in srv.log
    assert srv.stop() == 0


def test_teardown_stops_everything_when_a_test_fails(tmp_path):
    """A failing test (in a pytest of its own) leaves no launcher or generation behind."""
    port_file = tmp_path / "pids"
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        from hotrestart import free_port
        def test_fails(hotrestart_launch):
            port = free_port()
            srv = hotrestart_launch([%r, "--model", "prefork", "--port", str(port)], rollback_window=0.1)
            srv.reload()
            with open(%r, "w") as f:
                f.write(" ".join(str(p) for p in [srv.pid] + list(srv.gen_pids.values())))
            assert False, "the user's test fails"
    """ % (TESTSERVER, str(port_file))))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "hotrestart.pytest_plugin", "-p", "no:cacheprovider",
                        str(tmp_path / "test_user.py")], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path), timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 1 and "the user's test fails" in out and "1 failed" in out, out
    pids = [int(x) for x in port_file.read_text().split()]
    assert len(pids) == 3, pids  # the launcher, gen 1 and gen 2
    for pid in pids:
        assert not pid_alive(pid) and not group_alive(pid), "pid %d left running; pytest said:\n%s" % (pid, out)
