"""Logger: every answered request becomes exactly one row, whatever crashes in between."""

import hashlib
import json
import os
import signal
import threading
import time

from harness import (MASTER_KEY, Http, Stack, check, check_eq, config, deployment, wait_for)

PRICE_IN, PRICE_OUT = 0.000001, 0.000002


def _cfg(env):
    return config([
        deployment("m", "openai/m", mock_response="four words of answer",
                   input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
    ], general={"proxy_batch_write_at": 0.2})


def _count(pg, where="true"):
    return int(pg.query('SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE %s' % where)[0][0])


class Load:
    """Requests in a loop on a few connections; remembers the ids of those answered 200."""

    def __init__(self, stack, threads=3, tag="load"):
        self.stack = stack
        self.ok = []
        self.other = 0
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.tag = tag
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        http = Http(self.stack.port, timeout=30)
        while not self.stop_flag.is_set():
            try:
                st, h, _ = http.json("POST", "/v1/chat/completions", {
                    "model": "m", "user": self.tag,
                    "messages": [{"role": "user", "content": "x"}]}, self.stack.auth())
            except OSError:
                st, h = 0, {}
            with self.lock:
                if st == 200:
                    self.ok.append(h["x-litellm-call-id"])
                else:
                    self.other += 1
        http.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        return self.ok


def _restart_logger(stack):
    old = stack.procs["logger"]
    old.kill()
    return stack.start("logger", ["llm-logger", "--bind", stack.logger_ep, "--spool",
                                  stack.spool], stdout=os.path.join(stack.dir, "logger.out"))


def _exactly(pg, ids, tag, timeout=30):
    want = len(set(ids))
    wait_for(lambda: _count(pg, "\"user\" = '%s'" % tag) == want, timeout=timeout,
             what="%d rows for %s (have %d)" % (want, tag, _count(pg, "\"user\" = '%s'" % tag)))
    rows = pg.query("SELECT request_id FROM \"LiteLLM_SpendLogs\" WHERE \"user\" = '%s'" % tag)
    check_eq(sorted(r[0] for r in rows), sorted(set(ids)), "the rows are the answered requests")


def test_schema_versions_recorded(env):
    stack = Stack(env, _cfg(env), db_url=env.pg.url)
    try:
        wait_for(lambda: env.pg.query("SELECT version FROM llm_proxy_migrations ORDER BY 1"),
                 what="migrations applied")
        versions = [r[0] for r in env.pg.query("SELECT version FROM llm_proxy_migrations "
                                               "ORDER BY 1")]
        check(versions[:2] == ["1", "2"], "versions %r" % versions)
        cols = [r[0] for r in env.pg.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'LiteLLM_SpendLogs'")]
        for c in ("request_id", "startTime", "endTime", "completionStartTime", "model_group",
                  "api_key", "attempts", "ttft_ms", "error_type"):
            check(c in cols, "column %s" % c)
    finally:
        stack.stop()


def test_logger_killed_under_load_loses_nothing(env):
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        load = Load(stack, tag="kill9")
        for _ in range(3):
            time.sleep(0.7)
            _restart_logger(stack)
        time.sleep(0.5)
        ids = load.stop()
        check(len(ids) > 50, "load ran: %d answered" % len(ids))
        check_eq(load.other, 0, "every request answered while the logger restarted")
        _exactly(pg, ids, "kill9")
    finally:
        stack.stop()


def test_postgres_outage_loses_nothing(env):
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        load = Load(stack, tag="pgdown")
        time.sleep(0.5)
        pg.stop()
        time.sleep(2.0)  # requests keep being served while PostgreSQL is away
        wait_for(lambda: stack.http.json("GET", "/health/readiness")[2]["db"] == "disconnected",
                 what="readiness reports the database down")
        pg.start()
        time.sleep(0.5)
        ids = load.stop()
        check_eq(load.other, 0, "served during the outage")
        _exactly(pg, ids, "pgdown")
        check(os.path.getsize(stack.spool) == 0, "the spool drained")
    finally:
        stack.stop()


def test_duplicate_delivery_is_stored_and_billed_once(env):
    pg = env.pg
    token = hashlib.sha256(MASTER_KEY.encode()).hexdigest()
    pg.query('INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, spend) '
             "VALUES ('%s', 'master', 0) ON CONFLICT (token) DO UPDATE SET spend = 0" % token)
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        logger = stack.procs["logger"]
        # A logger that stops answering: the gateway sends its records again (resend after
        # 3 s); when the logger wakes up it gets both copies.
        logger.send(signal.SIGSTOP)
        ids = []
        for _ in range(10):
            st, h, body = stack.chat("m", "dup", {"user": "dup"})
            check_eq(st, 200, "status")
            ids.append(h["x-litellm-call-id"])
            cost = float(h["x-litellm-response-cost"])
        time.sleep(3.8)
        logger.send(signal.SIGCONT)
        _exactly(pg, ids, "dup")
        spend = float(pg.query('SELECT spend FROM "LiteLLM_VerificationToken" '
                               "WHERE token = '%s'" % token)[0][0])
        check(abs(spend - 10 * cost) < 1e-9, "key spend %r = 10 x %r (billed once)" % (spend, cost))
        rows = pg.query("SELECT spend FROM \"LiteLLM_SpendLogs\" WHERE \"user\" = 'dup'")
        check(all(abs(float(r[0]) - cost) < 1e-12 for r in rows), "row spend")
    finally:
        stack.stop()


def test_json_output_lines(env):
    stack = Stack(env, _cfg(env), extra_env={"LOG_FORMAT": "json"})
    try:
        st, h, _ = stack.chat("m", "json please", {"user": "json"})
        check_eq(st, 200, "status")
        rid = h["x-litellm-call-id"]
        line = wait_for(lambda: [ln for ln in stack.logger_lines() if rid in ln],
                        what="json line")[0]
        rec = json.loads(line)
        check_eq(rec["request_id"], rid, "request_id")
        check_eq(rec["model_group"], "m", "model_group")
        check(rec["spend"] > 0 and rec["total_tokens"] > 0, "usage and spend")
        check(MASTER_KEY not in line, "no key in the line")
    finally:
        stack.stop()


def test_existing_litellm_table_is_upgraded(env):
    pg = env.pg
    # The table as an older LiteLLM created it (no status/session_id, none of ours).
    pg.query('DROP TABLE IF EXISTS "LiteLLM_SpendLogs"; '
             'CREATE TABLE "LiteLLM_SpendLogs" ("request_id" TEXT PRIMARY KEY, '
             '"call_type" TEXT NOT NULL, "api_key" TEXT NOT NULL DEFAULT \'\', '
             '"spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0, '
             '"total_tokens" INTEGER NOT NULL DEFAULT 0, '
             '"prompt_tokens" INTEGER NOT NULL DEFAULT 0, '
             '"completion_tokens" INTEGER NOT NULL DEFAULT 0, '
             '"startTime" TIMESTAMP(3) NOT NULL, "endTime" TIMESTAMP(3) NOT NULL, '
             '"completionStartTime" TIMESTAMP(3), "model" TEXT NOT NULL DEFAULT \'\', '
             '"model_id" TEXT DEFAULT \'\', "model_group" TEXT DEFAULT \'\', '
             '"custom_llm_provider" TEXT DEFAULT \'\', "api_base" TEXT DEFAULT \'\', '
             '"user" TEXT DEFAULT \'\', "metadata" JSONB DEFAULT \'{}\', '
             '"cache_hit" TEXT DEFAULT \'\', "cache_key" TEXT DEFAULT \'\', '
             '"request_tags" JSONB DEFAULT \'[]\', "team_id" TEXT, "end_user" TEXT, '
             '"requester_ip_address" TEXT); '
             "INSERT INTO \"LiteLLM_SpendLogs\" (request_id, call_type, \"startTime\", "
             "\"endTime\") VALUES ('litellm-old-row', 'acompletion', now(), now())")
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        st, h, _ = stack.chat("m", "upgrade", {"user": "upgrade"})
        check_eq(st, 200, "status")
        _exactly(pg, [h["x-litellm-call-id"]], "upgrade")
        check_eq(_count(pg, "request_id = 'litellm-old-row'"), 1, "LiteLLM's rows kept")
    finally:
        stack.stop()
