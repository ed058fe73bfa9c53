"""Providers: every adapter through the whole stack against the mock speaking that
provider's wire format; the translated request is asserted field by field at the mock."""

import base64
import json
import os
import struct

from harness import Stack, check, check_eq, check_error, config, deployment

KEY = "sk-upstream-" + os.urandom(6).hex()


def setup(env):
    m = env.mock.base
    models = [
        deployment("claude", "anthropic/claude-sonnet-4", m, api_key=KEY),
        deployment("claude-v1", "anthropic/claude-haiku", m + "/v1", api_key=KEY,
                   api_version="2024-01-01", max_tokens=77),
        deployment("claude-429", "anthropic/c", m + "/status/429/retry-after/30", api_key=KEY),
        deployment("claude-529", "anthropic/c", m + "/status/529/retry-after/30", api_key=KEY),
        deployment("claude-401", "anthropic/c", m + "/status/401", api_key=KEY),
        deployment("claude-cut", "anthropic/c", m + "/truncate", api_key=KEY),
        deployment("claude-drop", "anthropic/c", m, api_key=KEY, drop_params=True),
        deployment("gemini", "gemini/gemini-2.5-flash", m, api_key=KEY),
        deployment("gemini-embed", "gemini/text-embedding-004", m, api_key=KEY,
                   model_info={"mode": "embedding"}),
        deployment("gemini-cut", "gemini/g", m + "/truncate", api_key=KEY),
        deployment("voyage", "voyage/voyage-3", m + "/voyage/v1", api_key=KEY,
                   model_info={"mode": "embedding"}),
        deployment("tei", "huggingface/bge-small", m, model_info={"mode": "embedding"}),
        deployment("openai-embed", "openai/text-embedding-3-small", m + "/v1", api_key=KEY,
                   model_info={"mode": "embedding"}),
    ]
    return Stack(env, config(models, router={"num_retries": 0}), workers=1)


def teardown(stack):
    stack.stop()
    logs = "\n".join(stack.logs().values())
    check(KEY not in logs, "provider key in a log")


def _last(env):
    return env.mock.requests()[-1]


def _chunks(events):
    check(events and events[-1] == "[DONE]", "ends with [DONE]: %r" % events[-2:])
    return [json.loads(e) for e in events[:-1]]


def _text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c.get("choices"))


def _tool_calls(chunks):
    calls = {}
    for c in chunks:
        for ch in c.get("choices", []):
            for tc in ch["delta"].get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"id": None, "name": None, "args": ""})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["args"] += fn.get("arguments") or ""
    return calls


def _finishes(chunks):
    return [ch["finish_reason"] for c in chunks for ch in c.get("choices", [])
            if ch.get("finish_reason")]


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


# ---- Anthropic ----

