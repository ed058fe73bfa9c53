"""Router: strategies, retries, fallbacks, cooldowns, /health, and the worker pool under faults.

Each strategy needs its own router (routing_strategy is router-wide), so tests here start
their own stacks; the mock provider is shared.
"""

import os
import signal
import threading
import time

from harness import (Http, Stack, check, check_eq, check_error, config, deployment, wait_for)

KEY = "sk-upstream-" + os.urandom(6).hex()


def _mock_hits(env, fragment):
    return sum(1 for r in env.mock.requests() if fragment in r["path"])


def _parallel(stack, n, threads, model="g", body_extra=None):
    """n chat requests over `threads` keep-alive connections; returns the response headers."""
    out = []
    lock = threading.Lock()
    todo = list(range(n))

    def run():
        http = Http(stack.port)
        while True:
            with lock:
                if not todo:
                    break
                todo.pop()
            body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
            body.update(body_extra or {})
            st, h, _ = http.json("POST", "/v1/chat/completions", body, stack.auth())
            with lock:
                out.append((st, h))
        http.close()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def _ids(results):
    counts = {}
    for st, h in results:
        check_eq(st, 200, "status")
        counts[h["x-litellm-model-id"]] = counts.get(h["x-litellm-model-id"], 0) + 1
    return counts


def _fast_slow(env, **router):
    m = env.mock.base
    return config([
        deployment("g", "openai/fast", m + "/v1", api_key=KEY, model_info={"id": "fast"}),
        deployment("g", "openai/slow", m + "/delay/150/v1", api_key=KEY,
                   model_info={"id": "slow"}),
    ], router=router)


def test_rpm_weights_shuffle(env):
    m = env.mock.base
    cfg = config([
        deployment("g", "openai/a", mock_response="a", rpm=100, model_info={"id": "a"}),
        deployment("g", "openai/b", mock_response="b", rpm=300, model_info={"id": "b"}),
    ])
    stack = Stack(env, cfg)
    try:
        counts = _ids(_parallel(stack, 400, 4))
        share = counts.get("b", 0) / 400.0
        # rpm 300:100 -> 75 %; sd ~2.2 points over 400 draws.
        check(0.65 <= share <= 0.85, "rpm-weighted share %.2f (%r)" % (share, counts))
        del m
    finally:
        stack.stop()


def test_least_busy_prefers_idle_deployment(env):
    stack = Stack(env, _fast_slow(env, routing_strategy="least-busy"))
    try:
        counts = _ids(_parallel(stack, 60, 6))
        # The slow one keeps calls in flight, so the idle fast one takes most; a shuffle
        # would split evenly.
        check(counts.get("fast", 0) >= 42, "least-busy: %r" % counts)
    finally:
        stack.stop()


def test_latency_based_prefers_fast_deployment(env):
    stack = Stack(env, _fast_slow(env, routing_strategy="latency-based-routing"))
    try:
        counts = _ids(_parallel(stack, 60, 1))
        check(counts.get("fast", 0) >= 45, "latency-based: %r" % counts)
        check(counts.get("slow", 0) >= 1, "the slow one is still explored: %r" % counts)
    finally:
        stack.stop()


def test_usage_based_respects_tpm(env):
    m = env.mock.base
    cfg = config([
        deployment("g", "openai/small", m + "/v1", api_key=KEY, tpm=20,
                   model_info={"id": "small"}),
        deployment("g", "openai/big", m + "/v1", api_key=KEY, model_info={"id": "big"}),
    ], router={"routing_strategy": "usage-based-routing-v2"})
    stack = Stack(env, cfg)
    try:
        while time.time() % 60 > 54:  # the counts must not straddle two minute windows
            time.sleep(0.5)
        counts = _ids(_parallel(stack, 30, 1))
        # Each mock answer uses 3 tokens: 'small' reaches its 20 tpm after 7 calls at most,
        # then only 'big' is used for the rest of the minute.
        check(1 <= counts.get("small", 0) <= 7, "tpm respected: %r" % counts)
    finally:
        stack.stop()


