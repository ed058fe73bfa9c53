# llm-proxy: one image, four daemons (choose with the command: llm-gateway, llm-router,
# llm-worker, llm-logger). Built on Debian 12, run on Debian 12 slim as a non-root user with
# only the runtime libraries.
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libzmq3-dev libmicrohttpd-dev libcurl4-openssl-dev \
        libjansson-dev libhiredis-dev libpq-dev libyaml-dev libssl-dev libmsgpack-dev libyajl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" build/bin/llm-gateway build/bin/llm-router build/bin/llm-worker \
        build/bin/llm-logger

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libzmq5 libmicrohttpd12 libcurl4 libjansson4 libhiredis0.14 libpq5 libyaml-0-2 libmsgpackc2 libyajl2 \
        libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/llm-proxy --create-home llmproxy
COPY --from=build /src/build/bin/llm-gateway /src/build/bin/llm-router \
     /src/build/bin/llm-worker /src/build/bin/llm-logger /usr/local/bin/
COPY configs/ /etc/llm-proxy/
ENV CONFIG=/etc/llm-proxy/litellm-config.yaml \
    LP_MODEL_PRICES=/etc/llm-proxy/model_prices.json
USER llmproxy
WORKDIR /var/lib/llm-proxy
CMD ["llm-gateway"]
