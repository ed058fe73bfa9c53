"""Response cache: hits counted at the mock, per-request controls, streams, embeddings, Redis."""

import json
import os
import time

from harness import (Http, Stack, check, check_eq, config, deployment, sse_events, wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(6).hex()


def _models(env):
    m = env.mock.base
    return [
        deployment("c", "openai/gpt-4o-mini", m + "/v1", api_key=UPSTREAM_KEY),
        deployment("cut", "openai/gpt-4o-mini", m + "/truncate/chunks/4/v1", api_key=UPSTREAM_KEY),
        deployment("e", "openai/text-embedding-3-small", m + "/v1", api_key=UPSTREAM_KEY,
                   model_info={"mode": "embedding"}),
        deployment("t", "openai/gpt-3.5-turbo-instruct", m + "/v1", api_key=UPSTREAM_KEY,
                   model_info={"mode": "completion"}),
    ]


class Ctx:
    def __init__(self, env, stack):
        self.env = env
        self.stack = stack

    def chat(self, text, extra=None, headers=None, stack=None, key=None):
        stack = stack or self.stack
        body = {"model": "c", "messages": [{"role": "user", "content": text}]}
        body.update(extra or {})
        h = stack.auth(key) if key else stack.auth()
        h.update(headers or {})
        return stack.http.json("POST", "/v1/chat/completions", body, h)

    def stream(self, text, extra=None, stack=None, model="c"):
        stack = stack or self.stack
        body = {"model": model, "stream": True,
                "messages": [{"role": "user", "content": text}]}
        body.update(extra or {})
        st, h, raw = stack.http.request("POST", "/v1/chat/completions", body, stack.auth())
        return st, h, sse_events(raw)

    def upstream(self, text):
        """How many chat calls with this text reached the mock."""
        n = 0
        for r in self.env.mock.requests():
            msgs = (r.get("json") or {}).get("messages") if isinstance(r.get("json"), dict) else None
            if msgs and msgs[-1].get("content") == text:
                n += 1
        return n


def setup(env):
    cfg = config(_models(env), litellm={"cache": True, "cache_params": {
        "type": "local", "ttl": 60, "max_size_in_memory": 50}})
    return Ctx(env, Stack(env, cfg, db_url=env.pg.url, name="cache"))


def teardown(ctx):
    ctx.stack.stop()
    logs = "\n".join(ctx.stack.logs().values())
    check(UPSTREAM_KEY not in logs, "provider key in a log")


def _marker(tag):
    return "%s-%s" % (tag, os.urandom(4).hex())


def test_hit_after_miss(ctx):
    text = _marker("hit")
    st, h1, first = ctx.chat(text)
    check_eq(st, 200, "miss status")
    check("x-litellm-cache-key" not in h1, "no cache key header on a miss")
    st, h2, second = ctx.chat(text)
    check_eq(st, 200, "hit status")
    check_eq(second, first, "the cached answer is the same answer")
    check_eq(ctx.upstream(text), 1, "one call upstream for two requests")
    key = h2.get("x-litellm-cache-key", "")
    check(len(key) == 64, "x-litellm-cache-key on the hit")
    pg = ctx.env.pg
    wait_for(lambda: pg.query('SELECT cache_hit, spend, cache_key FROM "LiteLLM_SpendLogs" '
                              'WHERE request_id = \'%s\'' % h2["x-litellm-call-id"]) ==
             [["True", "0", key]], 10, what="the hit's spend row (cache_hit, zero cost)")


def test_key_ignores_irrelevant_fields(ctx):
    text = _marker("fields")
    check_eq(ctx.chat(text, {"temperature": 0.5})[0], 200, "first")
    check_eq(ctx.chat(text, {"temperature": 0.5, "user": "someone",
                             "metadata": {"tag": "x"}})[0], 200, "same but user/metadata")
    check_eq(ctx.upstream(text), 1, "user and metadata do not change the key")
    check_eq(ctx.chat(text, {"temperature": 0.7})[0], 200, "other temperature")
    check_eq(ctx.upstream(text), 2, "temperature changes the key")


def test_no_cache_and_no_store(ctx):
    text = _marker("ctl")
    ctx.chat(text)
    ctx.chat(text, {"cache": {"no-cache": True}})
    check_eq(ctx.upstream(text), 2, "no-cache skips the read")
    ctx.chat(text)
    check_eq(ctx.upstream(text), 2, "still cached after a no-cache call")
    other = _marker("nostore")
    ctx.chat(other, {"cache": {"no-store": True}})
    ctx.chat(other)
    check_eq(ctx.upstream(other), 2, "no-store kept nothing")
    ctx.chat(other)
    check_eq(ctx.upstream(other), 2, "the plain call stored it")
    hdr = _marker("hdr")
    ctx.chat(hdr)
    ctx.chat(hdr, headers={"Cache-Control": "no-cache"})
    check_eq(ctx.upstream(hdr), 2, "Cache-Control: no-cache skips the read")


def test_ttl_and_max_age(ctx):
    text = _marker("ttl")
    ctx.chat(text, {"cache": {"ttl": 1}})
    ctx.chat(text)
    check_eq(ctx.upstream(text), 1, "fresh entry hit")
    time.sleep(1.3)
    ctx.chat(text)
    check_eq(ctx.upstream(text), 2, "expired after its ttl")
    time.sleep(1.1)
    ctx.chat(text, {"cache": {"s-maxage": 1}})
    check_eq(ctx.upstream(text), 3, "s-maxage refuses an entry older than asked")
    ctx.chat(text, headers={"Cache-Control": "max-age=30"})
    check_eq(ctx.upstream(text), 3, "a fresh enough entry is accepted")


def test_namespace(ctx):
    text = _marker("ns")
    ctx.chat(text)
    ctx.chat(text, {"cache": {"namespace": "other"}})
    check_eq(ctx.upstream(text), 2, "another namespace is another cache")
    ctx.chat(text, {"cache": {"namespace": "other"}})
    check_eq(ctx.upstream(text), 2, "hit in that namespace")


def test_stream_served_from_cache(ctx):
    text = _marker("tostream")
    st, _, answer = ctx.chat(text)
    check_eq(st, 200, "stored by a plain call")
    st, h, events = ctx.stream(text, {"stream_options": {"include_usage": True}})
    check_eq(st, 200, "stream status")
    check(h["content-type"].startswith("text/event-stream"), "served as SSE")
    check_eq(events[-1], "[DONE]", "ends with [DONE]")
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                      if c["choices"])
    check_eq(content, answer["choices"][0]["message"]["content"], "same content")
    check_eq(chunks[0]["choices"][0]["delta"]["role"], "assistant", "role in the first chunk")
    check_eq([c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1], "stop",
             "finish_reason")
    check_eq(chunks[-1]["usage"], answer["usage"], "usage chunk when asked")
    check_eq(ctx.upstream(text), 1, "no upstream call for the stream")


