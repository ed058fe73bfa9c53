#!/bin/bash
# dev profile: on every change under $WATCH_DIR (the mounted configs/), send SIGHUP to each
# running container of $SERVICES in this Compose project, through the Docker Engine API on
# $DOCKER_SOCK (default /var/run/docker.sock). The daemons reload on SIGHUP; a bad file is
# rejected by them and the running config stays in force (their logs say why).
set -uo pipefail
dir=${WATCH_DIR:-/etc/llm-proxy}
services=${SERVICES:-gateway router worker}

api() { curl -fsS --unix-socket "${DOCKER_SOCK:-/var/run/docker.sock}" "$@"; }

# This container's Compose project, from its own labels (its hostname is its container id).
project=$(api "http://docker/containers/$(hostname)/json" |
    grep -o '"com.docker.compose.project": *"[^"]*"' | head -n 1 | cut -d '"' -f 4)
if [ -z "$project" ]; then
    echo "config-watcher: cannot read this container's Compose project from the Docker API" >&2
    exit 1
fi

hup_all() {
    local svc id filter
    for svc in $services; do
        filter='{"label":["com.docker.compose.project='"$project"'",'
        filter+='"com.docker.compose.service='"$svc"'"]}'
        for id in $(api -G http://docker/containers/json --data-urlencode "filters=$filter" |
            grep -o '"Id": *"[0-9a-f]*"' | cut -d '"' -f 4); do
            if api -X POST "http://docker/containers/$id/kill?signal=HUP"; then
                echo "config-watcher: SIGHUP to $svc ${id:0:12}"
            else
                echo "config-watcher: could not signal $svc ${id:0:12}" >&2
            fi
        done
    done
}

echo "config-watcher: watching $dir for project $project ($services)"
# Events on fd 3; inotifywait says "Watches established." on stderr once it is ready.
exec 3< <(inotifywait -m -r -e close_write -e moved_to -e create -e delete \
    --format '%w%f' "$dir")
watcher=$!
trap 'kill "$watcher" 2>/dev/null; exit 0' TERM INT
while read -r -u 3 path; do
    # An editor saves with several events: wait for a quiet second, then reload once.
    while read -r -u 3 -t 1 _; do :; done
    echo "config-watcher: $path changed"
    hup_all
done
echo "config-watcher: inotifywait ended" >&2
exit 1
