"""OpenAI-compatible answers are relayed as the provider wrote them: only `model` is restamped
and, in streams, `usage` is cut when the client did not ask for it. Broken answers are 502s."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (MASTER_KEY, Stack, check, check_eq, check_error, config, deployment,
                     sse_events)

# What the scripted provider answers, by the first path segment of the request, and how
# many requests each segment got.
ANSWERS = {}
CALLS = {}


class _Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        name = self.path.split("/")[1]
        CALLS[name] = CALLS.get(name, 0) + 1
        kind, payload = ANSWERS[name]
        if kind == "sse":  # an event's lines each get a data field
            payload = b"".join(b"".join(b"data: " + ln + b"\n" for ln in e.split(b"\n")) + b"\n"
                               for e in payload)
        self.send_response(200)
        self.send_header("Content-Type",
                         "text/event-stream" if kind == "sse" else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def setup(env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    models = [deployment(name, "openai/provider-model", "%s/%s/v1" % (base, name),
                         api_key="sk-relay-upstream")
              for name in ("exact", "nomodel", "dupmodel", "overlong", "notlist", "array",
                           "stream", "streamlines", "streambad", "msgdup")]
    for name in ("claude", "claudejson"):
        models.append(deployment(name, "anthropic/claude-x", "%s/%s" % (base, name),
                                 api_key="sk-relay-upstream", input_cost_per_token=1,
                                 output_cost_per_token=1000))
    stack = Stack(env, config(models, router={"num_retries": 0}), name="relay")
    stack.provider = server
    stack.base = base
    stack.cached = None
    return stack


def _cached_stack(stack):
    """A second stack on the same scripted provider, with the response cache on."""
    if not stack.cached:
        models = [deployment("spaced", "openai/provider-model", stack.base + "/spaced/v1",
                             api_key="sk-relay-upstream"),
                  deployment("emb", "openai/embed-model", stack.base + "/emb/v1",
                             api_key="sk-relay-upstream", model_info={"mode": "embedding"})]
        stack.cached = Stack(stack.env, config(models, router={"num_retries": 0}, litellm={
            "cache": True, "cache_params": {"type": "local", "ttl": 60}}), name="relaycache")
    return stack.cached


def teardown(stack):
    stack.stop()
    if getattr(stack, "cached", None):
        stack.cached.stop()
    stack.provider.shutdown()


def _chat(stack, model, stream=False, include_usage=False):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return stack.http.request("POST", "/v1/chat/completions", body,
                              {"Authorization": "Bearer " + MASTER_KEY})


def _messages(stack, model, stream=False):
    """A /v1/messages call, as Anthropic's SDK makes it."""
    body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    return stack.http.request("POST", "/v1/messages", body,
                              {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"})


CHOICES = b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},' \
          b'"finish_reason":"stop"}]'
USAGE = b'"usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}'


def test_answer_relayed_byte_for_byte(stack):
    """Spacing, escapes, number forms and unknown fields reach the client untouched."""
    head = b'{ "id" : "x1",\n  "object":"chat.completion", "model" : '
    tail = (b', "extra": {"k": [1, 2.50, 1e3, "\\u00e9\\/"], "service_tier": null}, ' +
            CHOICES + b', ' + USAGE + b' }\n')
    ANSWERS["exact"] = ("json", head + b'"provider-model-2024-08-06"' + tail)
    st, _, raw = _chat(stack, "exact")
    check_eq(st, 200, "status")
    check_eq(raw, head + b'"exact"' + tail, "relayed body")


def test_answer_without_model_gets_one(stack):
    ANSWERS["nomodel"] = ("json", b'{"id":"x2",' + CHOICES + b',' + USAGE + b'}')
    st, _, raw = _chat(stack, "nomodel")
    check_eq(st, 200, "status")
    got = json.loads(raw)
    check_eq(got["model"], "nomodel", "model")
    check_eq(got["usage"]["total_tokens"], 4, "usage")