def test_streamed_answer_stored(ctx):
    text = _marker("fromstream")
    st, _, events = ctx.stream(text)
    check_eq(st, 200, "streamed")
    streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e)["choices"])
    st, _, answer = ctx.chat(text)
    check_eq(st, 200, "plain call")
    check_eq(answer["choices"][0]["message"]["content"], streamed, "assembled from the chunks")
    check_eq(answer["object"], "chat.completion", "a completion object")
    check(answer["usage"]["total_tokens"] > 0, "usage kept")
    check_eq(ctx.upstream(text), 1, "answered from the stored stream")
    # Tool calls survive the round trip.
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    tt = _marker("tools")
    ctx.stream(tt, {"tools": tools})
    st, _, answer = ctx.chat(tt, {"tools": tools})
    call = answer["choices"][0]["message"]["tool_calls"][0]
    check_eq((call["function"]["name"], json.loads(call["function"]["arguments"])),
             ("lookup", {"arg": "value"}), "tool call assembled")
    check_eq(answer["choices"][0]["finish_reason"], "tool_calls", "finish reason kept")
    check_eq(ctx.upstream(tt), 1, "tool call answered from cache")


def test_broken_stream_not_stored(ctx):
    text = _marker("cut")
    ctx.stream(text, model="cut")
    ctx.stream(text, model="cut")
    n = sum(1 for r in ctx.env.mock.requests()
            if isinstance(r.get("json"), dict) and
            (r["json"].get("messages") or [{}])[-1].get("content") == text)
    check_eq(n, 2, "a stream without its terminator is never stored")


def test_embeddings_cached_per_input(ctx):
    h = ctx.stack.auth()
    a, b, c = _marker("ea"), _marker("eb"), _marker("ec")
    st, _, first = ctx.stack.http.json("POST", "/v1/embeddings", {"model": "e", "input": [a, b]}, h)
    check_eq(st, 200, "first batch")
    ctx.env.mock.clear()
    st, _, second = ctx.stack.http.json("POST", "/v1/embeddings",
                                        {"model": "e", "input": [a, c, b]}, h)
    check_eq(st, 200, "second batch")
    sent = [r["json"]["input"] for r in ctx.env.mock.requests()
            if r["path"].endswith("/embeddings")]
    check_eq(sent, [[c]], "only the new input went upstream")
    check_eq([d["index"] for d in second["data"]], [0, 1, 2], "indices in order")
    check_eq(second["data"][0]["embedding"], first["data"][0]["embedding"], "a from cache")
    check_eq(second["data"][2]["embedding"], first["data"][1]["embedding"], "b from cache")
    ctx.env.mock.clear()
    st, hh, third = ctx.stack.http.json("POST", "/v1/embeddings",
                                        {"model": "e", "input": [c, a]}, h)
    check_eq(st, 200, "all cached")
    check_eq(len([r for r in ctx.env.mock.requests() if r["path"].endswith("/embeddings")]), 0,
             "nothing upstream when every input is cached")
    check_eq(third["data"][1]["embedding"], first["data"][0]["embedding"], "values kept")
    check("x-litellm-cache-key" in hh, "a full hit says so")


