"""Operations: audit log, run-time log level, /health/test_connection, timing breakdown."""

import hashlib
import json
import os
import signal
import subprocess
import time

from harness import (MASTER_KEY, Stack, check, check_eq, check_error, config, deployment,
                     wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(6).hex()
TEST_KEY = "sk-testconn-" + os.urandom(6).hex()


def setup(env):
    m = env.mock.base
    models = [deployment("m", "openai/gpt-4o-mini", m + "/v1", api_key=UPSTREAM_KEY),
              deployment("s", "openai/gpt-4o-mini", m + "/chunks/5/v1", api_key=UPSTREAM_KEY)]
    return Stack(env, config(models), db_url=env.pg.url, name="ops",
                 extra_env={"LOG_SUMMARY_INTERVAL": "1"})


def teardown(stack):
    stack.stop()
    logs = "\n".join(stack.logs().values()) + "\n".join(stack.logger_lines())
    for secret in (UPSTREAM_KEY, TEST_KEY, MASTER_KEY):
        check(secret not in logs, "a secret is in a log")


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_audit_log_of_key_actions(stack):
    h = stack.auth()
    st, _, k = stack.http.json("POST", "/key/generate", {"key_alias": "audited"}, h)
    check_eq(st, 200, "generate")
    key, token = k["key"], k["token_id"]
    for path, body in [("/key/update", {"key": key, "rpm_limit": 5}),
                       ("/key/block", {"key": key}), ("/key/unblock", {"key": key}),
                       ("/key/delete", {"keys": [key]})]:
        check_eq(stack.http.json("POST", path, body, h)[0], 200, path)
    st, _, logs = stack.http.json("GET", "/audit/logs?object_id=" + token, None, h)
    check_eq(st, 200, "audit list")
    rows = sorted(logs["audit_logs"], key=lambda r: r["updated_at"])
    check_eq([r["action"] for r in rows], ["created", "updated", "blocked", "unblocked",
                                           "deleted"], "one row per action, in order")
    check_eq(logs["total"], 5, "total")
    for r in rows:
        check_eq((r["changed_by"], r["changed_by_api_key"], r["table_name"]),
                 ("master_key", _sha(MASTER_KEY), "LiteLLM_VerificationToken"), "who and what")
    upd = rows[1]
    check_eq((upd["before_value"]["rpm_limit"], upd["updated_values"]["rpm_limit"]), (None, 5),
             "before and after of the change")
    check_eq(rows[0]["updated_values"]["key_alias"], "audited", "created row")
    check_eq(rows[4]["before_value"]["token"], token, "deleted row keeps what was deleted")
    dump = subprocess.run(["pg_dump", "--data-only", "-t", '"LiteLLM_AuditLog"', "-d",
                           stack.env.pg.url], check=True, capture_output=True, text=True).stdout
    check(key not in dump and MASTER_KEY not in dump, "no secret in the audit table")
    wait_for(lambda: any("audit key blocked " + token in ln for ln in stack.logger_lines()), 5,
             what="an audit line in the logger's output")
    st, _, err = stack.http.json("GET", "/audit/logs?start_date=yesterday", None, h)
    check_error(st, err, 400)


def test_config_reload_is_audited(stack):
    stack.procs["gateway"].send(signal.SIGHUP)
    h = stack.auth()

    def rows():
        return stack.http.json("GET", "/audit/logs?action=config_reloaded", None, h)[2]
    wait_for(lambda: rows()["total"] >= 1, 5, what="the reload's audit row")
    r = rows()["audit_logs"][0]
    check_eq((r["table_name"], r["changed_by"]), ("config", "SIGHUP"), "reload row")
    check_eq(sorted(r["updated_values"]["model_groups"]), ["m", "s"], "what the config serves")


def test_log_level_switch(stack):
    names = ("gateway", "router", "worker0")
    for n in names:
        stack.procs[n].send(signal.SIGUSR1)
    for n in names:
        wait_for(lambda n=n: "SIGUSR1: log level debug" in stack.procs[n].text(), 5,
                 what="%s to switch to debug" % n)
    st, h, _ = stack.chat("m", "a private prompt")
    check_eq(st, 200, "request at debug level")
    rid = h["x-litellm-call-id"]
    for n in names:
        wait_for(lambda n=n: "req=" + rid in stack.procs[n].text(), 5,
                 what="%s to log the request id" % n)
    for n in names:
        check("a private prompt" not in stack.procs[n].text(), "no prompt in %s's log" % n)
        stack.procs[n].send(signal.SIGUSR2)
    for n in names:
        wait_for(lambda n=n: "SIGUSR2: log level back" in stack.procs[n].text(), 5,
                 what="%s back to info" % n)
    st, h, _ = stack.chat("m", "quiet again")
    rid = h["x-litellm-call-id"]
    time.sleep(0.3)
    check("req=" + rid not in stack.procs["router"].text(), "debug lines stopped")


def test_test_connection(stack):
    m = stack.env.mock.base
    h = stack.auth()
    good = {"litellm_params": {"model": "openai/gpt-4o-mini", "api_base": m + "/v1",
                               "api_key": TEST_KEY}}
    stack.env.mock.clear()
    st, _, body = stack.http.json("POST", "/health/test_connection", good, h)
    check_eq((st, body["status"]), (200, "success"), "a good deployment (%s)" % body)
    sent = [r for r in stack.env.mock.requests() if r["path"].endswith("/chat/completions")]
    check_eq(len(sent), 1, "one call")
    check_eq(sent[0]["headers"].get("authorization"), "Bearer " + TEST_KEY, "the given key")
    check_eq(sent[0]["json"]["max_tokens"], 1, "a cheap call")
    bad = {"litellm_params": {"model": "openai/gpt-4o-mini", "api_base": m + "/status/401/v1",
                              "api_key": TEST_KEY}}
    st, _, err = stack.http.json("POST", "/health/test_connection", bad, h)
    check_error(st, err, 401)
    check(TEST_KEY not in json.dumps(err), "the key is not echoed")
    emb = {"mode": "embedding", "litellm_params": {"model": "openai/text-embedding-3-small",
                                                   "api_base": m + "/v1", "api_key": TEST_KEY}}
    st, _, body = stack.http.json("POST", "/health/test_connection", emb, h)
    check_eq((st, body["status"]), (200, "success"), "embedding mode")
    st, _, err = stack.http.json("POST", "/health/test_connection",
                                 {"litellm_params": {"model": "nosuch/x"}}, h)
    check_error(st, err, 400, "invalid_litellm_params")
    st, _, err = stack.http.json("POST", "/health/test_connection", {"mode": "chat"}, h)
    check_error(st, err, 400)
    st, _, k = stack.http.json("POST", "/key/generate", {}, h)
    st, _, err = stack.http.json("POST", "/health/test_connection", good,
                                 {"Authorization": "Bearer " + k["key"]})
    check_error(st, err, 403)
    st, _, models = stack.http.json("GET", "/v1/models", None, h)
    check("test-connection" not in [x["id"] for x in models["data"]], "the params were not kept")


def _timing(header):
    parts = {}
    for item in header.split(","):
        name, dur = item.strip().split(";dur=")
        parts[name] = float(dur)
    return parts


def test_timing_breakdown(stack):
    st, h, _ = stack.chat("m", "time me")
    check_eq(st, 200, "status")
    t = _timing(h["server-timing"])
    check(set(t) >= {"gateway", "router", "worker", "upstream", "upstream-ttfb", "total"},
          "every hop: %s" % t)
    check(t["gateway"] + t["router"] + t["worker"] + t["upstream"] <= t["total"] + 0.001,
          "the parts add up to no more than the total: %s" % t)
    check(t["upstream-ttfb"] <= t["upstream"] + 0.001, "first byte within the upstream time")
    check(float(h["x-litellm-overhead-duration-ms"]) <= t["total"], "overhead header")
    st, h, raw = stack.http.request("POST", "/v1/chat/completions",
                                    {"model": "s", "stream": True,
                                     "messages": [{"role": "user", "content": "x"}]},
                                    stack.auth())
    check("server-timing" in h and "router;dur=" in h["server-timing"], "streams too")
    rid = h["x-litellm-call-id"]
    pg = stack.env.pg
    wait_for(lambda: pg.query('SELECT metadata::jsonb ? \'router_ms\', metadata::jsonb ? '
                              '\'worker_ms\', metadata::jsonb ? \'gateway_ms\' FROM '
                              '"LiteLLM_SpendLogs" WHERE request_id = \'%s\'' % rid) ==
             [["t", "t", "t"]], 10, what="the hops in the spend row")
    wait_for(lambda: any(" summary " in ln and "proxy_avg=" in ln
                         for ln in stack.logger_lines()), 5, what="per-model summary timings")