def test_broken_answers_are_502(stack):
    ANSWERS["dupmodel"] = ("json", b'{"model":"a","model":"b",' + CHOICES + b'}')
    ANSWERS["overlong"] = ("json", b'{"model":"a","x":"\xc0\xaf",' + CHOICES + b'}')
    ANSWERS["notlist"] = ("json", b'{"model":"a","choices":{}}')
    ANSWERS["array"] = ("json", b'[{"model":"a",' + CHOICES + b'}]')
    for name in ("dupmodel", "overlong", "notlist", "array"):
        st, _, raw = _chat(stack, name)
        check_error(st, json.loads(raw), 502, "invalid_upstream_response")


def _chunk(extra):
    return (b'{"id":"c1","object":"chat.completion.chunk","created":1700000000,'
            b'"model":"provider-model",' + extra + b'}')


def test_stream_usage_cut_and_model_restamped(stack):
    delta = b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]'
    first = b'{"usage":null, "id":"c1","model":"provider-model",' + delta + b'}'
    middle = _chunk(b'"usage" : null ,' + delta)
    last = _chunk(delta.replace(b'null}]', b'"stop"}]') + b',"usage":null')
    usage = _chunk(b'"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,'
                   b'"total_tokens":7}')
    ANSWERS["stream"] = ("sse", [first, middle, last, usage, b"[DONE]"])
    st, _, raw = _chat(stack, "stream", stream=True)
    check_eq(st, 200, "status")
    events = sse_events(raw)
    check_eq(events[-1], "[DONE]", "terminator")
    want = [b'{ "id":"c1","model":"stream",' + delta + b'}',
            _chunk(delta).replace(b'"provider-model",', b'"stream" ,'),  # spacing kept
            _chunk(delta.replace(b'null}]', b'"stop"}]')).replace(b'"provider-model"',
                                                                   b'"stream"')]
    check_eq([e.encode() for e in events[:-1]], want, "relayed chunks")
    # Asked for: every chunk keeps its usage member and the usage chunk comes last.
    st, _, raw = _chat(stack, "stream", stream=True, include_usage=True)
    events = sse_events(raw)
    check_eq(len(events), 5, "events with usage")
    check_eq(events[0].encode(), first.replace(b'"provider-model"', b'"stream"'), "first")
    final = json.loads(events[3])
    check_eq((final["choices"], final["usage"]["total_tokens"], final["model"]),
             ([], 7, "stream"), "usage chunk")


def test_stream_invalid_event_ends_with_error(stack):
    ok = _chunk(b'"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]')
    ANSWERS["streambad"] = ("sse", [ok, b'{"choices":[{"delta":{"content":"\xed\xa0\x80"}}]}',
                                    b"[DONE]"])
    st, _, raw = _chat(stack, "streambad", stream=True)
    check_eq(st, 200, "status")
    events = sse_events(raw)
    check_eq(json.loads(events[0])["model"], "streambad", "first chunk relayed")
    err = json.loads(events[-1])
    check_eq(err["error"]["code"], "invalid_upstream_stream", "error event")
    check("[DONE]" not in events, "no terminator after a broken stream")


def test_stream_event_on_several_lines_stays_one_line(stack):
    """A provider may lay an event's JSON over several data lines; the client gets one."""
    pretty = json.dumps({"id": "c1", "model": "provider-model", "choices": [
        {"index": 0, "delta": {"content": "a\nb"}, "finish_reason": "stop"}]},
        indent=1).encode()
    check(pretty.count(b"\n") > 3, "the event spans lines")
    ANSWERS["streamlines"] = ("sse", [pretty, b"[DONE]"])
    st, _, raw = _chat(stack, "streamlines", stream=True)
    check_eq(st, 200, "status")
    check_eq(raw.count(b"data: "), 2, "data lines")
    events = sse_events(raw)
    got = json.loads(events[0])
    check_eq((got["model"], got["choices"][0]["delta"]["content"]), ("streamlines", "a\nb"),
             "event")
    check_eq(events[0].encode(), pretty.replace(b"\n", b" ").replace(b'"provider-model"',
                                                                     b'"streamlines"'), "bytes")


