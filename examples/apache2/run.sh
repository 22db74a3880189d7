#!/bin/sh
# apache2 (prefork: a parent and its children) under hotrestart on 127.0.0.1:PORT.
#   examples/apache2/run.sh [PORT]      (default 8081; as root, the children switch to www-data, which must
#                                        be able to reach ${TMPDIR:-/tmp} to run the CGI script there)
# `apache2 -k start` refuses to start while its PidFile names a live process: under hotrestart the previous
# generation does not count. Try: curl -s http://127.0.0.1:PORT/pid (the child and its generation's pid).
# SIGWINCH is apache's graceful stop.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-8081}
launcher=$here/../../build/hotrestart
[ -x "$launcher" ] || { echo "build the launcher first: make -C $here/../.." >&2; exit 1; }
[ -x /usr/sbin/apache2 ] || { echo "apache2 is not installed (apt-get install apache2)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/hotrestart-apache2.XXXXXX")
# The launcher runs as a child (not exec'd) so that this directory is removed however it ends: the
# launcher stopped by kill -TERM, Ctrl-C (the shell's INT trap runs once the launcher is done), an error.
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$dir"     # the children (www-data) run the CGI script in it
user=""
[ "$(id -u)" -eq 0 ] && user="User www-data\\nGroup www-data"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user|" "$here/apache2.conf" > "$dir/apache2.conf"
cp "$here/pid.cgi" "$dir/pid.cgi"
echo "apache2 on http://127.0.0.1:$port/pid (files in $dir)"
echo "  reload:  kill -HUP \$(cat $dir/hotrestart.pid)     (try: curl -s http://127.0.0.1:$port/pid)"
echo "  stop:    kill -TERM \$(cat $dir/hotrestart.pid)    (or Ctrl-C)"
"$launcher" --pid-file "$dir/hotrestart.pid" --stop-signal WINCH -- \
    /usr/sbin/apache2 -k start -f "$dir/apache2.conf" -DFOREGROUND