def test_anthropic_chat_translated(stack):
    env = stack.env
    env.mock.clear()
    body = {"model": "claude", "stop": "END", "temperature": 0.5, "user": "u1",
            "messages": [{"role": "system", "content": "be terse"},
                         {"role": "user", "content": "hello there"}]}
    status, h, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
    check_eq(status, 200, "status")
    r = _last(env)
    check_eq(r["path"], "/v1/messages", "path")
    check_eq(r["headers"]["x-api-key"], KEY, "x-api-key")
    check_eq(r["headers"]["anthropic-version"], "2023-06-01", "default version")
    check("authorization" not in r["headers"], "no bearer header to Anthropic")
    sent = r["json"]
    check_eq(sent["model"], "claude-sonnet-4", "model")
    check_eq(sent["system"], "be terse", "system hoisted")
    check_eq(sent["messages"], [{"role": "user", "content": "hello there"}], "messages")
    check_eq(sent["max_tokens"], 4096, "max_tokens always sent")
    check_eq(sent["stop_sequences"], ["END"], "stop -> stop_sequences")
    check_eq(sent["temperature"], 0.5, "temperature")
    check_eq(sent["metadata"], {"user_id": "u1"}, "user -> metadata.user_id")
    check_eq(resp["object"], "chat.completion", "object")
    check_eq(resp["model"], "claude", "model restamped")
    msg = resp["choices"][0]["message"]
    check_eq(msg["content"], "mock: hello there", "content")
    check_eq(resp["choices"][0]["finish_reason"], "stop", "end_turn -> stop")
    u = resp["usage"]
    check(u["prompt_tokens"] > 0 and u["completion_tokens"] > 0, "usage %r" % u)
    check_eq(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"], "total")


def test_anthropic_api_base_v1_version_and_max_tokens(stack):
    env = stack.env
    env.mock.clear()
    status, _, _ = stack.chat("claude-v1", "hi")
    check_eq(status, 200, "status")
    r = _last(env)
    check_eq(r["path"], "/v1/messages", "no doubled /v1")
    check_eq(r["headers"]["anthropic-version"], "2024-01-01", "api_version from config")
    check_eq(r["json"]["max_tokens"], 77, "max_tokens from litellm_params")


def test_anthropic_tools_round_trip(stack):
    env = stack.env
    body = {"model": "claude", "tools": TOOLS, "tool_choice": "required",
            "messages": [{"role": "user", "content": "weather in Paris?"}]}
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
    check_eq(status, 200, "status")
    sent = _last(env)["json"]
    check_eq(sent["tools"], [{"name": "get_weather", "description": "weather",
                              "input_schema": TOOLS[0]["function"]["parameters"]}], "tools")
    check_eq(sent["tool_choice"], {"type": "any"}, "required -> any")
    choice = resp["choices"][0]
    check_eq(choice["finish_reason"], "tool_calls", "tool_use -> tool_calls")
    call = choice["message"]["tool_calls"][0]
    check_eq(call["type"], "function", "type")
    check_eq(call["function"]["name"], "get_weather", "name")
    check_eq(json.loads(call["function"]["arguments"]), {"arg": "value"}, "arguments")
    follow = {"model": "claude", "tools": TOOLS, "tool_choice": "none", "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]}
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", follow, stack.auth())
    check_eq(status, 200, "status")
    msgs = _last(env)["json"]["messages"]
    check_eq(msgs[1]["role"], "assistant", "assistant turn")
    tu = [b for b in msgs[1]["content"] if b["type"] == "tool_use"][0]
    check_eq((tu["id"], tu["name"], tu["input"]), (call["id"], "get_weather", {"arg": "value"}),
             "tool_use block")
    check_eq(msgs[2]["role"], "user", "tool result as a user turn")
    check_eq(msgs[2]["content"][0]["type"], "tool_result", "tool_result block")
    check_eq(msgs[2]["content"][0]["tool_use_id"], call["id"], "tool_use_id")
    check_eq(resp["choices"][0]["message"]["content"], "mock: tool result received", "reply")


def test_anthropic_stream(stack):
    status, _, events = stack.stream("claude", "stream this please",
                                     {"stream_options": {"include_usage": True}})
    check_eq(status, 200, "status")
    chunks = _chunks(events)
    check_eq(chunks[0]["choices"][0]["delta"].get("role"), "assistant", "role first")
    check_eq(_text(chunks), "mock: stream this please", "text")
    check_eq(_finishes(chunks), ["stop"], "finish once")
    check(all(c["model"] == "claude" for c in chunks), "model")
    check(chunks[-1]["usage"]["completion_tokens"] > 0, "usage chunk")
    check_eq(_last(stack.env)["json"]["stream"], True, "stream upstream")


def test_anthropic_stream_tools(stack):
    status, _, events = stack.stream("claude", "weather?", {"tools": TOOLS})
    check_eq(status, 200, "status")
    chunks = _chunks(events)
    calls = _tool_calls(chunks)
    check_eq(len(calls), 1, "one call")
    check_eq(calls[0]["name"], "get_weather", "name")
    check_eq(json.loads(calls[0]["args"]), {"arg": "value"}, "arguments reassembled")
    check(calls[0]["id"], "id")
    check_eq(_finishes(chunks), ["tool_calls"], "finish")


def test_anthropic_errors(stack):
    status, h, body = stack.chat("claude-429")
    check_error(status, body, 429, None, "rate_limit_error")
    check_eq(h.get("retry-after"), "30", "retry-after kept")
    status, _, body = stack.chat("claude-529")
    check_error(status, body, 503)
    check("overloaded" in body["error"]["message"] or "529" in body["error"]["message"],
          "says overloaded: %r" % body)
    status, h, body = stack.chat("claude-401")
    check_error(status, body, 401)
    check(KEY not in json.dumps(body) + json.dumps(h), "key not echoed")


def test_anthropic_truncated_stream(stack):
    status, _, events = stack.stream("claude-cut")
    check_eq(status, 200, "status")
    err = json.loads(events[-1])
    check_eq(err["error"]["code"], "upstream_stream_truncated", "error event")


def test_anthropic_unsupported_param(stack):
    status, _, body = stack.chat("claude", "x", {"seed": 7})
    e = check_error(status, body, 400, "unsupported_params")
    check("seed" in e["message"], "names the parameter")
    status, _, _ = stack.chat("claude-drop", "x", {"seed": 7})
    check_eq(status, 200, "dropped with drop_params")
    check("seed" not in _last(stack.env)["json"], "not sent")


# ---- Gemini ----

def test_gemini_chat_translated(stack):
    env = stack.env
    env.mock.clear()
    body = {"model": "gemini", "max_tokens": 50, "temperature": 0.1, "stop": ["X"],
            "messages": [{"role": "system", "content": "sys"},
                         {"role": "user", "content": "hello gemini"},
                         {"role": "assistant", "content": "earlier"},
                         {"role": "user", "content": "again"}]}
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
    check_eq(status, 200, "status")
    r = _last(env)
    check_eq(r["path"], "/v1beta/models/gemini-2.5-flash:generateContent", "path")
    check_eq(r["headers"]["x-goog-api-key"], KEY, "key header")
    check("key=" not in r["path"], "key never in the URL")
    sent = r["json"]
    check_eq(sent["systemInstruction"], {"parts": [{"text": "sys"}]}, "system")
    check_eq([c["role"] for c in sent["contents"]], ["user", "model", "user"], "roles")
    gc = sent["generationConfig"]
    check_eq((gc["maxOutputTokens"], gc["temperature"], gc["stopSequences"]), (50, 0.1, ["X"]),
             "generationConfig")
    check_eq(resp["choices"][0]["message"]["content"], "mock: again", "content")
    check_eq(resp["choices"][0]["finish_reason"], "stop", "finish")
    check(resp["usage"]["prompt_tokens"] > 0, "usage")


def test_gemini_tools_and_stream(stack):
    env = stack.env
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", {
        "model": "gemini", "tools": TOOLS,
        "messages": [{"role": "user", "content": "weather?"}]}, stack.auth())
    check_eq(status, 200, "status")
    sent = _last(env)["json"]
    check_eq(sent["tools"][0]["functionDeclarations"][0]["name"], "get_weather", "tools")
    choice = resp["choices"][0]
    check_eq(choice["finish_reason"], "tool_calls", "STOP with calls -> tool_calls")
    call = choice["message"]["tool_calls"][0]
    check(call["id"], "synthesised id")
    check_eq(json.loads(call["function"]["arguments"]), {"arg": "value"}, "args")
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", {
        "model": "gemini", "tools": TOOLS, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"t\": 20}"}]},
        stack.auth())
    check_eq(status, 200, "status")
    fr = _last(env)["json"]["contents"][-1]["parts"][0]["functionResponse"]
    check_eq(fr["name"], "get_weather", "name recovered from the earlier call")
    check_eq(fr["response"], {"t": 20}, "response")
    status, _, events = stack.stream("gemini", "stream gemini",
                                     {"stream_options": {"include_usage": True}})
    check_eq(status, 200, "status")
    r = _last(env)
    check(r["path"].startswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
          "stream path %s" % r["path"])
    check("alt=sse" in r["path"], "alt=sse")
    chunks = _chunks(events)
    check_eq(_text(chunks), "mock: stream gemini", "text")
    check_eq(_finishes(chunks), ["stop"], "finish once")
    check(chunks[-1]["usage"]["total_tokens"] > 0, "usage chunk")


