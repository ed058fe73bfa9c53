"""Streaming: SSE end to end, usage, faults mid-stream, client disconnect, back-pressure."""

import json
import os
import socket
import time

from harness import (MASTER_KEY, Stack, check, check_eq, check_error, config, deployment,
                     http_raw, rss_kb, wait_for)

KEY = "sk-upstream-" + os.urandom(6).hex()


def setup(env):
    m = env.mock.base
    models = [
        deployment("s", "openai/gpt-4o-mini", m + "/v1", api_key=KEY),
        deployment("s20", "openai/gpt-4o-mini", m + "/chunks/20/v1", api_key=KEY),
        deployment("truncated", "openai/x", m + "/truncate/chunks/10/v1", api_key=KEY),
        deployment("garbled", "openai/x", m + "/bad-sse/v1", api_key=KEY),
        deployment("limited", "openai/x", m + "/status/429/retry-after/30/v1", api_key=KEY),
        deployment("flaky", "openai/bad", m + "/status/503/retry-after/30/v1", api_key=KEY,
                   model_info={"id": "flaky-bad"}),
        deployment("flaky", "openai/good", m + "/v1", api_key=KEY,
                   model_info={"id": "flaky-good"}),
        deployment("slowstart", "openai/x", m + "/delay/3000/v1", api_key=KEY,
                   stream_timeout=0.4),
        deployment("stall", "openai/x", m + "/chunk-delay/3000/v1", api_key=KEY,
                   stream_timeout=0.4),
        deployment("drip", "openai/x", m + "/chunks/400/chunk-delay/20/v1", api_key=KEY),
        deployment("drip1", "openai/x", m + "/chunks/100000/chunk-delay/1/v1", api_key=KEY),
        deployment("big", "openai/x", m + "/chunks/200000/v1", api_key=KEY),
        deployment("bigidle", "openai/x", m + "/chunks/20000/v1", api_key=KEY,
                   stream_timeout=0.5),
        deployment("mocked", "openai/m", mock_response="one two three"),
    ]
    return Stack(env, config(models, router={"num_retries": 1}), workers=1,
                 db_url=env.pg.url)


def teardown(stack):
    stack.stop()
    logs = "\n".join(stack.logs().values())
    check(KEY not in logs, "provider key in a log")


def _chunks(events):
    check(events and events[-1] == "[DONE]", "stream ends with [DONE]: %r" % events[-2:])
    return [json.loads(e) for e in events[:-1]]


def _text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c.get("choices"))


def test_stream_shape_and_text(stack):
    status, h, events = stack.stream("s20", "count to three")
    check_eq(status, 200, "status")
    check(h["content-type"].startswith("text/event-stream"), "content type")
    check_eq(h.get("transfer-encoding"), "chunked", "chunked")
    chunks = _chunks(events)
    check(all(c["object"] == "chat.completion.chunk" for c in chunks), "object")
    check(all(c["model"] == "s20" for c in chunks), "model restamped on every chunk")
    check(len({c["id"] for c in chunks}) == 1, "one id")
    check_eq(chunks[0]["choices"][0]["delta"].get("role"), "assistant", "role first")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks
                if c["choices"][0].get("finish_reason")]
    check_eq(finishes, ["stop"], "finish_reason exactly once")
    content = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    check_eq(len(content), 20, "every provider chunk relayed")
    text = _text(chunks)
    check(text.startswith("mock: count to three"), "reassembled text: %r" % text)
    check(all("usage" not in c for c in chunks), "no usage without include_usage")


