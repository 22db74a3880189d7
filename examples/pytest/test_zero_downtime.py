"""Zero-downtime tests for a server, with hotrestart's pytest plugin: copy this directory next to your own
tests and put your server's command line in SERVER.

    pytest examples/pytest            (hotrestart installed: its launcher on $PATH, the plugin in python3's path)

Everything a test starts is stopped by pid at its end, even when it fails; the port is the kernel's choice."""
import os
import sys

import pytest

from hotrestart import ReloadFailed, assert_no_failures, http_get, load, reply_pid

HERE = os.path.dirname(os.path.abspath(__file__))


def SERVER(port):
    """Your server's command line, listening on 127.0.0.1:port. Here: hotrestart's example HTTP server,
    whose replies name the process that served them ("pid=N")."""
    return [sys.executable, os.path.join(HERE, "..", "pyserver.py"), "--port", str(port)]


def test_reloads_lose_no_request(hotrestart_launch, hotrestart_port):
    port = hotrestart_port
    # Launcher options as keywords: --rollback-window 0.1 (a quicker report than the default 2 s).
    server = hotrestart_launch(SERVER(port), rollback_window=0.1)
    with load(lambda: reply_pid(http_get(port)), clients=8) as requests:
        requests.wait(20)
        for n in (1, 2, 3):
            report = server.reload()  # raises ReloadFailed if it was rolled back
            assert report["outcome"] == "ok" and report["generation"] == n + 1
            requests.wait(20)  # the new generation serves
    assert_no_failures(requests)
    # Every generation answered some of them (the replies name their process).
    assert {server.generation_of(pid) for pid in requests.values} == {1, 2, 3, 4}
    assert server.stop() == 0


def test_a_failed_release_is_rolled_back_without_losing_a_request(hotrestart_launch, hotrestart_port, tmp_path):
    port = hotrestart_port
    broken = tmp_path / "broken"
    # A check each new generation must pass before it replaces the old one (--ready-check).
    server = hotrestart_launch(SERVER(port), rollback_window=0.1, ready_check="test ! -e %s" % broken)
    first = server.serving_pid
    with load(lambda: reply_pid(http_get(port)), clients=4) as requests:
        requests.wait(10)
        broken.touch()
        with pytest.raises(ReloadFailed) as failed:
            server.reload()
        assert failed.value.report["outcome"] == "rolled_back"
        # Or look at the report yourself:
        assert server.reload(check=False)["outcome"] == "rolled_back"
        requests.wait(10)
    # No request failed (the failed generations may have answered some while on trial), and the first
    # generation serves again.
    assert_no_failures(requests)
    assert server.serving_pid == first
    assert server.status()["reloads"] == {"total": 2, "failed": 2}
