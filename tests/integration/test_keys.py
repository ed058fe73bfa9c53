"""Virtual keys, budgets and rate limits against a real PostgreSQL (and Redis where named)."""

import hashlib
import json
import os
import subprocess
import threading
import time

from harness import (MASTER_KEY, Http, Stack, check, check_eq, check_error, config, deployment,
                     wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(6).hex()
PRICE_IN, PRICE_OUT = 0.000001, 0.000002


class Ctx:
    def __init__(self, env, stack):
        self.env = env
        self.stack = stack
        self.keys = []  # every virtual key made, to look for them where they must not be

    def admin(self, method, path, body=None, http=None):
        return (http or self.stack.http).json(method, path, body, self.stack.auth())

    def new_key(self, http=None, **fields):
        st, _, body = self.admin("POST", "/key/generate", fields, http)
        check_eq(st, 200, "/key/generate status (%s)" % body)
        self.keys.append(body["key"])
        return body["key"]

    def chat(self, key, model="m", http=None, extra=None):
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        body.update(extra or {})
        return (http or self.stack.http).json("POST", "/v1/chat/completions", body,
                                              {"Authorization": "Bearer " + key})


def _models(env):
    m = env.mock.base
    return [
        deployment("m", "openai/m", mock_response="four words of answer",
                   input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
        deployment("other", "openai/o", mock_response="other answer",
                   input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
        deployment("slow", "openai/x", m + "/delay/1500/v1", api_key=UPSTREAM_KEY),
        deployment("slowpriced", "openai/x", m + "/delay/1000/v1", api_key=UPSTREAM_KEY,
                   input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
    ]


def setup(env):
    stack = Stack(env, config(_models(env), general={"proxy_batch_write_at": 0.1}),
                  db_url=env.pg.url, name="keys")
    return Ctx(env, stack)


def teardown(ctx):
    ctx.stack.stop()
    _check_no_raw_keys(ctx, ctx.stack)


def _check_no_raw_keys(ctx, stack):
    """The raw keys appear in no table and no log; only their sha256 does."""
    dump = subprocess.run(["pg_dump", "--data-only", "-d", ctx.env.pg.url], check=True,
                          capture_output=True, text=True).stdout
    logs = "\n".join(stack.logs().values()) + "\n".join(stack.logger_lines())
    for key in ctx.keys:
        check(key not in dump, "a raw virtual key is stored in the database")
        check(key not in logs, "a raw virtual key is in a log")
    check(UPSTREAM_KEY not in logs, "the provider key is in a log")
    check(MASTER_KEY not in logs and MASTER_KEY not in dump, "the master key leaked")


def _token(key):
    return hashlib.sha256(key.encode()).hexdigest()


def _calm_minute():
    """Wait until a minute window has at least 6 s left, so counts cannot straddle two."""
    while time.time() % 60 > 54:
        time.sleep(0.5)


def test_key_lifecycle(ctx):
    pg = ctx.env.pg
    st, _, body = ctx.admin("POST", "/key/generate", {
        "key_alias": "app-1", "models": ["m"], "max_budget": 5, "metadata": {"team": "x"},
        "duration": "1h", "rpm_limit": 100})
    check_eq(st, 200, "generate status")
    key = body["key"]
    ctx.keys.append(key)
    check(key.startswith("sk-") and len(key) == 25, "key shape: sk- + 22 url-safe characters")
    check_eq(body["token_id"], _token(key), "token_id is the sha256 of the key")
    check_eq(body["key_alias"], "app-1", "alias echoed")
    rows = pg.query('SELECT token, key_alias, models, max_budget, rpm_limit, expires IS NOT NULL '
                    'FROM "LiteLLM_VerificationToken" WHERE token = \'%s\'' % _token(key))
    check_eq(rows, [[_token(key), "app-1", "{m}", "5", "100", "t"]], "the stored row")

    # The key works, and may read itself; the master key reads any key.
    st, _, _ = ctx.chat(key)
    check_eq(st, 200, "chat with the new key")
    st, _, info = ctx.stack.http.json("GET", "/key/info?key=" + key, None,
                                      {"Authorization": "Bearer " + key})
    check_eq(st, 200, "a key reads its own info")
    check_eq(info["info"]["key_alias"], "app-1", "own info alias")
    st, _, info = ctx.admin("GET", "/key/info?key=" + key)
    check_eq((st, info["key"], info["info"]["token"]), (200, key, _token(key)),
             "master reads the info by key")
    other = ctx.new_key(key_alias="app-2")
    st, _, err = ctx.stack.http.json("GET", "/key/info?key=" + other, None,
                                     {"Authorization": "Bearer " + key})
    check_error(st, err, 403)

    # Listed; updated; blocked and unblocked; deleted.
    st, _, lst = ctx.admin("GET", "/key/list?size=1000")
    check(st == 200 and _token(key) in lst["keys"], "key listed by hash")
    st, _, upd = ctx.admin("POST", "/key/update", {"key": key, "rpm_limit": 7,
                                                   "key_alias": "app-1b"})
    check_eq((st, upd["rpm_limit"], upd["key_alias"]), (200, 7, "app-1b"), "update answer")
    check_eq(pg.query('SELECT rpm_limit FROM "LiteLLM_VerificationToken" WHERE token = \'%s\''
                      % _token(key)), [["7"]], "rpm_limit updated in the table")
    st, _, _ = ctx.admin("POST", "/key/block", {"key": key})
    check_eq(st, 200, "block")
    st, _, err = ctx.chat(key)
    check_error(st, err, 401, "key_blocked")
    st, _, _ = ctx.admin("POST", "/key/unblock", {"key": key})
    check_eq(st, 200, "unblock")
    check_eq(ctx.chat(key)[0], 200, "unblocked key works again")
    st, _, deleted = ctx.admin("POST", "/key/delete", {"keys": [key]})
    check_eq((st, deleted["deleted_keys"]), (200, [key]), "delete answer")
    st, _, err = ctx.chat(key)
    check_error(st, err, 401, "invalid_api_key")
    check_eq(pg.query('SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = \'%s\''
                      % _token(key)), [["0"]], "row deleted")
    st, _, err = ctx.admin("GET", "/key/info?key=" + key)
    check_error(st, err, 404)


def test_virtual_keys_cannot_manage_keys(ctx):
    key = ctx.new_key()
    for method, path, body in [("POST", "/key/generate", {}), ("GET", "/key/list", None),
                               ("POST", "/key/delete", {"keys": [key]}),
                               ("GET", "/spend/logs", None), ("GET", "/health", None)]:
        st, _, err = ctx.stack.http.json(method, path, body, {"Authorization": "Bearer " + key})
        check_error(st, err, 403)
    st, _, err = ctx.stack.http.json("POST", "/v1/chat/completions", {"model": "m"},
                                     {"Authorization": "Bearer sk-not-a-key-000000000"})
    check_error(st, err, 401, "invalid_api_key")


def test_expired_key_refused(ctx):
    key = ctx.new_key(duration="1s")
    time.sleep(1.2)
    st, _, err = ctx.chat(key)
    check_error(st, err, 401, "key_expired")


def test_bad_key_bodies(ctx):
    pg = ctx.env.pg
    before = pg.query('SELECT count(*) FROM "LiteLLM_VerificationToken"')
    cases = [
        ({"rpm_limit": -1}, "rpm_limit"),
        ({"tpm_limit": 1.5}, "tpm_limit"),
        ({"max_budget": "lots"}, "max_budget"),
        ({"max_parallel_requests": -3}, "max_parallel_requests"),
        ({"models": "m"}, "models"),
        ({"model_rpm_limit": {"m": -1}}, "model_rpm_limit"),
        ({"metadata": "text"}, "metadata"),
        ({"duration": "soon"}, "duration"),
        ({"budget_duration": "-1d"}, "budget_duration"),
        ({"key": "short"}, "key"),
        ({"colour": "red"}, "colour"),
        ({"colour": None}, "colour"),
        ({"metadata": None}, "metadata"),
        ({"blocked": None}, "blocked"),
    ]
    for body, param in cases:
        st, _, err = ctx.admin("POST", "/key/generate", body)
        check_error(st, err, 400)
        check_eq(err["error"]["param"], param, "param named for %s" % body)
    for raw in [b"{", b"[1,2]", b"\"text\""]:
        st, _, err = ctx.stack.http.json("POST", "/key/generate", raw=raw,
                                         headers=ctx.stack.auth())
        check_error(st, err, 400)
    st, _, err = ctx.admin("POST", "/key/update", {"key": ctx.new_key(), "rpm_limit": -5})
    check_error(st, err, 400)
    st, _, err = ctx.admin("POST", "/key/update", {"key": "sk-no-such-key-0000000", "rpm_limit": 5})
    check_error(st, err, 404)
    after = pg.query('SELECT count(*) FROM "LiteLLM_VerificationToken"')
    check_eq(int(after[0][0]), int(before[0][0]) + 1, "only the one valid key was stored")


def test_sql_metacharacters_round_trip(ctx):
    alias = "x'); DROP TABLE \"LiteLLM_VerificationToken\"; --"
    meta = {"note": "a'b\"c;--", "nested": {"$1": "\\x00'"}}
    key = ctx.new_key(key_alias=alias, metadata=meta, user_id="u'1")
    st, _, info = ctx.admin("GET", "/key/info?key=" + key)
    check_eq(st, 200, "info status")
    check_eq(info["info"]["key_alias"], alias, "alias round trip")
    check_eq(info["info"]["metadata"], meta, "metadata round trip")
    check_eq(info["info"]["user_id"], "u'1", "user_id round trip")
    st, _, lst = ctx.admin("GET", "/key/list?size=1000")
    check(_token(key) in lst["keys"], "table still there and the key listed")


def test_model_allow_list(ctx):
    key = ctx.new_key(models=["m"])
    check_eq(ctx.chat(key, "m")[0], 200, "allowed model")
    st, _, err = ctx.chat(key, "other")
    check_error(st, err, 400, "model_not_allowed")
    check("other" in err["error"]["message"], "message names the model")
    st, _, models = ctx.stack.http.json("GET", "/v1/models", None,
                                        {"Authorization": "Bearer " + key})
    check_eq([m["id"] for m in models["data"]], ["m"], "/v1/models shows only allowed models")
    everything = ctx.new_key(models=[])
    check_eq(ctx.chat(everything, "other")[0], 200, "models [] may use every model")


def test_budget_exhaustion(ctx):
    pg = ctx.env.pg
    # Learn what one call costs, then give a key room for exactly three and a bit.
    probe = ctx.new_key()
    st, h, _ = ctx.chat(probe)
    check_eq(st, 200, "probe call")
    cost = float(h["x-litellm-response-cost"])
    check(cost > 0, "the call has a cost")
    key = ctx.new_key(max_budget=cost * 2.5)
    statuses = [ctx.chat(key)[0] for _ in range(3)]
    check_eq(statuses, [200, 200, 200], "calls while under budget (the third starts at 2/2.5)")
    st, _, err = ctx.chat(key)
    check_error(st, err, 400, "budget_exceeded")
    check("Budget has been exceeded" in err["error"]["message"], "budget message")
    # The logger bills the key the three calls (the refused one costs nothing).
    wait_for(lambda: abs(float(pg.query(
        'SELECT spend FROM "LiteLLM_VerificationToken" WHERE token = \'%s\'' % _token(key))[0][0])
        - 3 * cost) < cost / 100, 10, what="key spend in the table")
    # Raising the budget lets it go on at once.
    st, _, _ = ctx.admin("POST", "/key/update", {"key": key, "max_budget": cost * 10})
    check_eq(st, 200, "budget raised")
    check_eq(ctx.chat(key)[0], 200, "call after the raise")


def test_budget_held_by_concurrent_calls(ctx):
    """Calls in flight hold their estimated cost: each reserves about 0.00053 (the prompt
    and 256 completion tokens), so of 8 slow calls at once a budget of 0.0009 admits two,
    though each will cost far less."""
    key = ctx.new_key(max_budget=0.0009)
    results = []

    def one():
        results.append(ctx.chat(key, "slowpriced", http=Http(ctx.stack.port))[0])
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_eq(sorted(results), [200] * 2 + [400] * 6, "two admitted, six over budget")
    check_eq(ctx.chat(key)[0], 200, "the budget is free again once they settled")


def test_rpm_limit_exact(ctx):
    key = ctx.new_key(rpm_limit=3)
    _calm_minute()
    seen = []
    for _ in range(3):
        st, h, _ = ctx.chat(key)
        seen.append((st, h.get("x-ratelimit-limit-requests"),
                     h.get("x-ratelimit-remaining-requests")))
    check_eq(seen, [(200, "3", "2"), (200, "3", "1"), (200, "3", "0")], "three admitted")
    st, h, err = ctx.chat(key)
    check_error(st, err, 429, "rate_limit_exceeded", "rate_limit_error")
    check(0 < int(h["retry-after"]) <= 60, "retry-after within the minute")
    check_eq(h.get("x-ratelimit-remaining-requests"), "0", "remaining on the 429")
    # The refused request is accounted for too (no usage, no cost).
    pg = ctx.env.pg
    wait_for(lambda: pg.query('SELECT http_status, total_tokens, spend FROM "LiteLLM_SpendLogs" '
                              'WHERE request_id = \'%s\'' % h["x-litellm-call-id"]) ==
             [["429", "0", "0"]], 10, what="the 429's spend row")


def test_tpm_limit_exact(ctx):
    # max_tokens 8: each call reserves ~prompt/4 + 8 and settles to its real total.
    probe = ctx.new_key()
    _, _, body = ctx.chat(probe, extra={"max_tokens": 8})
    per_call = body["usage"]["total_tokens"]
    tpm = per_call * 3 + 1
    key = ctx.new_key(tpm_limit=tpm)
    _calm_minute()
    statuses = []
    for _ in range(5):
        st, h, _ = ctx.chat(key, extra={"max_tokens": 8})
        statuses.append(st)
        if st == 200:
            check_eq(h.get("x-ratelimit-limit-tokens"), str(tpm), "tokens limit header")
    # 3 calls use 3*per_call < tpm, so a fourth starts; then the window is full.
    check_eq(statuses, [200, 200, 200, 200, 429], "calls admitted under tpm %d" % tpm)


def test_parallel_limit_exact(ctx):
    key = ctx.new_key(max_parallel_requests=2)
    results = []
    lock = threading.Lock()

    def one():
        st, h, _ = ctx.chat(key, "slow", http=Http(ctx.stack.port))
        with lock:
            results.append((st, h.get("retry-after")))
    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    check_eq(sorted(r[0] for r in results), [200, 200, 429, 429, 429], "two at a time")
    check(all(r[1] == "1" for r in results if r[0] == 429), "retry-after 1 on parallel 429s")
    check_eq(ctx.chat(key, "slow")[0], 200, "slots given back after the calls")


def test_model_rpm_limit(ctx):
    key = ctx.new_key(model_rpm_limit={"m": 2})
    _calm_minute()
    check_eq([ctx.chat(key, "m")[0] for _ in range(2)], [200, 200], "two on m")
    st, _, err = ctx.chat(key, "m")
    check_error(st, err, 429, "rate_limit_exceeded")
    check("model m" in err["error"]["message"], "the message names the model")
    check_eq(ctx.chat(key, "other")[0], 200, "other models are not limited")


def test_budget_duration_resets_spend(ctx):
    pg = ctx.env.pg
    key = ctx.new_key(max_budget=0.000001, budget_duration="1s")
    check_eq(ctx.chat(key)[0], 200, "first call")
    wait_for(lambda: float(pg.query('SELECT spend FROM "LiteLLM_VerificationToken" WHERE '
                                    'token = \'%s\'' % _token(key))[0][0]) > 0, 10,
             what="spend recorded")
    # The logger resets spend once budget_reset_at passes (it looks every 10 s).
    wait_for(lambda: pg.query('SELECT spend = 0 AND budget_reset_at > now() AT TIME ZONE '
                              '\'UTC\' FROM "LiteLLM_VerificationToken" WHERE token = \'%s\''
                              % _token(key)) == [["t"]], 15, what="spend reset")


# ---- Redis: several gateways, one set of limits ----

def _redis_stack(ctx, general=None, name="keys-redis"):
    g = {"proxy_batch_write_at": 0.1, "user_api_key_cache_ttl": 1}
    g.update(general or {})
    return Stack(ctx.env, config(_models(ctx.env), general=g), db_url=ctx.env.pg.url,
                 extra_env={"REDIS_URL": ctx.env.redis.url}, name=name)


def test_two_gateways_share_one_limit(ctx):
    stack = _redis_stack(ctx)
    try:
        port2 = stack.add_gateway()
        a, b = stack.http, Http(port2)
        key = ctx.new_key(http=a, rpm_limit=4)
        _calm_minute()
        statuses = [ctx.chat(key, http=(a if i % 2 == 0 else b))[0] for i in range(6)]
        check_eq(statuses, [200, 200, 200, 200, 429, 429], "one rpm limit across two gateways")
        counters = ctx.env.redis.keys("lp:{%s}:*" % _token(key))
        check(any(":rpm:" in k for k in counters), "the counter lives in Redis")
        check(ctx.env.redis.keys("lp:key:%s" % _token(key)), "the key row is cached in Redis")
        # Blocked on one gateway: refused on the other within the key cache ttl (1 s).
        blocker = ctx.new_key(http=a)
        check_eq(ctx.chat(blocker, http=b)[0], 200, "works on b")
        st, _, _ = ctx.admin("POST", "/key/block", {"key": blocker}, http=a)
        check_eq(st, 200, "blocked through a")
        wait_for(lambda: ctx.chat(blocker, http=b)[0] == 401, 3, what="b refuses the blocked key")
        # Concurrent calls through both gateways cannot overshoot a parallel limit.
        par = ctx.new_key(http=a, max_parallel_requests=2)
        results = []

        def one(port):
            results.append(ctx.chat(par, "slow", http=Http(port))[0])
        threads = [threading.Thread(target=one, args=(p,)) for p in
                   [stack.port, port2, stack.port, port2, stack.port, port2]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check_eq(sorted(results), [200, 200, 429, 429, 429, 429], "two at a time, not four")
        b.close()
    finally:
        stack.stop()
    _check_no_raw_keys(ctx, stack)


def test_redis_killed_keeps_serving(ctx):
    stack = _redis_stack(ctx, name="keys-redis-down")
    try:
        h = stack.http
        key = ctx.new_key(rpm_limit=1000)
        check_eq(ctx.chat(key, http=h)[0], 200, "with Redis up")
        ctx.env.redis.kill()
        statuses = [ctx.chat(key, http=h)[0] for _ in range(5)]
        check_eq(statuses, [200] * 5, "calls go on with Redis gone")
        wait_for(lambda: "unreachable" in stack.procs["gateway"].text(), 5,
                 what="a warning about Redis")
        # Limits still hold, counted in process.
        small = ctx.new_key(rpm_limit=2)
        _calm_minute()
        check_eq([ctx.chat(small, http=h)[0] for _ in range(3)], [200, 200, 429],
                 "in-process limit")
        ctx.env.redis.start()
        wait_for(lambda: stack.procs["gateway"].text().count("connected: rate limits") >= 2, 10,
                 what="the gateway reconnects to Redis")
        check_eq(ctx.chat(key, http=h)[0], 200, "with Redis back")
    finally:
        if not ctx.env.redis.proc.alive():
            ctx.env.redis.start()
        stack.stop()


def test_redis_down_fail_closed(ctx):
    stack = _redis_stack(ctx, general={"limits_fail_closed": True}, name="keys-closed")
    try:
        h = stack.http
        limited = ctx.new_key(rpm_limit=100)
        free = ctx.new_key()
        check_eq(ctx.chat(limited, http=h)[0], 200, "limited key with Redis up")
        ctx.env.redis.kill()
        st, _, err = ctx.chat(limited, http=h)
        check_error(st, err, 503, "limits_unavailable")
        check_eq(ctx.chat(free, http=h)[0], 200, "a key without limits is not affected")
        check_eq(stack.chat("m")[0], 200, "the master key is not affected")
    finally:
        ctx.env.redis.start()
        stack.stop()
