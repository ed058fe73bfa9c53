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


def test_full_spool_holds_records_in_the_gateway(env):
    """F-16, scaled: PostgreSQL away and the spool full (64 KiB here): the logger stops
    acknowledging, the gateway keeps the records and resends them, requests are still served,
    and once PostgreSQL is back every answered request has its row, once."""
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url, extra_env={"LP_SPOOL_MAX_MB": "0.0625"})
    try:
        pg.stop()
        ids = []
        for _ in range(150):  # about 150 KB of records for a 64 KiB spool
            st, h, _ = stack.chat("m", extra={"user": "spoolfull"})
            check_eq(st, 200, "served while the spool was full")
            ids.append(h["x-litellm-call-id"])
        wait_for(lambda: "spool full" in stack.procs["logger"].text(), 10,
                 what="the spool to fill")
        check(os.path.getsize(stack.spool) <= 64 * 1024, "the spool stayed within its bound")
        held = stack.http.request("GET", "/metrics")[2].decode()
        pending = [ln for ln in held.splitlines()
                   if ln.startswith("llmproxy_usage_records_pending ")]
        check(pending and float(pending[0].split()[1]) > 0, "the gateway holds the rest")
        pg.start()
        _exactly(pg, ids, "spoolfull", timeout=60)
        wait_for(lambda: os.path.getsize(stack.spool) == 0, 30, what="the spool drained")
    finally:
        stack.stop()


def test_damaged_spool_is_read_past(env):
    """A spool damaged on disk (NUL blocks after a power cut, garbage, a record without an
    id, a half-written last line): the records in it still reach PostgreSQL, the rest is
    counted and skipped, and the logger neither crashes nor stalls (Z-8's regression)."""
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url)
    tag = "dmg-" + os.urandom(4).hex()
    try:
        stack.procs["logger"].kill()

        def record(n):
            return json.dumps({"request_id": "%s-%d" % (tag, n), "call_type": "acompletion",
                               "api_key": "", "spend": 0, "total_tokens": 1, "model": "m",
                               "user": tag, "status": "success",
                               "startTime": "2026-11-30T00:00:00Z",
                               "endTime": "2026-11-30T00:00:01Z"}).encode()
        damaged = (record(1) + b"\n" +
                   b"\0" * 4096 + b"\n" +
                   b'{"request_id": "' + tag.encode() + b'-x\0y", "user": "x"}\n' +
                   b"not json at all\n" +
                   b'{"no_request_id": true}\n' +
                   record(2)[:40] + b"\0" + record(2)[40:] + b"\n" +
                   record(3) + b"\n" +
                   record(4)[:30])  # cut mid-line by a crash
        with open(stack.spool, "ab") as f:
            f.write(damaged)
        _restart_logger(stack)
        wait_for(lambda: _count(pg, "\"user\" = '%s'" % tag) == 2, 15,
                 what="the two whole records of the damaged spool")
        rows = pg.query("SELECT request_id FROM \"LiteLLM_SpendLogs\" WHERE \"user\" = '%s'"
                        % tag)
        check_eq(sorted(r[0] for r in rows), ["%s-1" % tag, "%s-3" % tag], "the whole records")
        wait_for(lambda: os.path.getsize(stack.spool) == 0, 10, what="the spool drained")
        check(stack.procs["logger"].alive(), "the logger survived its spool")
        log = stack.procs["logger"].text()
        check_eq(log.count("skipping a line that is not a usage record"), 5, "lines skipped")
        check_eq(stack.chat("m")[0], 200, "and serves on")
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