def test_anthropic_passthrough_event_on_several_lines(stack):
    """/v1/messages to Anthropic relays events as they came, each on one data line."""
    start = {"type": "message_start", "message": {"id": "m1", "type": "message",
             "role": "assistant", "model": "claude-x", "content": [],
             "usage": {"input_tokens": 3, "output_tokens": 0}}}
    delta = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": "hi\n"}}
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
           "usage": {"output_tokens": 2}}
    events = [json.dumps(e, indent=2).encode() for e in (start, delta, end)]
    events.append(b'{"type":"message_stop"}')
    ANSWERS["claude"] = ("sse", events)
    st, _, raw = _messages(stack, "claude", stream=True)
    check_eq(st, 200, "status")
    check_eq(raw.count(b"data: "), 4, "one data line per event")
    got = [json.loads(d) for d in sse_events(raw)]
    check_eq(got[:3], [start, delta, end], "events")


def test_anthropic_passthrough_answer_byte_for_byte(stack):
    """/v1/messages to Anthropic: the answer's bytes untouched, its usage read for the cost."""
    answer = (b'{ "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",\n'
              b' "content": [{"type": "text", "text": "h\\u00e9"}], "stop_reason": "end_turn",'
              b' "usage": {"input_tokens": 3, "cache_read_input_tokens": 2,'
              b' "output_tokens": 5} }')
    ANSWERS["claudejson"] = ("json", answer)
    st, h, raw = _messages(stack, "claudejson")
    check_eq(st, 200, "status")
    check_eq(raw, answer, "relayed answer")
    # input 3 + cache read 2 at 1 each, output 5 at 1000 each
    check_eq(float(h["x-litellm-response-cost"]), 5005.0, "cost from the usage read")
    ANSWERS["claudejson"] = ("json", b'{"type":"message","type":"x"')
    st, _, raw = _messages(stack, "claudejson")
    check_eq(st, 502, "truncated answer")


def test_translated_stream_refuses_what_it_cannot_translate(stack):
    """A /v1/messages client on an OpenAI provider: a chunk the translation cannot read (a
    repeated key) ends the stream with an error event; no text is dropped silently."""
    ok = _chunk(b'"choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]')
    dup = _chunk(b'"choices":[{"index":0,"index":0,"delta":{"content":"world"},'
                 b'"finish_reason":null}]')
    ANSWERS["msgdup"] = ("sse", [ok, dup, b"[DONE]"])
    st, _, raw = _messages(stack, "msgdup", stream=True)
    check_eq(st, 200, "status")
    events = [json.loads(d) for d in sse_events(raw)]
    texts = [e["delta"]["text"] for e in events if e.get("type") == "content_block_delta"]
    check_eq(texts, ["Hello "], "text before the bad chunk")
    check_eq(events[-1]["type"], "error", "the stream ends with an error event")
    check("message_stop" not in [e.get("type") for e in events], "no clean end")


def test_cache_keeps_answers_relayed_with_their_spacing(stack):
    """An answer relayed as written may start with blanks: it is cached all the same."""
    cached = _cached_stack(stack)
    ANSWERS["spaced"] = ("json", b' \n {"id":"x9","object":"chat.completion",' + CHOICES + b','
                         + USAGE + b'}')
    body = {"model": "spaced", "messages": [{"role": "user", "content": "spacing"}]}
    before = CALLS.get("spaced", 0)
    st1, _, first = cached.http.json("POST", "/v1/chat/completions", body, cached.auth())
    st2, h, second = cached.http.json("POST", "/v1/chat/completions", body, cached.auth())
    check_eq((st1, st2), (200, 200), "statuses")
    check_eq(CALLS.get("spaced", 0) - before, 1, "one provider call for two answers")
    check_eq(second, first, "the cached answer")
    check("x-litellm-cache-key" in h, "the second was a hit")


def test_cache_refuses_a_partial_embeddings_merge(stack):
    """Some inputs cached, and the provider's answer for the others cannot be merged: a 502,
    never a list with items missing."""
    cached = _cached_stack(stack)
    ok = (b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],'
          b'"model":"embed-model","usage":{"prompt_tokens":1,"total_tokens":1}}')
    ANSWERS["emb"] = ("json", ok)
    st, _, first = cached.http.json("POST", "/v1/embeddings", {"model": "emb", "input": ["a"]},
                                    cached.auth())
    check_eq(st, 200, "first input")
    ANSWERS["emb"] = ("json", ok.replace(b'"index":0', b'"index":7'))
    st, _, body = cached.http.json("POST", "/v1/embeddings",
                                   {"model": "emb", "input": ["a", "b"]}, cached.auth())
    check_error(st, body, 502, "invalid_upstream_response")
