"""pytest plugin: `pytest -p hotrestart.pytest_plugin`, or `pytest_plugins = ["hotrestart.pytest_plugin"]` in a
conftest.py.

Fixtures:
    hotrestart_launch(argv, **options) -> hotrestart.Server
        starts argv under the launcher (options as keywords: rollback_window=0.1 is --rollback-window 0.1)
        and waits until it serves. Everything it started is killed by pid and process group at teardown,
        even when the test failed.
    hotrestart_port -> int
        a TCP port free on 127.0.0.1 when the test starts (the kernel's choice).

Helpers (import them from hotrestart): load(request, clients=8), assert_no_failures(load), http_get(port,
path), reply_pid(body), free_port().

Option: --hotrestart-launcher PATH (default: $HOTRESTART_LAUNCHER, else hotrestart on $PATH).
"""
import os

import pytest

import hotrestart


def pytest_addoption(parser):
    parser.addoption("--hotrestart-launcher", default=None, metavar="PATH",
                     help="the hotrestart launcher the hotrestart_launch fixture runs "
                          "(default: $HOTRESTART_LAUNCHER, else hotrestart on $PATH)")


@pytest.fixture
def hotrestart_launch(request):
    """hotrestart_launch(argv, wait=True, timeout=30, env=None, cwd=None, **launcher_options) -> Server."""
    launcher = request.config.getoption("--hotrestart-launcher", default=None) or None
    started = []
    request.node.hotrestart_servers = started

    def start(argv, **kwargs):
        kwargs.setdefault("launcher", launcher)
        server = hotrestart.Server(argv, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def hotrestart_port():
    """A TCP port free on 127.0.0.1 right now."""
    return hotrestart.free_port()
