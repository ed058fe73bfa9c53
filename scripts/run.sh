#!/usr/bin/env bash
# make run: start the whole stack in the foreground on the embedded defaults.
#   router, $WORKERS workers (default 2), logger, gateway on $PORT (default 4000)
# Honours CONFIG, PORT, WORKERS, LITELLM_MASTER_KEY, DATABASE_URL, REDIS_URL.
# Ctrl-C (or SIGTERM) stops every daemon cleanly; if one dies, the others are stopped too.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
export CONFIG=${CONFIG:-configs/litellm-config.yaml}
export PORT=${PORT:-4000}
WORKERS=${WORKERS:-2}

if [ -z "${LITELLM_MASTER_KEY:-}" ]; then
    if [ ! -s .keys/master_key ]; then
        mkdir -p .keys && chmod 700 .keys
        umask 077
        printf 'sk-%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
            > .keys/master_key
        echo "run: created a master key in .keys/master_key"
    fi
    LITELLM_MASTER_KEY=$(cat .keys/master_key)
    export LITELLM_MASTER_KEY
    echo "run: master key from .keys/master_key (export KEY=\$(cat .keys/master_key))"
fi

pids=()
stop() {
    trap - INT TERM
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    wait
}
trap 'stop; exit 0' INT TERM

start() { "$@" & pids+=($!); }
start "$BIN/llm-router"
start "$BIN/llm-logger"
for _ in $(seq "$WORKERS"); do start "$BIN/llm-worker"; done
start "$BIN/llm-gateway"
echo "run: gateway on http://localhost:$PORT with $WORKERS worker(s); Ctrl-C stops"

# If any daemon exits on its own, take the rest down too.
wait -n
status=$?
echo "run: a daemon exited (status $status); stopping the others" >&2
stop
exit "$status"