def test_fallback_to_another_group(env):
    m = env.mock.base
    cfg = config([
        deployment("primary", "openai/p", m + "/status/500/v1", api_key=KEY),
        deployment("backup", "openai/b", m + "/v1", api_key=KEY, model_info={"id": "b"}),
    ], router={"num_retries": 2, "fallbacks": [{"primary": ["backup"]}], "allowed_fails": 100})
    stack = Stack(env, cfg)
    try:
        env.mock.clear()
        status, h, body = stack.chat("primary", "hi")
        check_eq(status, 200, "served by the fallback")
        check_eq(h["x-litellm-model-group"], "backup", "group header")
        check_eq(h["x-litellm-attempted-fallbacks"], "1", "fallbacks header")
        check_eq(h["x-litellm-attempted-retries"], "2", "retries on the primary first")
        check_eq(body["model"], "backup", "model of the group that answered")
        paths = [r["path"] for r in env.mock.requests()]
        check_eq(paths, ["/status/500/v1/chat/completions"] * 3 + ["/v1/chat/completions"],
                 "sequence at the provider")
    finally:
        stack.stop()


def test_context_window_fallback(env):
    m = env.mock.base
    cfg = config([
        deployment("small-ctx", "openai/s", mock_response="litellm.ContextWindowExceededError"),
        deployment("big-ctx", "openai/b", m + "/v1", api_key=KEY),
        deployment("other", "openai/o", m + "/v1", api_key=KEY),
    ], router={"num_retries": 2, "context_window_fallbacks": [{"small-ctx": ["big-ctx"]}],
               "fallbacks": [{"small-ctx": ["other"]}]})
    stack = Stack(env, cfg)
    try:
        status, h, _ = stack.chat("small-ctx", "a long prompt")
        check_eq(status, 200, "status")
        check_eq(h["x-litellm-model-group"], "big-ctx", "context-window fallback chosen")
        check_eq(h["x-litellm-attempted-retries"], "0", "context errors are not retried")
    finally:
        stack.stop()


def test_default_fallbacks_and_no_fallback_on_client_error(env):
    m = env.mock.base
    cfg = config([
        deployment("a", "openai/a", m + "/status/503/retry-after/30/v1", api_key=KEY),
        deployment("bad-request", "openai/x", m + "/status/400/v1", api_key=KEY),
        deployment("safety", "openai/s", m + "/v1", api_key=KEY),
    ], router={"num_retries": 0, "default_fallbacks": ["safety"]})
    stack = Stack(env, cfg)
    try:
        status, h, _ = stack.chat("a")
        check_eq(status, 200, "default fallback")
        check_eq(h["x-litellm-model-group"], "safety", "served by the default fallback")
        status, _, body = stack.chat("bad-request")
        check_error(status, body, 400)
    finally:
        stack.stop()


def test_cooldown_then_recovery(env):
    m = env.mock.base
    cfg = config([
        deployment("g", "openai/bad", m + "/status/500/v1", api_key=KEY,
                   model_info={"id": "bad"}),
        deployment("g", "openai/good", m + "/v1", api_key=KEY, model_info={"id": "good"}),
    ], router={"num_retries": 1, "allowed_fails": 0, "cooldown_time": 1.5})
    stack = Stack(env, cfg)
    try:
        # Until 'bad' has failed once, requests may reach it (then retry on 'good').
        env.mock.clear()
        wait_for(lambda: _mock_hits(env, "/status/500/") > 0 or
                 stack.chat("g")[0] != 200, what="a failure on 'bad'")
        env.mock.clear()
        t0 = time.monotonic()
        for _ in range(20):
            check_eq(stack.chat("g")[0], 200, "status")
        if time.monotonic() - t0 < 1.2:
            check_eq(_mock_hits(env, "/status/500/"), 0, "nothing reaches 'bad' while it cools")
        time.sleep(1.6)
        env.mock.clear()
        for _ in range(30):
            stack.chat("g")
        check(_mock_hits(env, "/status/500/") > 0, "'bad' is tried again after cooldown_time")
    finally:
        stack.stop()


def test_all_cooling_answers_503_without_calling(env):
    m = env.mock.base
    cfg = config([deployment("solo", "openai/x", m + "/status/500/v1", api_key=KEY)],
                 router={"num_retries": 0, "allowed_fails": 0, "cooldown_time": 30})
    stack = Stack(env, cfg)
    try:
        env.mock.clear()
        status, _, body = stack.chat("solo")
        check_error(status, body, 502)
        status, h, body = stack.chat("solo")
        check_error(status, body, 503, "no_healthy_deployment")
        check(0 < int(h["retry-after"]) <= 30, "retry-after until the cooldown ends")
        check_eq(len(env.mock.requests()), 1, "the cooling deployment was not called again")
    finally:
        stack.stop()