def _prom(text):
    """Parse Prometheus text: {(name, frozenset(labels)): value}; raises on a bad line."""
    import re
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+Inf-]+|NaN)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = line_re.match(line)
        check(m, "not Prometheus text: %r" % line)
        labels = frozenset((k, v) for k, v, _ in label_re.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def test_metrics_move_with_traffic(env):
    stack = Stack(env, _cfg(env), db_url=env.pg.url)
    try:
        status, h, body = stack.http.request("GET", "/metrics")
        check_eq(status, 200, "public by default, as in LiteLLM")
        check(h["content-type"].startswith("text/plain"), "content type")
        before = _prom(body.decode())
        for _ in range(5):
            check_eq(stack.chat("m", "count")[0], 200, "status")
        check_eq(stack.chat("nope")[0], 400, "status")

        def ready():
            m = _prom(stack.http.request("GET", "/metrics")[2].decode())
            reqs = sum(v for (n, l), v in m.items()
                       if n == "llmproxy_requests_total" and ("model_group", "m") in l)
            return m if reqs - sum(v for (n, l), v in before.items()
                                  if n == "llmproxy_requests_total" and
                                  ("model_group", "m") in l) >= 5 else None
        m = wait_for(ready, what="5 more requests counted")
        key = ("llmproxy_request_duration_seconds_count", frozenset([("model_group", "m")]))
        check(m[key] >= 5, "latency histogram counts")
        toks = m[("llmproxy_tokens_total", frozenset([("model_group", "m"),
                                                      ("type", "completion")]))]
        check(toks > 0, "tokens")
        check(m[("llmproxy_spend_usd_total", frozenset([("model_group", "m")]))] > 0, "spend")
        check(any(n == "llmproxy_requests_total" and ("status", "400") in l
                  for (n, l) in m), "the 400 is counted")
        check_eq(m[("llmproxy_router_up", frozenset())], 1, "router up")
        check_eq(m[("llmproxy_workers", frozenset())], 1, "workers")
        check(any(n == "llmproxy_deployment_cooling" for (n, _) in m), "deployment figures")
        wait_for(lambda: _prom(stack.http.request("GET", "/metrics")[2].decode())[
            ("llmproxy_usage_records_acked_total", frozenset())] >= 5, what="records acked")
    finally:
        stack.stop()


def test_metrics_auth_when_required(env):
    cfg = json.loads(_cfg(env))
    cfg["litellm_settings"] = {"require_auth_for_metrics_endpoint": True}
    stack = Stack(env, json.dumps(cfg))
    try:
        check_eq(stack.http.request("GET", "/metrics")[0], 401, "needs a key")
        check_eq(stack.http.request("GET", "/metrics", headers=stack.auth())[0], 200, "key")
    finally:
        stack.stop()


def test_spend_logs_endpoint(env):
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        ids = []
        for i in range(3):
            st, h, _ = stack.chat("m", "spend", {"user": "spender"})
            ids.append(h["x-litellm-call-id"])
        _exactly(pg, ids, "spender")
        status, _, body = stack.http.json("GET", "/spend/logs")
        check_eq(status, 401, "master key only")
        status, _, rows = stack.http.json("GET", "/spend/logs?user_id=spender",
                                          headers=stack.auth())
        check_eq(status, 200, "status")
        check_eq(sorted(r["request_id"] for r in rows), sorted(ids), "rows for the user")
        r = rows[0]
        check_eq(r["api_key"], hashlib.sha256(MASTER_KEY.encode()).hexdigest(), "hashed key")
        check(r["spend"] > 0 and r["total_tokens"] > 0 and r["startTime"], "row values")
        status, _, one = stack.http.json("GET", "/spend/logs?request_id=" + ids[1],
                                         headers=stack.auth())
        check_eq([x["request_id"] for x in one], [ids[1]], "by request id")
        status, _, rows = stack.http.json("GET", "/spend/logs?api_key=" + MASTER_KEY +
                                          "&model=m&limit=2", headers=stack.auth())
        check_eq(len(rows), 2, "limit, key (hashed for the lookup) and model filters")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        status, _, rows = stack.http.json("GET", "/spend/logs?user_id=spender&start_date=%s"
                                          "&end_date=%s" % (today, today), headers=stack.auth())
        check_eq(len(rows), 3, "date range")
        status, _, body = stack.http.json("GET", "/spend/logs?start_date=yesterday",
                                          headers=stack.auth())
        check_eq(status, 400, "bad date")
        status, _, rows = stack.http.json("GET", "/spend/logs?user_id=x%27%20OR%201%3D1--",
                                          headers=stack.auth())
        check_eq((status, rows), (200, []), "filters are parameters, never SQL")
    finally:
        stack.stop()


def test_summary_lines(env):
    stack = Stack(env, _cfg(env), extra_env={"LOG_SUMMARY_INTERVAL": "0.5"})
    try:
        for _ in range(4):
            stack.chat("m", "sum")
        line = wait_for(lambda: [ln for ln in stack.logger_lines()
                                 if " summary " in ln and "model=m " in ln], what="summary")[0]
        for part in ("requests=4", "errors=0", "p50=", "p99=", "in=", "out=", "$"):
            check(part in line, "%s in %r" % (part, line))
    finally:
        stack.stop()


def test_concurrent_records_batched_exactly_once(env):
    """Records of one gateway turn travel together (one RECORD, one line each) and the logger
    acknowledges them gathered: under 16 concurrent connections every answer still has
    exactly one row and one printed line, every record is acknowledged and none resent."""
    stack = Stack(env, _cfg(env), db_url=env.pg.url)
    try:
        load = Load(stack, threads=16, tag="batch")
        time.sleep(2.0)
        ids = load.stop()
        check(len(ids) >= 200 and load.other == 0,
              "answers under load: %d ok, %d other" % (len(ids), load.other))
        _exactly(env.pg, ids, "batch")

        def lines():
            return [ln for ln in stack.logger_lines() if " req=" in ln]
        wait_for(lambda: len(lines()) >= len(ids), what="a line per answer")
        printed = sorted(ln.split("req=")[1].split()[0] for ln in lines())
        check_eq(printed, sorted(ids), "one line per answer")

        def metrics():
            m = _prom(stack.http.request("GET", "/metrics")[2].decode())
            return m if m.get(("llmproxy_usage_records_pending", frozenset())) == 0 else None
        m = wait_for(metrics, what="every record acknowledged")
        check(m[("llmproxy_usage_records_acked_total", frozenset())] >= len(ids), "acked")
        check_eq(m[("llmproxy_usage_records_resent_total", frozenset())], 0, "records resent")
    finally:
        stack.stop()


def test_two_loggers_share_the_records(env):
    pg = env.pg
    stack = Stack(env, _cfg(env), db_url=pg.url)
    try:
        # A second logger on its own endpoint and spool; the gateway connects to both.
        ep2 = "tcp://127.0.0.1:%d" % __import__("harness").free_port()
        stack.start("logger2", ["llm-logger", "--bind", ep2, "--spool",
                                os.path.join(stack.dir, "logger2.spool")],
                    stdout=os.path.join(stack.dir, "logger2.out"))
        # The gateway must find both listening, or its first records all go to one.
        wait_for(lambda: "writing usage" in stack.procs["logger2"].text(), 10,
                 what="the second logger to start")
        gw = stack.procs["gateway"]
        gw.stop()
        stack.start("gateway", ["llm-gateway", "--port", str(stack.port), "--router",
                                stack.front, "--logger", stack.logger_ep + "," + ep2])
        stack.http.close()
        stack.wait_ready()
        ids = []
        time.sleep(0.3)  # ZeroMQ connects to both endpoints in the background
        for _ in range(40):
            st, h, _ = stack.chat("m", "two", {"user": "two"})
            check_eq(st, 200, "status")
            ids.append(h["x-litellm-call-id"])
        _exactly(pg, ids, "two")
        with open(os.path.join(stack.dir, "logger2.out")) as f:
            second = sum(1 for ln in f if "req=" in ln)
        check(5 <= second <= 35, "both loggers took records (second: %d of 40)" % second)
    finally:
        stack.stop()
