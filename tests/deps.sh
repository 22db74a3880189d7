#!/bin/sh
# Installs what building and testing hotrestart needs, from Debian/Ubuntu packages.
#   tests/deps.sh build   compiler, make, python3 (enough for `make` and `make demo`)
#   tests/deps.sh         everything `make check` and `make sanitize` use: also cmocka, pytest and the real servers
#   tests/deps.sh fuzz    what `make fuzz` uses: clang and its libFuzzer runtime
# As root it runs apt-get; otherwise it prints the exact command to run and fails if anything is missing.
set -eu

BUILD_PKGS="g++ make python3"
TEST_PKGS="libc6-dev libcmocka-dev python3-pytest curl iproute2 nginx-light redis-server memcached nodejs wrk apache2 haproxy golang-go"
FUZZ_PKGS="clang libclang-rt-dev"

pkgs=$BUILD_PKGS
case "${1:-test}" in
    build) ;;
    fuzz) pkgs="$pkgs $FUZZ_PKGS" ;;
    *) pkgs="$pkgs $TEST_PKGS" ;;
esac

missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "hotrestart: missing packages:$missing" >&2
    echo "hotrestart: install them as root with:" >&2
    echo "  sudo sh -c '$cmd'" >&2
    exit 1
fi
echo "hotrestart: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
