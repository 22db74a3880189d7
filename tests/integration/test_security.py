"""What a program (or a local user) must not be able to make the launcher do: believe a record on the control
socket that a process outside the generation, or a process other than its main one, forged; hold descriptors
without bound; write lines into the launcher's log; overwrite a file through the pid file; unlink a socket
file that is not the program's.

Every wait is on an event (a launcher log line, a process disappearing) with a deadline; processes are
killed by the fixtures (and the forging children, which may have left the generation, by pid here)."""
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile

import pytest

from conftest import LAUNCHER, PYTHON, free_port, http_get, line_time, server_argv, socket_fds

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")
MAX_PER_GENERATION = 1024  # kMaxPerGeneration, launcher/registry.h
WARNINGS_SHOWN = 5       # WarnLimit::kShown, launcher/ctlmsg.h


def py(name, *args):
    return [PYTHON, os.path.join(SERVERS, name)] + [str(a) for a in args]


def kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def launcher_lines(log):
    """The launcher's own lines (its programs write to the same stderr)."""
    return [l for l in log.splitlines() if re.match(r"^\S+Z hotrestart\[\d+\]: ", l)]


def make_socket_file(path):
    """A socket file at path that nobody listens on (what a server leaves behind)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def is_socket_file(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------------------------------------
# A. records are authenticated by the kernel


def test_forged_hello_from_a_member_is_rejected_and_logs_name_the_real_sender(launch):
    """A child of the server (same process group) writes MSG_HELLO on the inherited control socket, then a
    MSG_BINDFAIL claiming pid 1: the hello is rejected (only the main process says hello), the bind
    failure (a record any member may send) is logged with the pid the kernel gives, not the one written."""
    port = free_port()
    hr = launch(py("forger.py", "--port", port, "--forge", "member"))
    main = hr.wait_ready(1)
    child = int(hr.wait_for(r"forger: member pid=(\d+) ", since=0).group(1))
    assert child != main
    try:
        hr.wait_for(r"warning: gen 1: rejected a message from pid %d: hello from a process other than the main "
                    r"one$" % child, since=0)
        hr.wait_for(r"gen 1 \(pid %d\): bind unix:/nonexistent/forged failed" % child, since=0)
        assert "(pid 1)" not in hr.log(), hr.log()
        assert len(re.findall(r"rejected a message", hr.log())) == 1, hr.log()
        assert hr.stop() == 0
    finally:
        kill_pid(child)
    hr.assert_no_process_left()


def test_record_from_outside_the_generation_is_rejected(launch):
    """A child that left the process group (setsid) sends MSG_HELLO and MSG_REGISTER of a listening socket
    (then closes its own copy): both are rejected, and the launcher does not keep the socket (nobody
    listens on its port once the child's copy is gone)."""
    port = free_port()
    hr = launch(py("forger.py", "--port", port, "--forge", "outsider"))
    hr.wait_ready(1)
    m = hr.wait_for(r"forger: outsider pid=(\d+) port=(\d+) sent", since=0)
    child, forged_port = int(m.group(1)), int(m.group(2))
    try:
        rejected = r"warning: gen 1: rejected a message from pid %d: the sender is not a process of this " \
                   r"generation$" % child
        hr.wait_for(rejected, since=0)
        hr.wait_for(rejected)  # the second one, after the first
        assert "listening on 127.0.0.1:%d" % forged_port not in hr.log(), hr.log()
        with socket.socket() as s:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("127.0.0.1", forged_port))
        assert hr.stop() == 0
    finally:
        kill_pid(child)
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# B. the registry is bounded


