"""Foundation: a chat completion end to end through gateway, router, worker and logger.

One stack serves every test here; the mock provider is reached through api_base paths
that choose its behaviour (see tests/mock/mock_upstream.c).
"""

import hashlib
import json
import os
import subprocess
import threading

from harness import (MASTER_KEY, Http, Stack, check, check_eq, check_error, config,
                     deployment, wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(8).hex()


def setup(env):
    m = env.mock.base
    models = [
        deployment("demo", "openai/demo", mock_response="Hello from the mock deployment"),
        deployment("gpt-mock", "openai/gpt-4o-mini", m + "/v1", api_key=UPSTREAM_KEY,
                   temperature=0.25),
        deployment("groq-mock", "groq/llama-3.3-70b-versatile", m + "/openai/v1",
                   api_key=UPSTREAM_KEY),
        deployment("openrouter-mock", "openrouter/meta-llama/llama-3.3-70b", m + "/api/v1",
                   api_key=UPSTREAM_KEY),
        deployment("cerebras-mock", "cerebras/llama-3.3-70b", m + "/v1", api_key=UPSTREAM_KEY),
        deployment("limited", "openai/x", m + "/status/429/retry-after/30/v1",
                   api_key=UPSTREAM_KEY),
        deployment("limited-short", "openai/x", m + "/status/429/retry-after/1/v1",
                   api_key=UPSTREAM_KEY),
        deployment("broken", "openai/x", m + "/status/500/v1", api_key=UPSTREAM_KEY),
        deployment("overloaded", "openai/x", m + "/status/529/v1", api_key=UPSTREAM_KEY),
        deployment("badkey", "openai/x", m + "/status/401/v1", api_key=UPSTREAM_KEY),
        deployment("slow", "openai/x", m + "/delay/3000/v1", api_key=UPSTREAM_KEY, timeout=0.5),
        deployment("garbage", "openai/x", m + "/garbage/v1", api_key=UPSTREAM_KEY),
        deployment("refused", "openai/x", "http://127.0.0.1:9/v1", api_key=UPSTREAM_KEY),
        deployment("flaky", "openai/bad", m + "/status/500/v1", api_key=UPSTREAM_KEY,
                   model_info={"id": "flaky-bad"}),
        deployment("flaky", "openai/good", m + "/v1", api_key=UPSTREAM_KEY,
                   model_info={"id": "flaky-good"}),
        deployment("weighted", "openai/light", mock_response="light", weight=1,
                   model_info={"id": "light"}),
        deployment("weighted", "openai/heavy", mock_response="heavy", weight=3,
                   model_info={"id": "heavy"}),
        deployment("embed", "openai/text-embedding-3-small", m + "/v1", api_key=UPSTREAM_KEY,
                   model_info={"mode": "embedding"}),
    ]
    cfg = config(models, router={"num_retries": 1})
    return Stack(env, cfg, workers=2, db_url=env.pg.url)


def teardown(stack):
    stack.stop()
    logs = "\n".join(stack.logs().values()) + "\n".join(stack.logger_lines())
    check(UPSTREAM_KEY not in logs, "a provider key appeared in a daemon log")
    check(MASTER_KEY not in logs, "the master key appeared in a daemon log")


def test_liveliness_is_public(stack):
    status, h, body = stack.http.json("GET", "/health/liveliness")
    check_eq(status, 200, "status")
    check_eq(body, "I'm alive!", "body")
    check(float(h["x-litellm-overhead-duration-ms"]) >= 0, "overhead header on every answer")


def test_readiness_reports_router_workers_and_db(stack):
    status, _, body = stack.http.json("GET", "/health/readiness")
    check_eq(status, 200, "status")
    check_eq(body["status"], "healthy", "status field")
    check_eq(body["router"], "connected", "router")
    check_eq(body["workers"], 2, "workers")
    wait_for(lambda: stack.http.json("GET", "/health/readiness")[2]["db"] == "connected",
             what="db connected")


def test_models_need_a_key(stack):
    status, h, body = stack.http.json("GET", "/v1/models")
    check_error(status, body, 401, "missing_api_key", "authentication_error")
    check_eq(h.get("www-authenticate"), "Bearer", "www-authenticate")
    check_eq(h["x-litellm-overhead-duration-ms"], h["x-litellm-response-duration-ms"],
             "a refusal is all overhead")
    status, _, body = stack.http.json("GET", "/v1/models", headers=stack.auth("sk-wrong-key-00000"))
    check_error(status, body, 401, "invalid_api_key")
    status, _, body = stack.http.json("GET", "/models",
                                      headers={"Authorization": "Basic " + MASTER_KEY})
    check_error(status, body, 401, "invalid_api_key")


def test_models_list_groups(stack):
    for path in ("/models", "/v1/models"):
        status, _, body = stack.http.json("GET", path, headers=stack.auth())
        check_eq(status, 200, path)
        check_eq(body["object"], "list", "object")
        ids = [m["id"] for m in body["data"]]
        check_eq(ids[:3], ["demo", "gpt-mock", "groq-mock"], "first groups in file order")
        check_eq(ids.count("flaky"), 1, "groups listed once")
        check(all(m["object"] == "model" for m in body["data"]), "object=model")


def test_other_key_headers_accepted(stack):
    for header in ("x-api-key", "x-litellm-api-key"):
        status, _, _ = stack.http.json("GET", "/v1/models", headers={header: MASTER_KEY})
        check_eq(status, 200, header)


def test_mock_response_from_config(stack):
    stack.env.mock.clear()
    status, h, body = stack.chat("demo", "hi")
    check_eq(status, 200, "status")
    check_eq(body["object"], "chat.completion", "object")
    check_eq(body["model"], "demo", "model")
    check_eq(body["choices"][0]["message"],
             {"role": "assistant", "content": "Hello from the mock deployment"}, "message")
    check_eq(body["choices"][0]["finish_reason"], "stop", "finish_reason")
    u = body["usage"]
    check(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0, "usage")
    check(len(h["x-litellm-call-id"]) == 36, "call id header")
    check_eq(h["x-litellm-model-group"], "demo", "model group header")
    check_eq(stack.env.mock.requests(), [], "mock_response must not call a provider")
    check(float(h["x-litellm-overhead-duration-ms"]) >= 0, "overhead header without a call")


def test_mock_response_from_request(stack):
    status, _, body = stack.chat("gpt-mock", "hi", {"mock_response": "per-request answer"})
    check_eq(status, 200, "status")
    check_eq(body["choices"][0]["message"]["content"], "per-request answer", "content")


def test_openai_compatible_call(stack):
    mock = stack.env.mock
    mock.clear()
    msgs = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is 2+2?"}]}]
    body = {"model": "gpt-mock", "messages": msgs, "max_tokens": 20, "user": "alice",
            "metadata": {"tag": "x"}, "seed": 7}
    status, h, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
    check_eq(status, 200, "status")
    check_eq(resp["model"], "gpt-mock", "model restamped to the group")
    check_eq(resp["choices"][0]["message"]["content"], "mock: what is 2+2?", "content")
    check(resp["usage"]["prompt_tokens"] > 0, "usage passed through")
    reqs = mock.requests()
    check_eq(len(reqs), 1, "upstream calls")
    r = reqs[0]
    check_eq(r["method"], "POST", "method")
    check_eq(r["path"], "/v1/chat/completions", "upstream path")
    check_eq(r["headers"]["authorization"], "Bearer " + UPSTREAM_KEY, "upstream auth")
    check_eq(r["headers"]["content-type"], "application/json", "content-type")
    sent = r["json"]
    check_eq(sent["model"], "gpt-4o-mini", "provider model name")
    check_eq(sent["messages"], msgs, "messages unchanged")
    check_eq(sent["max_tokens"], 20, "max_tokens")
    check_eq(sent["seed"], 7, "seed")
    check_eq(sent["user"], "alice", "user")
    check_eq(sent["temperature"], 0.25, "litellm_params default applied")
    check("metadata" not in sent, "proxy-only metadata must not go upstream")
    check_eq(h["x-litellm-model-api-base"], stack.env.mock.base + "/v1", "api base header")
    check(float(h["x-litellm-overhead-duration-ms"]) >= 0, "overhead header")
    check_eq(h["x-litellm-attempted-retries"], "0", "retries header")


def test_request_overrides_litellm_params(stack):
    mock = stack.env.mock
    mock.clear()
    status, _, _ = stack.chat("gpt-mock", "x", {"temperature": 0.9})
    check_eq(status, 200, "status")
    check_eq(mock.requests()[0]["json"]["temperature"], 0.9, "client temperature wins")


def test_bare_path_and_prefixes(stack):
    mock = stack.env.mock
    for group, path, model in (("groq-mock", "/openai/v1/chat/completions",
                                "llama-3.3-70b-versatile"),
                               ("openrouter-mock", "/api/v1/chat/completions",
                                "meta-llama/llama-3.3-70b"),
                               ("cerebras-mock", "/v1/chat/completions", "llama-3.3-70b")):
        mock.clear()
        body = {"model": group, "messages": [{"role": "user", "content": "hey"}]}
        status, _, resp = stack.http.json("POST", "/chat/completions", body, stack.auth())
        check_eq(status, 200, group)
        check_eq(resp["model"], group, "model")
        r = mock.requests()[0]
        check_eq(r["path"], path, group + " path")
        check_eq(r["json"]["model"], model, group + " model")


def test_embeddings(stack):
    status, _, body = stack.http.json("POST", "/v1/embeddings",
                                      {"model": "embed", "input": ["a", "b"]}, stack.auth())
    check_eq(status, 200, "status")
    check_eq(body["object"], "list", "object")
    check_eq([d["index"] for d in body["data"]], [0, 1], "order kept")


def test_bad_json_and_fields(stack):
    h = dict(stack.auth(), **{"Content-Type": "application/json"})
    status, _, body = stack.http.json("POST", "/v1/chat/completions", raw=b'{"model": "demo",',
                                      headers=h)
    check_error(status, body, 400, "invalid_json", "invalid_request_error")
    status, _, body = stack.http.json("POST", "/v1/chat/completions", raw=b'[1,2]', headers=h)
    check_error(status, body, 400, "invalid_json")
    status, _, body = stack.http.json("POST", "/v1/chat/completions",
                                      raw=b'{"model":"demo","model":"x","messages":[]}',
                                      headers=h)
    check_error(status, body, 400, "invalid_json")
    status, _, body = stack.http.json("POST", "/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": "x"}]},
                                      stack.auth())
    e = check_error(status, body, 400)
    check_eq(e["param"], "model", "param")
    status, _, body = stack.http.json("POST", "/v1/chat/completions", {"model": "demo"},
                                      stack.auth())
    e = check_error(status, body, 400)
    check_eq(e["param"], "messages", "param")
    status, _, body = stack.http.json("POST", "/v1/chat/completions",
                                      raw=b'{"model":"demo","messages":[{"role":"user"}]}',
                                      headers=dict(stack.auth(), **{"Content-Type": "text/plain"}))
    check_error(status, body, 415)


