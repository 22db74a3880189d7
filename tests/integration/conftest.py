"""pytest fixtures over harness.py: every launcher and load a test starts is cleaned up after it.

Tests also use the project's pytest plugin (python/hotrestart, what users get): its fixtures are imported
here, and run the build under test."""
import os
import sys

import pytest

from harness import *  # noqa: F401,F403 (tests import helpers from conftest)
from harness import LAUNCHER, ROOT, SANITIZER_REPORT, Launcher, Load

sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ["HOTRESTART_LAUNCHER"] = LAUNCHER
from hotrestart.pytest_plugin import hotrestart_launch, hotrestart_port  # noqa: E402,F401 (fixtures)


@pytest.fixture(autouse=True)
def _plugin_sanitizer_reports(request):
    """Under `make sanitize`: a report from a launcher the plugin started fails the test too."""
    yield
    servers = getattr(request.node, "hotrestart_servers", [])
    reports = [(s.pid, [l for l in s.log.splitlines() if SANITIZER_REPORT.search(l)]) for s in servers]
    assert not any(r for _, r in reports), "sanitizer reports: %r" % reports


@pytest.fixture
def launch():
    """launch(argv, options=..., env=...) -> Launcher; all of them are cleaned up after the test."""
    started = []

    def start(argv, options=(), env=None, cwd=None):
        l = Launcher(argv, options, env=env, cwd=cwd)
        started.append(l)
        return l

    yield start
    for l in started:
        l.cleanup()
    # Shown by pytest only when the test failed: what each launcher logged, to set beside the failures.
    for l in started:
        print("---- launcher %d log ----\n%s" % (l.pid, l.log()))
    # Under `make sanitize`: a report from the launcher fails the test, whatever else it checked.
    reports = [(l.pid, l.sanitizer_reports()) for l in started]
    assert not any(r for _, r in reports), "sanitizer reports: %r" % reports


@pytest.fixture
def load():
    """load(port, ...) -> Load; every load is stopped after the test."""
    loads = []

    def start(*args, **kwargs):
        l = Load(*args, **kwargs)
        loads.append(l)
        return l

    yield start
    for l in loads:
        l.stop()


