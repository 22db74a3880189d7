#!/bin/sh
# haproxy under hotrestart on 127.0.0.1:PORT.
#   examples/haproxy/run.sh [PORT]      (default 8082)
# haproxy calls listen() only on a socket that does not listen yet: a new generation never does.
# Every reply is "gen=<generation>"; try: curl -s http://127.0.0.1:PORT/ before and after a reload.
# SIGUSR1 is haproxy's graceful (soft) stop.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8082}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
[ -x /usr/sbin/haproxy ] || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-haproxy.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sed -e "s|@PORT@|$port|g" "$here/haproxy.cfg" > "$dir/haproxy.cfg"
echo "haproxy on http://127.0.0.1:$port/ (files in $dir)"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: curl -s http://127.0.0.1:$port/)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal USR1 -- /usr/sbin/haproxy -db -f "$dir/haproxy.cfg"