def test_usage_chunk_when_asked(stack):
    status, _, events = stack.stream("s", "usage please",
                                     {"stream_options": {"include_usage": True}})
    check_eq(status, 200, "status")
    chunks = _chunks(events)
    last = chunks[-1]
    check_eq(last["choices"], [], "usage chunk has no choices")
    u = last["usage"]
    check(u["prompt_tokens"] > 0 and u["completion_tokens"] > 0, "usage %r" % u)
    check_eq(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"], "total")
    sent = stack.env.mock.requests()[-1]["json"]
    check_eq(sent["stream"], True, "stream sent upstream")
    check_eq(sent["stream_options"], {"include_usage": True}, "usage asked upstream")


def test_stream_usage_recorded(stack):
    pg = stack.env.pg
    status, h, events = stack.stream("s", "record this stream")
    check_eq(status, 200, "status")
    rid = h["x-litellm-call-id"]
    rows = wait_for(lambda: pg.query(
        'SELECT status, prompt_tokens, completion_tokens, ttft_ms IS NOT NULL, '
        '"completionStartTime" <= "endTime", http_status FROM "LiteLLM_SpendLogs" '
        'WHERE request_id = \'%s\'' % rid), what="stream row")
    r = rows[0]
    check_eq(r[0], "success", "status")
    check(int(r[1]) > 0 and int(r[2]) > 0, "tokens from the provider's usage: %r" % r)
    check_eq(r[3], "t", "ttft recorded")
    check_eq(r[4], "t", "completion start within the call")


def test_truncated_upstream_ends_with_error_event(stack):
    pg = stack.env.pg
    status, h, events = stack.stream("truncated")
    check_eq(status, 200, "headers were already sent")
    check(events[-1] != "[DONE]", "no success terminator after a truncated stream")
    err = json.loads(events[-1])
    check_eq(err["error"]["code"], "upstream_stream_truncated", "error event")
    rows = wait_for(lambda: pg.query(
        'SELECT status, error_type, completion_tokens FROM "LiteLLM_SpendLogs" '
        'WHERE request_id = \'%s\'' % h["x-litellm-call-id"]), what="row")
    check_eq(rows[0][0], "failure", "recorded as a failure")
    check_eq(rows[0][1], "upstream_stream_truncated", "error type")
    check(int(rows[0][2]) > 0, "tokens counted up to the cut")


def test_invalid_json_event(stack):
    status, _, events = stack.stream("garbled")
    check_eq(status, 200, "status")
    err = json.loads(events[-1])
    check_eq(err["error"]["code"], "invalid_upstream_stream", "error event")
    check(events[-1] != "[DONE]", "no [DONE]")


def test_failure_before_first_byte_is_a_json_error(stack):
    status, h, body = stack.stream("limited")
    check_error(status, body, 429)
    check_eq(h.get("retry-after"), "30", "retry-after")


def test_failure_before_first_byte_is_retried(stack):
    for _ in range(4):
        status, h, events = stack.stream("flaky")
        check_eq(status, 200, "retried on the good deployment")
        check_eq(h["x-litellm-model-id"], "flaky-good", "served by")
        _chunks(events)


def test_stream_timeout_before_first_byte(stack):
    status, _, body = stack.stream("slowstart")
    check_error(status, body, 408, "stream_timeout")


def test_stream_stall_ends_with_error_event(stack):
    status, _, events = stack.stream("stall")
    check_eq(status, 200, "status")
    err = json.loads(events[-1])
    check_eq(err["error"]["code"], "stream_timeout", "stall error event")


def test_mock_response_stream(stack):
    status, _, events = stack.stream("mocked", "x", {"stream_options": {"include_usage": True}})
    check_eq(status, 200, "status")
    chunks = _chunks(events)
    check_eq(_text(chunks), "one two three", "text")
    check(chunks[-1]["usage"]["completion_tokens"] > 0, "usage chunk")


def _read_until(sock, marker, limit=1 << 20):
    buf = b""
    while marker not in buf and len(buf) < limit:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf


def test_client_disconnect_cancels_upstream(stack):
    mock = stack.env.mock
    pg = stack.env.pg
    before = mock.stats()["connections_closed"]
    body = {"model": "drip", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    s = http_raw(stack.port, "POST", "/v1/chat/completions", body,
                 {"Authorization": "Bearer " + MASTER_KEY})
    head = _read_until(s, b'"content"')
    check(b"200 OK" in head, "stream started")
    rid = [ln.split(b": ")[1].strip().decode() for ln in head.split(b"\r\n")
           if ln.lower().startswith(b"x-litellm-call-id")][0]
    time.sleep(0.2)  # a few chunks flow
    s.close()
    t0 = time.monotonic()
    wait_for(lambda: mock.stats()["connections_closed"] > before, timeout=5,
             what="the provider connection closed")
    elapsed = time.monotonic() - t0
    check(elapsed < 2.0, "upstream cancelled %.2fs after the client left" % elapsed)
    check_eq(mock.stats()["active_requests"], 0, "no upstream request left running")
    rows = wait_for(lambda: pg.query(
        'SELECT status, http_status, error_type, completion_tokens, metadata->>\'client_gone\' '
        'FROM "LiteLLM_SpendLogs" WHERE request_id = \'%s\'' % rid), timeout=8,
        what="the client-gone row")
    r = rows[0]
    check_eq(r[:3], ["failure", "499", "client_closed_request"], "recorded as client gone")
    check(int(r[3]) > 0, "tokens relayed before the cut are counted: %r" % r)
    check_eq(r[4], "true", "client_gone in metadata")


def _send_queue(local_port, peer_port):
    """Bytes the kernel holds unsent on the TCP socket local_port -> peer_port (IPv4)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if (int(cols[1].split(":")[1], 16) == local_port and
                    int(cols[2].split(":")[1], 16) == peer_port):
                return int(cols[4].split(":")[0], 16)
    return None


def test_stalled_reader_of_small_events(stack):
    """A client stops reading a stream of small events (one a millisecond). Once the kernel's
    buffers are full, the gateway holds about the credit window's bytes (256 KiB) for it: a
    queued event no longer keeps one of libzmq's 8 KiB receive buffers alive (that was ~10 MB
    here, some 40 times the bytes)."""
    if stack.env.sanitized:
        return  # RSS says nothing under ASan (see Env)
    gw = stack.procs["gateway"].p.pid
    base = rss_kb(gw)
    body = json.dumps({"model": "drip1", "stream": True,
                       "messages": [{"role": "user", "content": "x"}]}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", stack.port))
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + MASTER_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        _read_until(s, b"data:")
        port = s.getsockname()[1]
        # The gateway's send queue to us grows until the kernel takes no more (~3 MB here).
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - since < 1.5:
            check(time.monotonic() < deadline, "the send queue never stopped growing")
            q = _send_queue(stack.port, port)
            check(q is not None, "the client's connection is open")
            if q != last:
                last, since = q, time.monotonic()
            time.sleep(0.1)
        # Then the credit window (256 KiB at ~200 B an event, about 1.3 s) fills the gateway's
        # queue: until its RSS holds still.
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 1.5:
            check(time.monotonic() < deadline, "the gateway's memory never settled")
            r = rss_kb(gw)
            if r != last:
                last, since = r, time.monotonic()
            time.sleep(0.1)
        grown = rss_kb(gw) - base
        check(grown < 3 * 1024, "gateway grew %d KiB for one stalled client" % grown)
    finally:
        s.close()


def test_slow_reader_bounded_memory(stack):
    gw = stack.procs["gateway"].p.pid
    wk = stack.workers[0].p.pid
    base = {gw: rss_kb(gw), wk: rss_kb(wk)}
    body = {"model": "big", "stream": True, "messages": [{"role": "user", "content": "x" * 150}]}
    s = http_raw(stack.port, "POST", "/v1/chat/completions", body,
                 {"Authorization": "Bearer " + MASTER_KEY})
    _read_until(s, b"data:")
    time.sleep(1.5)  # the client reads nothing; ~45 MB wait upstream
    grown = {pid: rss_kb(pid) - base[pid] for pid in base}
    if not stack.env.sanitized:
        check(grown[gw] < 6 * 1024, "gateway grew %d KiB while the client stalled" % grown[gw])
        check(grown[wk] < 6 * 1024, "worker grew %d KiB while the client stalled" % grown[wk])
    # Without back-pressure the ~45 MB would now sit in the gateway's queue (or the
    # worker's): the bounds above fail long before that.
    total = 0
    tail = b""
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        total += len(data)
        tail = (tail + data)[-64:]
        if b"data: [DONE]" in tail:
            break
    s.close()
    check(b"[DONE]" in tail, "the whole stream arrived after the stall (%d bytes)" % total)
    check(total > 8 * 1024 * 1024, "a large stream went through: %d bytes" % total)


def test_stalled_reader_is_not_a_stalled_provider(stack):
    """A client that stops reading pauses the provider stream; stream_timeout (0.5 s here)
    measures the provider's silence, not the client's, so the stream completes."""
    body = {"model": "bigidle", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    s = http_raw(stack.port, "POST", "/v1/chat/completions", body,
                 {"Authorization": "Bearer " + MASTER_KEY})
    _read_until(s, b"data:")
    time.sleep(1.5)
    seen = b""
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        seen = (seen + data)[-4096:]
        if b"data: [DONE]" in seen:
            break
    s.close()
    check(b"[DONE]" in seen and b"stream_timeout" not in seen,
          "the stream ended normally after the client's pause")
