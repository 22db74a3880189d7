#!/bin/sh
# make bench: numbers and ratios only; nothing here is a pass/fail test.
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 bench/nginx_wrk.py
/usr/bin/python3 bench/bench.py "$@"
/usr/bin/python3 bench/scale.py
exec /usr/bin/python3 bench/seccomp.py
