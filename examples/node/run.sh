#!/bin/sh
# Node.js under hotrestart: a plain `http` server, or a `cluster` (primary + 2 workers).
#   examples/node/run.sh [PORT] [server|cluster]      (default 8001 server)
# Every reply names the process that served it; a reload (kill -HUP the launcher) changes it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8001}
kind=${2:-server}
case "$kind" in
    server|cluster) ;;
    *) echo "usage: $0 [PORT] [server|cluster]" >&2; exit 2 ;;
esac
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
node=$(command -v node || command -v nodejs || true)
[ -n "$node" ] || { echo "node is not installed (apt-get install nodejs)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-node.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "node $kind.js on http://127.0.0.1:$port/"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: curl -s http://127.0.0.1:$port/)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal TERM -- "$node" "$here/$kind.js" "$port" 127.0.0.1
