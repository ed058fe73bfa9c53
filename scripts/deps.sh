#!/usr/bin/env bash
# Install, on Debian 12, the packages llm-proxy needs that are missing.
#   scripts/deps.sh build   compilers and -dev libraries (make run)
#   scripts/deps.sh test    the above plus PostgreSQL, Redis, Python, clang and Node (make test)
#   scripts/deps.sh reliability   the above plus valgrind (make reliability, make soak)
set -euo pipefail

build=(build-essential pkg-config libzmq3-dev libmicrohttpd-dev libcurl4-openssl-dev
       libjansson-dev libhiredis-dev libpq-dev libyaml-dev libssl-dev libmsgpack-dev libyajl-dev)
test=(postgresql redis-server python3 curl procps clang libclang-rt-14-dev docker-compose inotify-tools)

mode=${1:-build}
want=("${build[@]}")
case $mode in
test) want+=("${test[@]}") ;;
reliability) want+=("${test[@]}" valgrind) ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
# Node (for the official SDK clients in the tests) counts as present however it came
# (Debian's nodejs + npm, or NodeSource's nodejs, which bundles npm and conflicts with them).
if [ "$mode" != build ] && ! { command -v node && command -v npm; } >/dev/null; then
    missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "deps: missing packages and not root: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