def test_unknown_model(stack):
    status, _, body = stack.chat("no-such-model")
    e = check_error(status, body, 400, "model_not_found")
    check("no-such-model" in e["message"], "message names the model")


def test_unknown_route_and_method(stack):
    status, _, body = stack.http.json("GET", "/v1/nothing-here", headers=stack.auth())
    check_error(status, body, 404)
    status, _, body = stack.http.json("GET", "/v1/chat/completions", headers=stack.auth())
    check_error(status, body, 405)


def test_unauthenticated_chat_never_reaches_upstream(stack):
    stack.env.mock.clear()
    body = {"model": "gpt-mock", "messages": [{"role": "user", "content": "x"}]}
    status, _, resp = stack.http.json("POST", "/v1/chat/completions", body,
                                      {"Authorization": "Bearer sk-nope-nope-nope"})
    check_error(status, resp, 401, "invalid_api_key")
    check("sk-nope" not in json.dumps(resp), "the presented key is not echoed")
    check_eq(stack.env.mock.requests(), [], "no upstream call")


def test_upstream_429_keeps_status_and_retry_after(stack):
    mock = stack.env.mock
    mock.clear()
    # retry-after beyond the router's longest back-off: answered at once, header kept.
    status, h, body = stack.chat("limited")
    e = check_error(status, body, 429, None, "rate_limit_error")
    check_eq(h.get("retry-after"), "30", "retry-after kept")
    check("429" in e["message"], "message says what the provider said")
    check_eq(len(mock.requests()), 1, "no retry when the provider asks for 30 s")
    # A short retry-after is waited out and retried (num_retries=1).
    mock.clear()
    status, h, body = stack.chat("limited-short")
    check_error(status, body, 429)
    check_eq(len(mock.requests()), 2, "retried after retry-after")


