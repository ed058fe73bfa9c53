# The dev profile's config watcher (docker-compose.yml, service config-watcher): inotifywait
# on the mounted configs/, curl to the Docker Engine API on the mounted socket. Dev only.
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends inotify-tools curl \
    && rm -rf /var/lib/apt/lists/*
COPY reload-on-change.sh /usr/local/bin/reload-on-change
CMD ["bash", "/usr/local/bin/reload-on-change"]
