#!/bin/sh
# memcached under hotrestart: TCP and UDP on 127.0.0.1:PORT.
#   examples/memcached/run.sh [PORT]    (default 11311; as root, memcached switches to user nobody)
# Try (the pid changes with every reload):
#   python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"stats\r\nquit\r\n"); print(s.makefile().read())' PORT | grep "STAT pid"
# SIGUSR1 is memcached's graceful stop.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-11311}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
[ -x /usr/bin/memcached ] || { echo "memcached is not installed (apt-get install memcached)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-memcached.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
user=""
[ "$(id -u)" -eq 0 ] && user="-u nobody"
echo "memcached on 127.0.0.1:$port (TCP and UDP)"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (see the pid change: the python3 line at the top of $0)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
# shellcheck disable=SC2086
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal USR1 -- \
    /usr/bin/memcached -l 127.0.0.1 -p "$port" -U "$port" $user