def test_health_lists_endpoints_without_secrets(env):
    m = env.mock.base
    cfg = config([
        deployment("ok", "openai/gpt-ok", m + "/v1", api_key=KEY),
        deployment("ok", "openai/gpt-down", "http://127.0.0.1:9/v1", api_key=KEY),
        deployment("emb", "openai/e", m + "/v1", api_key=KEY, model_info={"mode": "embedding"}),
        deployment("mocked", "openai/m", mock_response="hi"),
    ])
    stack = Stack(env, cfg)
    try:
        status, _, body = stack.http.json("GET", "/health")
        check_error(status, body, 401)
        env.mock.clear()
        status, _, body = stack.http.json("GET", "/health", headers=stack.auth())
        check_eq(status, 200, "status")
        check_eq(body["healthy_count"], 3, "healthy: %r" % body)
        check_eq(body["unhealthy_count"], 1, "unhealthy")
        bad = body["unhealthy_endpoints"][0]
        check_eq(bad["model"], "openai/gpt-down", "which one")
        check("error" in bad and bad["error"], "error given")
        check(KEY not in str(body), "no key in /health")
        sent = [r["json"] for r in env.mock.requests()]
        chat = [s for s in sent if "messages" in s][0]
        check_eq(chat["max_tokens"], 1, "cheap check")
        check(any("input" in s for s in sent), "embedding checked with an embedding call")
        status, _, body = stack.http.json("GET", "/health?model=emb", headers=stack.auth())
        check_eq(body["healthy_count"] + body["unhealthy_count"], 1, "one group only")
    finally:
        stack.stop()


def test_worker_killed_mid_request_no_hang(env):
    m = env.mock.base
    cfg = config([deployment("slow", "openai/x", m + "/delay/800/v1", api_key=KEY)])
    stack = Stack(env, cfg, workers=2)
    try:
        results = []

        def call():
            t0 = time.monotonic()
            st, _, _ = Http(stack.port, timeout=20).json(
                "POST", "/v1/chat/completions",
                {"model": "slow", "messages": [{"role": "user", "content": "x"}]}, stack.auth())
            results.append((st, time.monotonic() - t0))
        ts = [threading.Thread(target=call) for _ in range(10)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        stack.workers[0].send(signal.SIGKILL)
        for t in ts:
            t.join()
        check_eq(len(results), 10, "every request answered")
        check(all(st == 200 for st, _ in results), "re-dispatched to the live worker: %r"
              % results)
        check(max(d for _, d in results) < 5.0, "no request hung: %r" % results)
        stack.procs.pop("worker0")  # killed on purpose
        stack.workers.pop(0)
    finally:
        stack.stop()


def test_added_worker_takes_load(env):
    m = env.mock.base
    cfg = config([deployment("slow", "openai/x", m + "/delay/300/v1", api_key=KEY)])
    stack = Stack(env, cfg, workers=1, extra_env={"WORKER_MAX_CALLS": "2"})
    try:
        stop = threading.Event()
        statuses = []

        def load():
            http = Http(stack.port)
            while not stop.is_set():
                st, _, _ = http.json("POST", "/v1/chat/completions",
                                     {"model": "slow", "messages": [
                                         {"role": "user", "content": "x"}]}, stack.auth())
                statuses.append(st)
            http.close()

        def peak(seconds):
            end = time.monotonic() + seconds
            best = 0
            while time.monotonic() < end:
                best = max(best, env.mock.stats()["active_requests"])
                time.sleep(0.02)
            return best
        ts = [threading.Thread(target=load) for _ in range(6)]
        for t in ts:
            t.start()
        one = peak(1.0)
        stack.add_worker()
        stack.wait_ready(2)
        two = peak(1.5)
        stop.set()
        for t in ts:
            t.join()
        check(all(st == 200 for st in statuses), "no failure while scaling")
        # Each worker runs at most 2 calls at once (its credits): the provider sees 2 calls
        # in flight with one worker and up to 4 once the second joins.
        check_eq(one, 2, "calls in flight with one worker")
        check(two >= 3, "the added worker took calls (peak %d in flight)" % two)
    finally:
        stack.stop()
