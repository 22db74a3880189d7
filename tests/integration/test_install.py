"""make install and the launcher's search for its shim: what an installed launcher looks for, and where.

The build is copied (timestamps kept) so that the repository's own build/ is left as it is; make then works
on the copy exactly as it would on build/ after a plain `make`."""
import os
import shutil
import subprocess

from conftest import BUILD, ROOT


def make(*args, timeout=300):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    assert p.returncode == 0, p.stdout.decode(errors="replace")
    return p.stdout.decode(errors="replace")


def run(argv, timeout=30):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_install_with_another_prefix_after_make(tmp_path):
    build = tmp_path / "build"
    shutil.copytree(BUILD, str(build), symlinks=True)  # copy2: modification times kept
    root = tmp_path / "root"
    make("install", "BUILD=%s" % build, "PREFIX=/usr", "DESTDIR=%s" % root)
    installed = root / "usr" / "bin" / "hotrestart"
    shim = root / "usr" / "lib" / "hotrestart" / "libhotrestart.so"
    assert installed.exists() and shim.exists()

    # It was rebuilt for /usr: its default shim location is /usr/lib/hotrestart, not /usr/local.
    rc, out, _ = run([str(installed), "--help"])
    assert rc == 0 and "then in /usr/lib/hotrestart)" in out and "/usr/local" not in out, out

    # Installed under DESTDIR, it finds its shim as ../lib/hotrestart/ from its own directory: that is the
    # library loaded into the program (the shim takes itself out of LD_PRELOAD once active, so ask the maps).
    rc, _, err = run([str(installed), "-v", "--", "/bin/sh", "-c",
                      'echo "preload=$(grep -m1 -o "/[^ ]*/libhotrestart.so" /proc/$$/maps)" >&2; exit 3'])
    assert rc == 3, err
    assert "preload=%s\n" % shim in err and "shim active in pid" in err, err

    # Alone, it names every place it looked, /usr/lib/hotrestart among them, and runs nothing.
    alone = tmp_path / "alone" / "bin" / "hotrestart"
    alone.parent.mkdir(parents=True)
    shutil.copy2(str(installed), str(alone))
    rc, _, err = run([str(alone), "--", "/bin/sh", "-c", "echo ran >&2"])
    tried = [str(alone.parent / "libhotrestart.so"), str(tmp_path / "alone" / "lib" / "hotrestart" / "libhotrestart.so"),
             "/usr/lib/hotrestart/libhotrestart.so"]
    assert rc == 125 and err.strip() == ("hotrestart: fatal: unable to find libhotrestart.so (tried %s); use --shim PATH"
                                         % ", ".join(tried)), err

    # A plain make afterwards goes back to the default prefix.
    make("BUILD=%s" % build, str(build / "hotrestart"))
    rc, out, _ = run([str(build / "hotrestart"), "--help"])
    assert rc == 0 and "then in /usr/local/lib/hotrestart)" in out, out


def test_install_puts_the_pytest_plugin_where_python3_finds_it(tmp_path):
    """The plugin goes to $(PREFIX)/lib/python3/dist-packages (Debian's python3 path with PREFIX=/usr);
    the example suite then runs against what was installed, the launcher found on $PATH."""
    dry = make("-n", "install", "PREFIX=/usr", "DESTDIR=/nowhere")
    assert "/nowhere/usr/lib/python3/dist-packages/hotrestart/" in dry, dry
    assert "/usr/lib/python3/dist-packages" in subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.path)"], stdout=subprocess.PIPE).stdout.decode()

    build = tmp_path / "build"
    shutil.copytree(BUILD, str(build), symlinks=True)
    root = tmp_path / "root"
    pydir = root / "usr" / "lib" / "python3" / "dist-packages"
    make("install", "BUILD=%s" % build, "DESTDIR=%s" % root, "PYTHONDIR=/usr/lib/python3/dist-packages")
    assert sorted(os.listdir(str(pydir / "hotrestart"))) == ["__init__.py", "pytest_plugin.py"]
    suite = tmp_path / "suite"
    shutil.copytree(os.path.join(ROOT, "examples", "pytest"), str(suite))
    shutil.copy2(os.path.join(ROOT, "examples", "pyserver.py"), str(tmp_path))  # its SERVER, at ../pyserver.py
    env = dict(os.environ, PYTHONPATH=str(pydir),
               PATH="%s:%s" % (root / "usr" / "local" / "bin", os.environ.get("PATH", "/usr/bin:/bin")))
    env.pop("HOTRESTART_LAUNCHER", None)
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
                       cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "2 passed" in out, out
