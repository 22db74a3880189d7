"""The shim preloaded into ordinary programs changes nothing, whatever HOTRESTART holds (absent, malformed,
well-formed but naming descriptors that are not what they claim, or meant for another process): same
stdout, same exit status, same stderr but for at most one warning line from the shim.

Also: the wrappers really interpose (LD_DEBUG=bindings), and the library exports nothing but the names of
the libc functions it wraps and does not drag the C++ runtime into every program."""
import os
import re
import subprocess

import pytest

from conftest import PYTHON, SHIM

# Every run goes through this wrapper, which sets LD_PRELOAD and HOTRESTART (either may be absent) and then
# execs the program: the program keeps the wrapper's pid, so "{pid}" in HOTRESTART can name the process that
# will read it. The wrapper itself runs without the shim.
WRAPPER = r"""
import os, sys
preload, hotrestart, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if preload != "-":
    os.environ["LD_PRELOAD"] = preload
if hotrestart != "<unset>":
    os.environ["HOTRESTART"] = hotrestart.replace("{pid}", str(os.getpid()))
os.execvp(argv[0], argv)
"""
UNSET = "<unset>"

SOCKET_PROGRAM = ("import socket,os; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); "
                  "c=socket.create_connection(s.getsockname()); a,_=s.accept(); a.sendall(b'x'); print(c.recv(1)); "
                  "os.close(os.dup(a.fileno())); print(os.get_blocking(s.fileno()))")
FORK_PROGRAM = ("import os, sys\n"
                "pid = os.fork()\n"
                "if pid == 0:\n"
                "    os.closerange(3, 1025)\n"
                "    os._exit(7)\n"
                "_, st = os.waitpid(pid, 0)\n"
                "os.closerange(3, 1025)\n"
                "print('child', os.waitstatus_to_exitcode(st))\n"
                "sys.stdout.flush()\n")

PROGRAMS = {
    "ls": ["ls", "-la", "/"],
    "sh": ["sh", "-c", "echo hi; echo err >&2; exit 3"],
    "python-sockets": [PYTHON, "-c", SOCKET_PROGRAM],
    "python-fork-closerange": [PYTHON, "-c", FORK_PROGRAM],
}

HOTRESTART_VALUES = {
    "garbage": "garbage",
    "empty": "",
    "v1-only": "v1;",
    "v2": "v2;ctl=5",
    "wellformed-main-1": "v1;ctl=5;wake=6;shm=7;gen=1;main=1;launcher=1;verbose=0;fds=",
    "wellformed-main-self": "v1;ctl=5;wake=6;shm=7;gen=1;main={pid};launcher=1;verbose=0;fds=",
    "wellformed-main-self-bad-fds": "v1;ctl=999;wake=998;shm=997;gen=1;main={pid};launcher=1;verbose=0;fds=996",
}

VARIANTS = {"preload-no-hotrestart": UNSET}
VARIANTS.update({"hotrestart-" + k: v for k, v in HOTRESTART_VALUES.items()})


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HOTRESTART") and not k.startswith("LD_")}
    env["LC_ALL"] = "C"
    return env


def run(argv, preload="-", hotrestart=UNSET):
    p = subprocess.run([PYTHON, "-c", WRAPPER, preload, hotrestart] + argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), timeout=30)
    out = p.stdout
    if argv[0] == "ls":
        out = mask_volatile_ls(out)
    return p.returncode, out, p.stderr.decode(errors="replace").splitlines()


def mask_volatile_ls(out):
    """In `ls -la /`, /proc's link count is the number of processes and /tmp's changes as other programs
    create directories in it: those two columns (and their times) change from one run to the next whatever
    the shim does (and with them the column widths, so runs of blanks count as one). Everything else is
    compared as is."""
    lines = []
    for line in out.split(b"\n"):
        fields = line.split()
        if len(fields) >= 9 and fields[-1] in (b"proc", b"tmp"):
            fields[1] = b"<n>"
            fields[5:8] = [b"<time>"]
        lines.append(b" ".join(fields))
    return b"\n".join(lines)


def shim_lines(lines):
    return [l for l in lines if l.startswith("hotrestart-shim[")]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("program", list(PROGRAMS))
