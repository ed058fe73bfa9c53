"""Anthropic's /v1/messages: passthrough to Anthropic, translation for others, events, errors."""

import json
import os
import subprocess

from harness import (MASTER_KEY, Stack, check, check_eq, config, deployment, wait_for)

UPSTREAM_KEY = "sk-ant-upstream-" + os.urandom(6).hex()
TOOLS = [{"name": "lookup", "description": "look a thing up",
          "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]


def setup(env):
    m = env.mock.base
    models = [
        deployment("claude", "anthropic/claude-sonnet-4-5", m, api_key=UPSTREAM_KEY),
        deployment("gpt", "openai/gpt-4o-mini", m + "/v1", api_key=UPSTREAM_KEY),
        deployment("gem", "gemini/gemini-2.0-flash", m, api_key=UPSTREAM_KEY),
        deployment("canned", "openai/x", mock_response="canned answer"),
        deployment("gpt-cut", "openai/x", m + "/truncate/chunks/6/v1", api_key=UPSTREAM_KEY),
        deployment("claude-busy", "anthropic/claude-x", m + "/status/529", api_key=UPSTREAM_KEY),
    ]
    return Stack(env, config(models, router={"num_retries": 0}), db_url=env.pg.url,
                 name="messages")


def teardown(stack):
    stack.stop()
    logs = "\n".join(stack.logs().values())
    check(UPSTREAM_KEY not in logs, "provider key in a log")


def _post(stack, body, headers=None, path="/v1/messages", key=MASTER_KEY):
    h = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    h.update(headers or {})
    return stack.http.request("POST", path, body, h)


def _json(stack, body, **kw):
    st, h, raw = _post(stack, body, **kw)
    return st, h, json.loads(raw)


def _events(raw):
    """[(event name, data dict)] of an Anthropic SSE body."""
    out = []
    for block in raw.decode().split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


def _last_upstream(env, suffix):
    reqs = [r for r in env.mock.requests() if r["path"].endswith(suffix)]
    return reqs[-1] if reqs else None


def _msg(text, model, **extra):
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def test_anthropic_upstream_gets_the_request_as_sent(stack):
    body = _msg("hello there", "claude", system=[{"type": "text", "text": "be brief"}],
                metadata={"user_id": "u-1"}, top_k=5)
    st, h, resp = _json(stack, body, headers={"anthropic-beta": "tools-2024-04-04"})
    check_eq(st, 200, "status (%s)" % resp)
    check_eq((resp["type"], resp["role"]), ("message", "assistant"), "an Anthropic message")
    check_eq(resp["content"][0], {"type": "text", "text": "mock: hello there"}, "content")
    sent = _last_upstream(stack.env, "/v1/messages")
    check_eq(sent["json"]["system"], [{"type": "text", "text": "be brief"}], "system untouched")
    check_eq(sent["json"]["top_k"], 5, "top_k passed on")
    check_eq(sent["json"]["metadata"], {"user_id": "u-1"}, "Anthropic's metadata kept")
    check_eq(sent["json"]["model"], "claude-sonnet-4-5", "provider model")
    check_eq(sent["headers"].get("anthropic-version"), "2023-06-01", "client's version")
    check_eq(sent["headers"].get("anthropic-beta"), "tools-2024-04-04", "client's beta")
    check_eq(sent["headers"].get("x-api-key"), UPSTREAM_KEY, "the deployment's key upstream")
    check(resp["usage"]["input_tokens"] > 0 and resp["usage"]["output_tokens"] > 0, "usage")


def test_openai_upstream_translated(stack):
    body = _msg("hello there", "gpt", system="be brief", stop_sequences=["END"], temperature=0.2)
    st, _, resp = _json(stack, body)
    check_eq(st, 200, "status (%s)" % resp)
    sent = _last_upstream(stack.env, "/chat/completions")["json"]
    check_eq(sent["messages"], [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello there"}], "messages")
    check_eq((sent["max_tokens"], sent["stop"], sent["temperature"]), (64, ["END"], 0.2),
             "parameters")
    check(resp["id"].startswith("msg_"), "message id")
    check_eq(resp["content"], [{"type": "text", "text": "mock: hello there"}], "content")
    check_eq((resp["stop_reason"], resp["stop_sequence"]), ("end_turn", None), "stop")
    check(resp["usage"]["input_tokens"] > 0, "usage in Anthropic's names")


def test_gemini_upstream_translated(stack):
    st, _, resp = _json(stack, _msg("hi gemini", "gem"))
    check_eq(st, 200, "status (%s)" % resp)
    check_eq(resp["content"][0]["text"], "mock: hi gemini", "content through Gemini")


def test_tools_round_trip(stack):
    st, _, resp = _json(stack, _msg("find it", "gpt", tools=TOOLS,
                                    tool_choice={"type": "tool", "name": "lookup"}))
    check_eq(st, 200, "status (%s)" % resp)
    sent = _last_upstream(stack.env, "/chat/completions")["json"]
    check_eq(sent["tools"][0]["function"]["name"], "lookup", "tool sent as a function")
    check_eq(sent["tool_choice"], {"type": "function", "function": {"name": "lookup"}},
             "tool_choice")
    use = [b for b in resp["content"] if b["type"] == "tool_use"]
    check(len(use) == 1 and use[0]["name"] == "lookup" and use[0]["input"] == {"arg": "value"},
          "tool_use block: %s" % resp["content"])
    check_eq(resp["stop_reason"], "tool_use", "stop_reason")
    follow = {"model": "gpt", "max_tokens": 64, "tools": TOOLS, "messages": [
        {"role": "user", "content": "find it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use[0]["id"],
                                           "name": "lookup", "input": {"arg": "value"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use[0]["id"],
                                      "content": "found: 42"}]}]}
    st, _, resp = _json(stack, follow)
    check_eq(st, 200, "second turn (%s)" % resp)
    sent = _last_upstream(stack.env, "/chat/completions")["json"]["messages"]
    check_eq(sent[1]["tool_calls"][0]["function"], {"name": "lookup",
                                                     "arguments": '{"arg":"value"}'}, "call")
    check_eq(sent[2], {"role": "tool", "tool_call_id": use[0]["id"], "content": "found: 42"},
             "tool result as a tool message")


def _check_sequence(events):
    names = [n for n, _ in events if n != "ping"]
    check_eq(names[0], "message_start", "first event")
    check_eq(names[-2:], ["message_delta", "message_stop"], "last events")
    for name, data in events:
        check_eq(data["type"], name, "event name matches its type")
    # Blocks open, take deltas and close in order.
    open_block = None
    for name, data in events:
        if name == "content_block_start":
            check(open_block is None, "one block at a time")
            open_block = data["index"]
        elif name == "content_block_delta":
            check_eq(data["index"], open_block, "delta for the open block")
        elif name == "content_block_stop":
            check_eq(data["index"], open_block, "stop for the open block")
            open_block = None
    check(open_block is None, "every block closed")


def test_stream_from_openai_upstream(stack):
    st, h, raw = _post(stack, _msg("stream me please", "gpt", stream=True))
    check_eq(st, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), "SSE")
    events = _events(raw)
    _check_sequence(events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    check_eq(text, "mock: stream me please", "streamed text")
    delta = [d for n, d in events if n == "message_delta"][0]
    check_eq(delta["delta"]["stop_reason"], "end_turn", "stop_reason")
    check(delta["usage"]["output_tokens"] > 0, "usage at the end")


def test_stream_tool_use_from_openai_upstream(stack):
    st, _, raw = _post(stack, _msg("find", "gpt", stream=True, tools=TOOLS))
    check_eq(st, 200, "status")
    events = _events(raw)
    _check_sequence(events)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    check(any(b["type"] == "tool_use" and b["name"] == "lookup" for b in starts), "tool_use block")
    args = "".join(d["delta"]["partial_json"] for n, d in events
                   if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    check_eq(json.loads(args), {"arg": "value"}, "input_json_delta pieces")
    check_eq([d for n, d in events if n == "message_delta"][0]["delta"]["stop_reason"],
             "tool_use", "stop_reason")


def test_stream_from_anthropic_upstream(stack):
    st, _, raw = _post(stack, _msg("relay me", "claude", stream=True))
    check_eq(st, 200, "status")
    events = _events(raw)
    _check_sequence(events)
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    check_eq(text, "mock: relay me", "text relayed")
    check(_last_upstream(stack.env, "/v1/messages")["json"]["stream"] is True, "streamed upstream")


def test_mock_response(stack):
    st, _, resp = _json(stack, _msg("anything", "canned"))
    check_eq((st, resp["content"][0]["text"]), (200, "canned answer"), "mock_response")


def test_errors_in_anthropic_shape(stack):
    st, _, err = _json(stack, {"model": "gpt", "messages": [{"role": "user", "content": "x"}]})
    check_eq((st, err["type"], err["error"]["type"]), (400, "error", "invalid_request_error"),
             "missing max_tokens")
    check("max_tokens" in err["error"]["message"], "names max_tokens")
    st, _, err = _json(stack, _msg("x", "gpt"), key="sk-wrong-key-000000000000")
    check_eq((st, err["error"]["type"]), (401, "authentication_error"), "bad key")
    st, _, err = _json(stack, _msg("x", "nope"))
    check_eq((st, err["error"]["type"]), (400, "invalid_request_error"), "unknown model")
    st, _, err = _json(stack, _msg("x", "claude-busy"))
    check_eq((st, err["error"]["type"]), (503, "overloaded_error"), "upstream 529")
    st, _, raw = stack.http.request("POST", "/v1/messages", None,
                                    {"x-api-key": MASTER_KEY, "Content-Type": "application/json"},
                                    raw=b"{not json")
    check_eq((st, json.loads(raw)["type"]), (400, "error"), "invalid JSON")
    st, _, err = _json(stack, {"model": "gpt", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "audio", "data": "x"}]}]})
    check_eq((st, err["error"]["type"]), (400, "invalid_request_error"), "unknown block type")