def test_upstream_5xx_mapped(stack):
    mock = stack.env.mock
    mock.clear()
    status, _, body = stack.chat("broken")
    check_error(status, body, 502)
    check_eq(len(mock.requests()), 2, "num_retries=1: two attempts")
    status, _, body = stack.chat("overloaded")
    check_error(status, body, 503)


def test_upstream_auth_error_hides_key(stack):
    status, h, body = stack.chat("badkey")
    check_error(status, body, 401)
    text = json.dumps(body) + json.dumps(h)
    check(UPSTREAM_KEY not in text, "provider key echoed")


def test_upstream_timeout(stack):
    status, _, body = stack.chat("slow")
    check_error(status, body, 408, "timeout")


def test_upstream_unreachable_and_garbage(stack):
    status, _, body = stack.chat("refused")
    check_error(status, body, 502, "upstream_unreachable")
    status, _, body = stack.chat("garbage")
    check_error(status, body, 502, "invalid_upstream_response")


def test_retry_on_another_deployment(stack):
    mock = stack.env.mock
    for _ in range(6):
        mock.clear()
        status, h, body = stack.chat("flaky")
        check_eq(status, 200, "retried to the good deployment")
        check_eq(h["x-litellm-model-id"], "flaky-good", "served by")
        retries = int(h["x-litellm-attempted-retries"])
        check_eq(len(mock.requests()), 1 + retries, "upstream calls = 1 + retries")


