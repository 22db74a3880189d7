#!/bin/sh
# nginx (master + 2 workers) under hotrestart on 127.0.0.1:PORT and [::1]:PORT.
#   examples/nginx/run.sh [PORT]        (default 8080; run it as root: nginx's workers switch to nobody)
# Every reply is "pid=<worker pid>"; a reload (kill -HUP the launcher) brings new workers, nothing refused.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8080}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
[ -x /usr/sbin/nginx ] || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-nginx.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$dir"     # the workers (user nobody) read nothing here, but must reach the temp dirs
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/nginx.conf" > "$dir/nginx.conf"
echo "nginx on http://127.0.0.1:$port/ and http://[::1]:$port/ (files in $dir)"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: curl -s http://127.0.0.1:$port/)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal QUIT -- \
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off; master_process on;'