def test_virtual_key_and_spend_record(stack):
    st, _, k = stack.http.json("POST", "/key/generate", {"models": ["gpt"]}, stack.auth())
    check_eq(st, 200, "key")
    st, h, resp = _json(stack, _msg("billed", "gpt"), key=k["key"])
    check_eq(st, 200, "virtual key through x-api-key (%s)" % resp)
    st, _, err = _json(stack, _msg("billed", "claude"), key=k["key"])
    check_eq((st, err["error"]["type"]), (400, "invalid_request_error"), "model not allowed")
    st, _, resp = stack.http.json("POST", "/v1/messages", _msg("bearer", "gpt"),
                                  {"Authorization": "Bearer " + k["key"]})
    check_eq(st, 200, "Authorization: Bearer works too")
    pg = stack.env.pg
    wait_for(lambda: pg.query('SELECT call_type, model_group FROM "LiteLLM_SpendLogs" WHERE '
                              'request_id = \'%s\'' % h["x-litellm-call-id"]) ==
             [["anthropic_messages", "gpt"]], 10, what="the spend row")


def test_count_tokens(stack):
    body = {"model": "claude", "messages": [{"role": "user", "content": "count these words"}]}
    st, _, resp = _json(stack, body, path="/v1/messages/count_tokens")
    check_eq(st, 200, "status (%s)" % resp)
    check(resp["input_tokens"] > 1000, "Anthropic counts for an Anthropic model")
    sent = _last_upstream(stack.env, "/v1/messages/count_tokens")["json"]
    check("max_tokens" not in sent and sent["model"] == "claude-sonnet-4-5", "count body")
    body["model"] = "gpt"
    st, _, resp = _json(stack, body, path="/v1/messages/count_tokens")
    check_eq(st, 200, "status")
    check(0 < resp["input_tokens"] < 100, "estimated for others: %s" % resp)