def test_registration_flood_is_bounded(launch):
    """A program listening on 1,100 sockets: the launcher keeps the first 1,024, closes every other descriptor
    it receives at once, and logs 5 warnings then only counts (the count comes out when the generation ends)."""
    count = 1100
    port = free_port()
    hr = launch(py("manylisteners.py", "--port", port, "--count", count))
    hr.wait_ready(1)
    hr.wait_for(r"gen 1 \(pid \d+\): bind unix:/nonexistent/manylisteners-done failed", since=0, timeout=30)
    log = hr.log()
    assert len(re.findall(r"gen 1 listening on ", log)) == MAX_PER_GENERATION, log
    refused = re.findall(r"warning: gen 1: refused a socket from pid \d+: this generation registered as many "
                         r"sockets as it may", log)
    assert len(refused) == WARNINGS_SHOWN, log
    assert "only counted" in log
    # The 1,024 kept, both ends of its control socket (the launcher keeps the generation's end for the
    # rendezvous), the rendezvous (and one to spare): nothing of the other 77.
    assert socket_fds(hr.pid) <= MAX_PER_GENERATION + 4, os.listdir("/proc/%d/fd" % hr.pid)
    assert hr.stop() == 0
    hr.wait_for(r"warning: gen 1: %d more warnings not logged" % (count + 1 - MAX_PER_GENERATION - WARNINGS_SHOWN),
                since=0)
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# C. what a program chose cannot forge a log line


def test_unix_path_with_a_newline_cannot_forge_a_log_line(launch):
    """The server binds a unix path holding a newline and a fake log line: the launcher's lines that
    name the socket escape it, and no line of the log begins with the forged text."""
    d = tempfile.mkdtemp(prefix="hr", dir="/tmp")
    forged = "hotrestart[1]: gen 9 ready in 1 ms"
    path = os.path.join(d, "s\n" + forged)
    try:
        hr = launch(py("unixserver.py", "--path", path, "--quiet"))
        hr.wait_ready(1)
        hr.wait_for(r"gen 1 listening on unix:%s" % re.escape(os.path.join(d, "s") + "\\x0a" + forged), since=0)
        assert hr.stop() == 0
        log = hr.log()
        assert not any(l.startswith(forged) for l in log.splitlines()), log
        for line in launcher_lines(log):
            line_time(line)
        hr.assert_no_process_left()
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