def test_text_completion_cached(ctx):
    prompt = _marker("prompt")
    body = {"model": "t", "prompt": prompt}
    _, _, first = ctx.stack.http.json("POST", "/v1/completions", body, ctx.stack.auth())
    _, h, second = ctx.stack.http.json("POST", "/v1/completions", body, ctx.stack.auth())
    check_eq(second, first, "same completion")
    check("x-litellm-cache-key" in h, "hit")


def test_tenants_do_not_share(ctx):
    text = _marker("tenant")
    st, _, k = ctx.stack.http.json("POST", "/key/generate", {}, ctx.stack.auth())
    check_eq(st, 200, "key made")
    ctx.chat(text)
    ctx.chat(text, key=k["key"])
    check_eq(ctx.upstream(text), 2, "another key does not read the master key's entry")
    ctx.chat(text, key=k["key"])
    check_eq(ctx.upstream(text), 2, "the key reads its own entry")


def test_local_cache_is_bounded(ctx):
    # max_size_in_memory: 50 entries; 60 new answers evict the oldest.
    first = _marker("lru")
    ctx.chat(first)
    for i in range(60):
        ctx.chat("%s-%d" % (first, i))
    ctx.chat(first)
    check_eq(ctx.upstream(first), 2, "the least recently used entry was evicted")


def test_redis_cache_shared_and_outage(ctx):
    env = ctx.env
    cfg = config(_models(env), litellm={"cache": True, "cache_params": {"type": "redis",
                                                                        "scope": "global"}})
    stack = Stack(env, cfg, extra_env={"REDIS_URL": env.redis.url}, name="cache-redis")
    try:
        port2 = stack.add_gateway()
        text = _marker("redis")
        before = set(env.redis.keys("litellm_caching:*"))
        st, _, first = ctx.chat(text, stack=stack)
        check_eq(st, 200, "miss")
        # The entry is written after the answer has gone out, not before it.
        wait_for(lambda: set(env.redis.keys("litellm_caching:*")) - before, 5,
                 what="the entry in Redis")
        other = Http(port2)
        st, h, second = other.json("POST", "/v1/chat/completions",
                                   {"model": "c", "messages": [{"role": "user", "content": text}]},
                                   stack.auth())
        check_eq((st, second), (200, first), "the other gateway reads the shared entry")
        key = h["x-litellm-cache-key"]
        check_eq(env.redis.keys("litellm_caching:{%s}" % key), ["litellm_caching:{%s}" % key],
                 "hash-tagged key in Redis")
        ttl = int(env.redis.cli("TTL", "litellm_caching:{%s}" % key))
        check(0 < ttl <= 600, "default ttl 600 s")
        check_eq(ctx.upstream(text), 1, "one upstream call")
        env.redis.kill()
        for i in range(4):
            check_eq(ctx.chat(text, stack=stack)[0], 200, "served with Redis gone (%d)" % i)
        check_eq(ctx.upstream(text), 5, "every call went upstream")
        log = stack.procs["gateway"].text()
        check_eq(log.count("unreachable"), 1, "one warning per outage")
        other.close()
    finally:
        env.redis.start()
        stack.stop()


def test_anthropic_messages_cached(ctx):
    """/v1/messages answers are cached too: JSON as JSON, streams as the events they were."""
    h = ctx.stack.auth()
    h["anthropic-version"] = "2023-06-01"
    for stream in (False, True):
        text = _marker("msg-stream" if stream else "msg")
        body = {"model": "c", "max_tokens": 20, "stream": stream,
                "messages": [{"role": "user", "content": text}]}
        st, h1, first = ctx.stack.http.request("POST", "/v1/messages", body, h)
        st2, h2, second = ctx.stack.http.request("POST", "/v1/messages", body, h)
        check_eq((st, st2), (200, 200), "statuses")
        check_eq(second, first, "the same answer, byte for byte (stream=%s)" % stream)
        check("x-litellm-cache-key" in h2, "a hit")
        check_eq(ctx.upstream(text), 1, "one upstream call (stream=%s)" % stream)
        if stream:
            check(h2["content-type"].startswith("text/event-stream"), "replayed as SSE")
            check(b"event: message_stop" in second, "whole event stream")