def test_simple_shuffle_honours_weights(stack):
    counts = {"light": 0, "heavy": 0}
    for _ in range(400):
        status, h, _ = stack.chat("weighted")
        check_eq(status, 200, "status")
        counts[h["x-litellm-model-id"]] += 1
    share = counts["heavy"] / 400.0
    # weight 3:1 -> 75 %; 400 draws: sd ~2.2 points, so 65..85 % is > 4 sd wide.
    check(0.65 <= share <= 0.85, "heavy share %.2f not near 0.75 (%r)" % (share, counts))


def test_both_workers_take_load(stack):
    pg = stack.env.pg
    ids = []

    def call():
        st, h, _ = Http(stack.port).json("POST", "/v1/chat/completions",
                                         {"model": "gpt-mock", "messages": [
                                             {"role": "user", "content": "x"}]},
                                         stack.auth())
        ids.append((st, h.get("x-litellm-call-id")))
    threads = [threading.Thread(target=call) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_eq([st for st, _ in ids].count(200), 40, "all answered")
    where = ",".join("'%s'" % rid for _, rid in ids)
    rows = wait_for(lambda: (lambda r: r if len(r) and sum(int(x[1]) for x in r) == 40 else None)(
        pg.query('SELECT metadata->>\'worker\', count(*) FROM "LiteLLM_SpendLogs" '
                 'WHERE request_id IN (%s) GROUP BY 1' % where)), what="40 rows")
    check_eq(len(rows), 2, "requests spread over both workers: %r" % rows)
    check(min(int(r[1]) for r in rows) >= 5, "each worker took a real share: %r" % rows)


def test_usage_rows_in_postgres(stack):
    pg = stack.env.pg
    status, h, _ = stack.chat("gpt-mock", "count me")
    check_eq(status, 200, "status")
    rid = h["x-litellm-call-id"]
    rows = wait_for(lambda: pg.query(
        'SELECT request_id, call_type, api_key, model, model_group, model_id, '
        'custom_llm_provider, prompt_tokens, completion_tokens, total_tokens, status, '
        'http_status, attempts, api_base, "startTime" <= "endTime" '
        'FROM "LiteLLM_SpendLogs" WHERE request_id = \'%s\'' % rid), what="the usage row")
    r = rows[0]
    check_eq(r[1], "acompletion", "call_type")
    check_eq(r[2], hashlib.sha256(MASTER_KEY.encode()).hexdigest(), "api_key is the hash")
    check_eq(r[3], "gpt-4o-mini", "model")
    check_eq(r[4], "gpt-mock", "model_group")
    check_eq(r[6], "openai", "provider")
    check(int(r[7]) > 0 and int(r[9]) == int(r[7]) + int(r[8]), "tokens %r" % r)
    check_eq(r[10], "success", "status")
    check_eq(r[11], "200", "http_status")
    check_eq(r[12], "1", "attempts")
    check_eq(r[13], stack.env.mock.base + "/v1", "api_base")
    check_eq(r[14], "t", "start <= end")
    line = wait_for(lambda: [ln for ln in stack.logger_lines() if rid in ln],
                    what="the logger line")[0]
    check(" 200 gpt-mock -> openai/gpt-4o-mini " in line, "logger line: %s" % line)


def test_error_requests_are_recorded(stack):
    pg = stack.env.pg
    status, h, _ = stack.chat("broken")
    check_eq(status, 502, "status")
    rid = h["x-litellm-call-id"]
    rows = wait_for(lambda: pg.query(
        'SELECT status, http_status, attempts FROM "LiteLLM_SpendLogs" '
        'WHERE request_id = \'%s\'' % rid), what="the failure row")
    check_eq(rows[0], ["failure", "502", "2"], "failure row")


def test_every_request_recorded_once(stack):
    pg = stack.env.pg
    before = int(pg.query('SELECT count(*) FROM "LiteLLM_SpendLogs"')[0][0])
    for i in range(50):
        check_eq(stack.chat("demo", "n%d" % i)[0], 200, "status")
    wait_for(lambda: int(pg.query('SELECT count(*) FROM "LiteLLM_SpendLogs"')[0][0]) ==
             before + 50, what="50 new rows")
    dup = pg.query('SELECT count(*) - count(DISTINCT request_id) FROM "LiteLLM_SpendLogs"')
    check_eq(dup[0][0], "0", "no duplicate rows")


def _daemon(stack, name, args, env):
    e = dict(os.environ, **env)
    return subprocess.run([os.path.join(stack.env.bindir, name)] + args, capture_output=True,
                          text=True, env=e, timeout=10)


def test_daemons_refuse_weak_or_missing_master_key(stack):
    for name in ("llm-gateway", "llm-router", "llm-worker", "llm-logger"):
        r = _daemon(stack, name, ["--config", stack.config_path], {"LITELLM_MASTER_KEY": ""})
        check_eq(r.returncode, 1, name + " without a key")
        check("LITELLM_MASTER_KEY" in r.stderr, name + ": " + r.stderr)
        r = _daemon(stack, name, ["--config", stack.config_path],
                    {"LITELLM_MASTER_KEY": "sk-1234"})
        check_eq(r.returncode, 1, name + " with sk-1234")
        check("well-known" in r.stderr, name + ": " + r.stderr)
        check("sk-1234" not in r.stderr, "the key itself is not printed")


def test_daemons_help(stack):
    for name in ("llm-gateway", "llm-router", "llm-worker", "llm-logger"):
        r = _daemon(stack, name, ["--help"], {})
        check_eq(r.returncode, 0, name)
        check("--config" in r.stdout, name + " help lists --config")


def test_config_errors_name_file_line_and_key(stack):
    path = os.path.join(stack.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                "      rpm: lots\n")
    r = _daemon(stack, "llm-router", ["--config", path], {"LITELLM_MASTER_KEY": MASTER_KEY})
    check_eq(r.returncode, 1, "exit status")
    check(path + ":5:12: litellm_params.rpm" in r.stderr, r.stderr)


def test_cost_from_the_price_table(stack):
    # gpt-mock is openai/gpt-4o-mini with no price of its own: configs/model_prices.json
    # prices it at 1.5e-7 per input token and 6e-7 per output token.
    status, h, body = stack.chat("gpt-mock", "price me")
    check_eq(status, 200, "status")
    u = body["usage"]
    want = u["prompt_tokens"] * 1.5e-7 + u["completion_tokens"] * 6e-7
    check(abs(float(h["x-litellm-response-cost"]) - want) < 1e-12,
          "cost %s, want %r" % (h["x-litellm-response-cost"], want))
    # An unpriced deployment is named once in the worker logs, however often it is called.
    dep = [d for d in _deployment_ids(stack) if d[0] == "openrouter-mock"][0][1]
    warning = "no price for openrouter/meta-llama/llama-3.3-70b (deployment " + dep

    def warnings():
        return "".join(t for n, t in stack.logs().items() if n.startswith("worker")).count(warning)
    for _ in range(4):
        check_eq(stack.chat("openrouter-mock")[0], 200, "status")
    first = warnings()
    for _ in range(6):
        check_eq(stack.chat("openrouter-mock")[0], 200, "status")
    # Once per worker process (two here), not once per call.
    check(1 <= first <= 2 and warnings() == first, "warned %d then %d times" % (first, warnings()))


def _deployment_ids(stack):
    status, _, body = stack.http.json("GET", "/health", headers=stack.auth())
    return [(e["model_name"], e["model_id"]) for e in
            body["healthy_endpoints"] + body["unhealthy_endpoints"]]