def test_program_name_with_a_newline_cannot_forge_a_log_line(tmp_path):
    forged = "hotrestart[1]: gen 9 ready in 1 ms"
    p = subprocess.run([LAUNCHER, "--", "/nonexistent/prog\n" + forged], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 127, err
    assert "unable to execute '/nonexistent/prog\\x0a%s'" % forged in err, err
    assert not any(l.startswith(forged) for l in err.splitlines()), err


# --------------------------------------------------------------------------------------------------------
# D. the pid file cannot be turned against another file


def _next_pids(n):
    """The n pids the kernel hands out next (in order, wrapping at pid_max), as far as can be told now."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    p = subprocess.Popen(["true"])
    p.wait()
    pids, pid = [], p.pid
    for _ in range(n):
        pid = pid + 1 if pid < pid_max - 1 else 301
        pids.append(pid)
    return pids


def test_pid_file_is_not_written_through_planted_symlinks(launch, tmp_path):
    """A local user who can write the pid file's directory plants symlinks to a victim file under every
    temporary name a predictable scheme would use (PIDFILE.tmp.<pid> for the next pids), and makes the pid
    file itself a symlink: the victim is unchanged, the pid file holds the launcher's pid."""
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(str(victim), 0o600)
    pid_file = run / "hr.pid"
    os.symlink(str(victim), str(pid_file))
    planted = set(_next_pids(2000))
    for pid in planted:
        os.symlink(str(victim), str(run / ("hr.pid.tmp.%d" % pid)))
    port = free_port()
    hr = launch(server_argv("threads", port), options=["--pid-file", str(pid_file)])
    hr.wait_ready(1)
    assert hr.pid in planted, "the launcher's pid %d was not foreseen: the test proves nothing" % hr.pid
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(str(pid_file))
    assert pid_file.read_text() == "%d\n" % hr.pid
    assert hr.stop() == 0
    assert victim.read_text() == "precious\n"
    assert not os.path.lexists(str(pid_file))
    left = [n for n in os.listdir(str(run)) if not os.path.islink(str(run / n))]
    assert left == [], "leftovers: %r" % left
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# E. only the program's own socket file is removed


def test_relative_unix_path_is_removed_where_it_was_bound(launch, tmp_path):
    """The server chdir()s and binds "rel.sock": at the stop the launcher removes that file, and not the
    unrelated socket file of the same name in its own working directory."""
    here = tmp_path / "launcher-cwd"
    there = tmp_path / "server-cwd"
    here.mkdir()
    there.mkdir()
    make_socket_file(str(here / "rel.sock"))
    hr = launch(py("unixserver.py", "--path", "rel.sock", "--chdir", str(there)), cwd=str(here))
    hr.wait_ready(1)
    hr.wait_for(r"gen 1 listening on unix:rel\.sock$", since=0)
    assert is_socket_file(str(there / "rel.sock"))
    assert hr.stop() == 0
    assert is_socket_file(str(here / "rel.sock")), "the launcher removed a socket file that was not the program's"
    assert not os.path.lexists(str(there / "rel.sock")), "the program's socket file outlives the launcher"
    hr.assert_no_process_left()


def test_unix_path_through_a_swapped_directory_symlink_is_not_followed(launch, tmp_path):
    """The server binds through a directory symlink; before the stop, the symlink is pointed at another
    directory holding a socket file of the same name: that one survives, the server's own file is removed."""
    real = tmp_path / "real"
    other = tmp_path / "other"
    real.mkdir()
    other.mkdir()
    link = tmp_path / "link"
    os.symlink(str(real), str(link))
    make_socket_file(str(other / "s.sock"))
    path = str(link / "s.sock")
    hr = launch(py("unixserver.py", "--path", path))
    hr.wait_ready(1)
    assert is_socket_file(str(real / "s.sock"))
    os.unlink(str(link))
    os.symlink(str(other), str(link))
    assert hr.stop() == 0
    assert is_socket_file(str(other / "s.sock")), "the launcher followed a directory symlink it did not bind through"
    assert not os.path.lexists(str(real / "s.sock")), "the program's socket file outlives the launcher"
    hr.assert_no_process_left()


# --------------------------------------------------------------------------------------------------------
# F. nothing of the launcher crosses an exec: the private descriptors come from the rendezvous, to the
#    generation's main process only


FDREPORT = os.path.join(os.path.dirname(LAUNCHER), "fdreport-static")


def inherited_by_child(hr):
    """What the child of build/fdreport-static reported: {fd: target}, [NAME=VALUE]."""
    assert os.path.exists(FDREPORT), "%s is missing: run `make integration` (or make %s)" % (FDREPORT, FDREPORT)
    hr.wait_for(r"^fdreport: done pid=\d+$", since=0)
    lines = hr.log().splitlines()
    fds = {int(m.group(1)): m.group(2) for m in (re.match(r"^fdreport: fd (\d+) (.*)$", l) for l in lines) if m}
    env = [l[len("fdreport: env "):] for l in lines if l.startswith("fdreport: env ")]
    assert fds, hr.log()
    return fds, env


def assert_nothing_of_ours(fds, env, given=()):
    # Apart from the sockets given to it by convention (descriptors `given`), any socket is a private one of
    # the launcher.
    ours = {fd: t for fd, t in fds.items()
            if fd not in given and (t.startswith("socket:") or t == "anon_inode:[eventfd]" or "memfd:" in t)}
    assert ours == {}, "the child of a program without the shim holds descriptors of hotrestart: %r" % ours
    # The launcher's own variables; those the test's environment has (the plugin's HOTRESTART_LAUNCHER) and
    # the documented ones for the program (HOTRESTART_GENERATION) are the user's, passed on like any other.
    user = set(os.environ) | {"HOTRESTART_GENERATION"}
    assert [v for v in env if v.startswith("HOTRESTART") and v.split("=", 1)[0] not in user] == [], env


def test_static_server_and_its_children_get_nothing_of_the_launcher(launch):
    """A static server (the shim never runs in it) forks a child that lists its descriptors and environment:
    no control socket, eventfd or shared memory of the launcher, no HOTRESTART variable."""
    # Such a program is started only with what it needs instead of the shim (sockets by convention, a
    # readiness it can give): the socket at descriptor 3 is its own, nothing else is ours.
    hr = launch([FDREPORT], options=["--ready", "0.2", "--listen", "127.0.0.1:%d" % free_port()])
    fds, env = inherited_by_child(hr)
    assert_nothing_of_ours(fds, env, given=(3,))
    assert [v for v in env if v.startswith("LD_PRELOAD=") and "libhotrestart" in v] == [], env
    hr.stop()
    hr.assert_no_process_left()


@pytest.mark.parametrize("via", ["execve", "execvp"])
def test_static_program_execd_by_the_main_process_gets_nothing_of_the_launcher(launch, tmp_path, via):
    """The main process runs the shim (sh, or env: execvp with a PATH search), fetches the private
    descriptors at the rendezvous, then execs a static program: that program's child holds none of them,
    has no LD_PRELOAD of the shim and no HOTRESTART variable (--instance-lock sets one for the shim)."""
    if via == "execve":
        argv = ["/bin/sh", "-c", "exec " + FDREPORT]
    else:
        argv = ["/usr/bin/env", "PATH=%s:/usr/bin:/bin" % os.path.dirname(FDREPORT), os.path.basename(FDREPORT)]
    hr = launch(argv, options=["-v", "--instance-lock", str(tmp_path / "lock")])
    main = int(hr.wait_for(r"gen 1 started \(pid (\d+)\)", since=0).group(1))
    hr.wait_for(r"gen 1: private descriptors handed to pid %d$" % main, since=0)
    fds, env = inherited_by_child(hr)
    assert_nothing_of_ours(fds, env)
    assert [v for v in env if v.startswith("LD_PRELOAD=") and "libhotrestart" in v] == [], env
    hr.stop()
    hr.assert_no_process_left()


def rendezvous_address(launcher_pid):
    return "\0hotrestart/%d/rendezvous" % launcher_pid


def test_rendezvous_refuses_anyone_but_the_main_process(launch):
    """A local process that connects to the launcher's rendezvous gets the connection closed, without a
    descriptor (5 warnings, then only counted); the generation keeps serving and a reload still works (its
    new main process does get its descriptors)."""
    port = free_port()
    hr = launch(server_argv("python", port))
    hr.wait_ready(1)
    for _ in range(WARNINGS_SHOWN + 3):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(10)
            s.connect(rendezvous_address(hr.pid))
            data, ancdata, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16))
            assert (data, ancdata) == (b"", []), "the rendezvous answered a stranger: %r %r" % (data, ancdata)
    hr.wait_for(r"warning: refused the private descriptors to pid %d at the rendezvous: it is not the main "
                r"process of a generation \(more refusals in the next minute are only counted\)$" % os.getpid(),
                since=0)
    assert len(re.findall(r"refused the private descriptors", hr.log())) == WARNINGS_SHOWN, hr.log()
    assert "pid=" in http_get(port, "/")
    hr.reload()  # gen 2 is ready: its shim reported in, with what it fetched at the rendezvous
    assert "pid=" in http_get(port, "/")
    assert hr.stop() == 0
    hr.assert_no_process_left()


SQUATTER = r"""
import os, socket, sys
# Binds the name the launcher about to run here (same pid: exec) will want, and keeps it across the exec.
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\0hotrestart/%d/rendezvous" % os.getpid())
s.listen()
os.set_inheritable(s.fileno(), True)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_rendezvous_name_taken_is_a_clear_start_error():
    """Anyone can bind an abstract name: if the launcher's is taken, it starts nothing and says so in one
    line (exit 125); the squatter gets nothing."""
    p = subprocess.run([PYTHON, "-c", SQUATTER, LAUNCHER, "--", "/bin/sh", "-c", "echo ran >&2"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 125, err
    assert re.search(r"hotrestart\[(\d+)\]: fatal: the rendezvous name @hotrestart/\1/rendezvous is taken by another "
                     r"process", err), err
    assert "ran" not in err and len(launcher_lines(err)) == 1, err
