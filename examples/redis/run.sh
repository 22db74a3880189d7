#!/bin/sh
# redis-server under hotrestart on TCP port PORT and a unix socket.
#   examples/redis/run.sh [PORT]        (default 6380)
# Try: redis-cli -p PORT info server | grep process_id   (changes with every reload)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-6380}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
[ -x /usr/bin/redis-server ] || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-redis.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "redis on 127.0.0.1:$port and $dir/redis.sock"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: redis-cli -p $port ping; redis-cli -s $dir/redis.sock ping)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal TERM -- \
    /usr/bin/redis-server "$here/redis.conf" --port "$port" --unixsocket "$dir/redis.sock" --dir "$dir"