def test_gemini_truncated_stream(stack):
    status, _, events = stack.stream("gemini-cut")
    check_eq(status, 200, "status")
    check_eq(json.loads(events[-1])["error"]["code"], "upstream_stream_truncated", "error event")


def test_gemini_embeddings(stack):
    status, _, body = stack.http.json("POST", "/v1/embeddings", {
        "model": "gemini-embed", "input": ["one", "two", "three"], "dimensions": 4},
        stack.auth())
    check_eq(status, 200, "status")
    r = _last(stack.env)
    check_eq(r["path"], "/v1beta/models/text-embedding-004:batchEmbedContents", "path")
    reqs = r["json"]["requests"]
    check_eq([q["content"]["parts"][0]["text"] for q in reqs], ["one", "two", "three"], "order")
    check_eq(reqs[0]["outputDimensionality"], 4, "dimensions")
    check_eq([d["index"] for d in body["data"]], [0, 1, 2], "indexes")
    check(all(len(d["embedding"]) == 4 for d in body["data"]), "4 values each")


# ---- embeddings: Voyage, TEI, OpenAI ----

def _floats_b64(s):
    raw = base64.b64decode(s)
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))


def test_voyage_embeddings(stack):
    status, _, body = stack.http.json("POST", "/v1/embeddings", {
        "model": "voyage", "input": ["alpha", "beta"], "input_type": "query",
        "dimensions": 16}, stack.auth())
    check_eq(status, 200, "status")
    r = _last(stack.env)
    check_eq(r["path"], "/voyage/v1/embeddings", "path")
    check_eq(r["headers"]["authorization"], "Bearer " + KEY, "auth")
    sent = r["json"]
    check_eq((sent["model"], sent["input"], sent["input_type"], sent["output_dimension"]),
             ("voyage-3", ["alpha", "beta"], "query", 16), "request")
    check_eq(body["model"], "voyage", "model")
    check_eq([d["index"] for d in body["data"]], [0, 1], "order")
    check(all(len(d["embedding"]) == 16 for d in body["data"]), "dimensions")
    check(body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0, "usage")