def test_shim_changes_nothing_in_ordinary_programs(program, variant):
    argv = PROGRAMS[program]
    hotrestart = VARIANTS[variant]
    # Each run with the shim is paired with a reference run without it. `ls -la /` shows times that other
    # processes may change between the two (e.g. /tmp's), so a differing pair is taken again (3 times at
    # most): a difference the shim makes shows up every time.
    for _ in range(3):
        status, out, err = run(argv, preload=SHIM, hotrestart=hotrestart)
        ref_status, ref_out, ref_err = run(argv)
        if (ref_status, ref_out) == (status, out):
            break
    assert ref_status == status, "exit status %d with the shim, %d without; stderr: %r" % (status, ref_status, err)
    assert out == ref_out, "stdout differs:\nwithout the shim: %r\nwith it:          %r" % (ref_out[:500], out[:500])

    extra = shim_lines(err)
    if hotrestart == UNSET:
        assert err == ref_err, "stderr differs with LD_PRELOAD and no HOTRESTART:\n%r\n%r" % (ref_err, err)
    else:
        assert len(extra) <= 1, "more than one line from the shim: %r" % extra
        for line in extra:
            assert "warning" in line, "shim line is not a warning: %r" % line
        assert [l for l in err if l not in extra] == ref_err, "stderr differs:\nwithout the shim: %r\nwith it: %r" % (
            ref_err, err)
    # The warning (if any) names the process that wrote it.
    for line in extra:
        assert re.match(r"hotrestart-shim\[\d+\]: warning: ", line), line


# --------------------------------------------------------------------------------------------------------


SOCKET_SYMBOLS = ["accept4", "accept", "bind", "listen", "close"]


def test_wrappers_interpose_for_python():
    """Python's own calls of the socket functions bind to the shim, not to libc. LD_BIND_NOW makes the
    dynamic linker resolve every symbol python references at start-up (otherwise only the ones it happens to
    call appear, lazily)."""
    env = clean_env()
    env.update(LD_DEBUG="bindings", LD_BIND_NOW="1", LD_PRELOAD=SHIM)
    p = subprocess.run([PYTHON, "-c", "import socket"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    shim_real = os.path.realpath(SHIM)
    bound = {}  # symbol -> set of libraries python's references bind to
    rx = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([^']+)'")
    for line in p.stderr.decode(errors="replace").splitlines():
        m = rx.search(line)
        if not m:
            continue
        src, dst, sym = m.groups()
        if sym not in SOCKET_SYMBOLS or not re.search(r"python|libpython", os.path.basename(src)):
            continue
        bound.setdefault(sym, set()).add(os.path.realpath(dst))
    for sym in ("bind", "listen", "accept4", "close"):
        assert sym in bound, "no binding of python's %s in LD_DEBUG output (found %r)" % (sym, sorted(bound))
    for sym, targets in bound.items():
        assert targets == {shim_real}, "python's %s binds to %r, not to the shim" % (sym, sorted(targets))


def _libc_path():
    out = subprocess.run(["ldd", SHIM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30).stdout.decode()
    m = re.search(r"libc\.so\.6 => (\S+)", out)
    assert m, "the shim does not link libc.so.6?\n" + out
    return m.group(1)


def _dynamic_symbols(path, *extra):
    p = subprocess.run(["nm", "-D", "--defined-only"] + list(extra) + [path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    syms = []
    for line in p.stdout.decode().splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            syms.append(parts[2].split("@")[0])
    return syms


def test_shim_exports_only_wrappers():
    syms = _dynamic_symbols(SHIM)
    assert syms, "the shim exports nothing"
    mangled = [s for s in syms if s.startswith("_Z")]
    assert mangled == [], "C++ symbols exported: %r" % mangled
    demangled = _dynamic_symbols(SHIM, "-C")
    internal = [s for s in demangled if "hr::" in s or "::" in s]
    assert internal == [], "internal symbols exported: %r" % internal
    # A wrapper has the name of the libc function it wraps.
    libc = set(_dynamic_symbols(_libc_path()))
    not_wrappers = sorted(set(syms) - libc)
    assert not_wrappers == [], "exported names that are not libc functions: %r" % not_wrappers
    for wrapper in ("bind", "listen", "accept", "accept4", "close"):
        assert wrapper in syms, "%s is not exported" % wrapper


def test_shim_does_not_need_libstdcxx():
    p = subprocess.run(["readelf", "-d", SHIM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout.decode())
    assert needed, "no NEEDED entries?\n" + p.stdout.decode()
    assert not [n for n in needed if "stdc++" in n], "the shim needs the C++ runtime: %r" % needed
