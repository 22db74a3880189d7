#!/bin/sh
# examples/pyserver.py (http.server.ThreadingHTTPServer, unmodified standard library) under hotrestart.
#   examples/python/run.sh [PORT]       (default 8000)
# Every reply names the pid that served it; a reload (kill -HUP the launcher) changes it, nothing refused.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8000}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-python.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "python http.server on http://127.0.0.1:$port/"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: curl -s http://127.0.0.1:$port/)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal TERM -- \
    /usr/bin/python3 "$here/../pyserver.py" --host 127.0.0.1 --port "$port"