def test_stream_cut_ends_with_error_event(stack):
    st, _, raw = _post(stack, _msg("cut me off", "gpt-cut", stream=True))
    check_eq(st, 200, "status")
    events = _events(raw)
    check_eq(events[0][0], "message_start", "started")
    check_eq(events[-1][0], "error", "ends with an error event")
    check_eq(events[-1][1]["type"], "error", "Anthropic's error shape")
    check(events[-1][1]["error"]["type"] in ("api_error", "overloaded_error"), "error type")
    check("message_stop" not in [n for n, _ in events], "no message_stop after a failure")


def _sdk_dir(stack):
    """The SDKs of tests/integration/sdk/package.json, installed once into build/node-sdk."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    target = os.path.join(root, "build", "node-sdk")
    os.makedirs(target, exist_ok=True)
    for name in ("package.json", "clients.mjs"):
        with open(os.path.join(here, "sdk", name), "rb") as src, \
                open(os.path.join(target, name), "wb") as dst:
            dst.write(src.read())
    if not os.path.isdir(os.path.join(target, "node_modules", "@anthropic-ai", "sdk")):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=target,
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "npm install of the SDKs failed: %s" % r.stderr[-500:])
    return target


def test_official_sdks(stack):
    """@anthropic-ai/sdk and openai (npm) as real clients: messages, stream events, tools,
    errors, and the OpenAI chat endpoints."""
    d = _sdk_dir(stack)
    r = subprocess.run(["node", "clients.mjs", "http://127.0.0.1:%d" % stack.port, MASTER_KEY,
                        "claude", "gpt"], cwd=d, capture_output=True, text=True, timeout=120)
    check_eq(r.returncode, 0, "SDK run (%s)" % r.stderr[-800:])
    out = json.loads(r.stdout)
    check_eq((out["message"]["type"], out["message"]["text"], out["message"]["stop"]),
             ("message", "mock: hello sdk", "end_turn"), "messages.create")
    check(out["message"]["usage"]["output_tokens"] > 0, "usage")
    check_eq(out["stream"]["text"], "mock: stream sdk", "messages.stream text")
    check_eq(out["stream"]["events"][0], "message_start", "stream events")
    check_eq(out["stream"]["events"][-1], "message_stop", "stream ends")
    check_eq((out["tool"]["name"], out["tool"]["input"], out["tool"]["stop"]),
             ("lookup", {"arg": "value"}, "tool_use"), "tool use")
    check_eq(out["error"], {"status": 400, "type": "invalid_request_error"}, "SDK sees the error")
    check_eq(out["chat"], "mock: hello openai sdk", "openai chat")
    check_eq(out["chat_stream"]["text"], "mock: stream openai sdk", "openai stream")
    check(out["chat_stream"]["usage_total"] > 0, "openai stream usage")