def test_tei_embeddings_and_base64(stack):
    status, _, plain = stack.http.json("POST", "/v1/embeddings", {
        "model": "tei", "input": ["x1", "x2"]}, stack.auth())
    check_eq(status, 200, "status")
    r = _last(stack.env)
    check_eq(r["path"], "/embed", "native route")
    check_eq(r["json"]["inputs"], ["x1", "x2"], "inputs")
    check("authorization" not in r["headers"], "no key configured, none sent")
    status, _, b64 = stack.http.json("POST", "/v1/embeddings", {
        "model": "tei", "input": ["x1", "x2"], "encoding_format": "base64"}, stack.auth())
    check_eq(status, 200, "status")
    for a, b in zip(plain["data"], b64["data"]):
        got = _floats_b64(b["embedding"])
        check(all(abs(x - y) < 1e-6 for x, y in zip(a["embedding"], got)) and
              len(got) == len(a["embedding"]), "base64 decodes to the same floats")
    check(plain["usage"]["prompt_tokens"] > 0, "estimated usage")


def test_openai_embeddings_options_pass_through(stack):
    status, _, body = stack.http.json("POST", "/v1/embeddings", {
        "model": "openai-embed", "input": "single", "encoding_format": "base64",
        "dimensions": 8}, stack.auth())
    check_eq(status, 200, "status")
    sent = _last(stack.env)["json"]
    check_eq((sent["encoding_format"], sent["dimensions"]), ("base64", 8), "passed through")
    check(isinstance(body["data"][0]["embedding"], str), "base64 string back")


def test_chat_to_embedding_only_provider_refused(stack):
    status, _, body = stack.chat("voyage")
    e = check_error(status, body, 400)
    check("embeddings" in e["message"], e["message"])

