"""The IDs of ../shared/RELIABILITY.md, the tests that cover each, and docs/RELIABILITY.md.

A reference in `tests` is one of:
  test_<module>.py:<test>   an integration test (tests/integration/)
  fuzz/<target>             a libFuzzer target (tests/fuzz/, `make fuzz-smoke` in `make test`)
  reliability/<scenario>    a `make reliability` scenario (tests/reliability/reliability.py)
  soak                      `make soak` (tests/reliability/soak.py)
`gap` says what the catalogue asks that no test checks, and why.
"""

# Integration tests of test_reliability.py -> the name of their FIGURES entry.
TEST_FIGURES = {
    "test_reliability.py:test_worker_kill9_under_load": "worker_kill9",
    "test_reliability.py:test_router_kill9_under_load": "router_kill9",
    "test_reliability.py:test_gateway_kill9_under_load": "gateway_kill9",
    "test_reliability.py:test_redis_frozen_then_killed_under_load": "redis_freeze_kill",
    "test_reliability.py:test_upstream_100mb_body_bounded": "upstream_100mb",
    "test_reliability.py:test_upstream_timeouts_honoured": "upstream_timeouts",
    "test_reliability.py:test_client_gone_mid_request_cancels_upstream": "client_gone_nonstream",
    "test_reliability.py:test_slowloris_and_slow_bodies_do_not_block_others": "slowloris",
    "test_reliability.py:test_idle_keepalive_connections_bounded": "idle_connections",
    "test_reliability.py:test_request_smuggling_and_oversize_headers": "smuggling",
    "test_reliability.py:test_overload_is_shed_with_503": "overload",
    "test_reliability.py:test_clientside_credentials_only_as_configured": "clientside",
}

R = "test_reliability.py:"
CATALOGUE = [
    # 3.1 Load
    {"id": "L-1", "what": "steady mixed load, every request succeeds, rows = requests",
     "tests": ["test_foundation.py:test_every_request_recorded_once",
               "test_foundation.py:test_both_workers_take_load", "soak"],
     "gap": "Rate, p50/p99 overhead: `make bench` (docs/BENCHMARKS.md), not repeated here."},
    {"id": "L-2", "what": "soak, healthy and failing upstream: RSS and fds flat",
     "tests": ["soak"],
     "gap": "Scaled to minutes (SOAK_SECONDS); the ASan/LSan run at N/4 is `make test-asan`."},
    {"id": "L-3", "what": "overload at 2x the knee: shed with 429/503, bounded memory",
     "tests": [R + "test_overload_is_shed_with_503"],
     "gap": "Scaled: ten times the workers' capacity against a slow upstream, not twice the "
            "knee of a measured load curve (that needs more than 2 cores). Shedding is the "
            "router's bounded queue (10,000 jobs, 5 s each, then 503 with retry-after); "
            "there is no adaptive concurrency limit."},
    {"id": "L-4", "what": "idle keep-alive, slowloris headers and bodies, slow SSE readers",
     "tests": [R + "test_idle_keepalive_connections_bounded",
               R + "test_slowloris_and_slow_bodies_do_not_block_others",
               "test_streaming.py:test_slow_reader_bounded_memory",
               "test_streaming.py:test_stalled_reader_is_not_a_stalled_provider",
               R + "test_connections_past_the_cap_answered_503",
               R + "test_connections_per_address_limited_when_asked",
               "reliability/idle10k", "reliability/slowloris"],
     "gap": "The per-address limit (--max-connections-per-ip) is off by default, since a "
            "load balancer or NAT in front gives every client one address; it closes the "
            "connection at accept, without an HTTP answer (libmicrohttpd's behaviour)."},
    {"id": "L-5", "what": "200 concurrent long streams, fair progress, bounded per stream",
     "tests": ["reliability/streams200"],
     "gap": "Scaled: 200 streams of 30 s once, not 60 s streams for 10 min."},
    # 3.2 Faults
    {"id": "F-1a", "what": "worker kill -9 before the upstream call: re-dispatched",
     "tests": ["test_router.py:test_worker_killed_mid_request_no_hang",
               R + "test_worker_kill9_under_load", "reliability/kill_worker"],
     "gap": "No toxiproxy to hold the connect: the calls are in the mock's delay when the "
            "worker dies (so the mock may see 2 calls for one request)."},
    {"id": "F-1b", "what": "worker kill -9 after the upstream call started",
     "tests": [R + "test_worker_kill9_under_load", "reliability/kill_worker"],
     "gap": "By design (proto/PROTOCOL.md) a job that sent nothing to the client is "
            "re-dispatched once even after its call started; there is no "
            "retry_after_dispatch switch and no 502 default."},
    {"id": "F-2", "what": "worker kill -9 mid-stream: error event, no [DONE], row incomplete",
     "tests": [R + "test_worker_kill9_under_load"]},
    {"id": "F-3", "what": "router kill -9 and restart under load",
     "tests": [R + "test_router_kill9_under_load", "reliability/kill_router"]},
    {"id": "F-4a", "what": "gateway SIGTERM drains",
     "tests": ["test_reload.py:test_sigterm_drains_streams"]},
    {"id": "F-4b", "what": "gateway kill -9: upstream calls cancelled, restarted and serving",
     "tests": [R + "test_gateway_kill9_under_load", "reliability/kill_gateway"],
     "gap": "Only the gateway makes usage records, so requests in flight in a killed gateway "
            "have no row (the catalogue wants a client_gone row)."},
    {"id": "F-5", "what": "logger kill -9 loop: rows exact, spool replayed",
     "tests": ["test_logger.py:test_logger_killed_under_load_loses_nothing",
               "test_logger.py:test_duplicate_delivery_is_stored_and_billed_once",
               "reliability/kill_logger"],
     "gap": "No redelivery counter is exported to prove the path ran (the row equality does)."},
    {"id": "F-6", "what": "PostgreSQL stopped under load: cached keys served, unknown 503",
     "tests": ["test_logger.py:test_postgres_outage_loses_nothing", "reliability/pg_outage30"]},
    {"id": "F-7", "what": "PostgreSQL frozen (SIGSTOP): detected, intake never blocks",
     "tests": ["reliability/pg_frozen"]},
    {"id": "F-8", "what": "Redis shut down / frozen: fail open, breaker, limits back",
     "tests": ["test_keys.py:test_redis_killed_keeps_serving",
               "test_keys.py:test_redis_down_fail_closed",
               "test_cache.py:test_redis_cache_shared_and_outage",
               R + "test_redis_frozen_then_killed_under_load", "reliability/redis_frozen"],
     "gap": "No counter of requests admitted without Redis (only a log line per outage)."},
    {"id": "F-9", "what": "429 with Retry-After: cooldown, other deployment, no retry storm",
     "tests": ["test_foundation.py:test_upstream_429_keeps_status_and_retry_after",
               "test_router.py:test_cooldown_then_recovery",
               "test_router.py:test_all_cooling_answers_503_without_calling",
               "test_streaming.py:test_failure_before_first_byte_is_a_json_error"]},
    {"id": "F-10", "what": "5xx/529 always from A: retried on B, A ejected",
     "tests": ["test_foundation.py:test_upstream_5xx_mapped",
               "test_foundation.py:test_retry_on_another_deployment",
               "test_streaming.py:test_failure_before_first_byte_is_retried",
               R + "test_upstream_529_and_connection_refused"],
     "gap": "Ejection is LiteLLM's cooldown (allowed_fails, fixed cooldown_time): no doubling "
            "ejection time, no max_ejection_percent."},
    {"id": "F-11", "what": "connect / first byte / idle gap / total deadlines within 10 %",
     "tests": [R + "test_upstream_timeouts_honoured", "test_foundation.py:test_upstream_timeout",
               "test_streaming.py:test_stream_timeout_before_first_byte",
               "test_streaming.py:test_stream_stall_ends_with_error_event"],
     "gap": "A timeout is 408 `timeout` / `stream_timeout` (LiteLLM's status, "
            "docs/ARCHITECTURE.md), not the catalogue's 504."},
    {"id": "F-12", "what": "garbage from upstream: HTML, truncated JSON, resets, 100 MB, "
                           "10 MiB SSE line, redirects",
     "tests": ["test_foundation.py:test_upstream_unreachable_and_garbage",
               "test_streaming.py:test_invalid_json_event", R + "test_upstream_garbage_answers",
               R + "test_upstream_reset_mid_body", R + "test_upstream_100mb_body_bounded",
               R + "test_upstream_529_and_connection_refused", "fuzz/openai_response",
               "fuzz/openai_stream", "fuzz/sse"],
     "gap": "Not tested: gzip bomb (libcurl asks for no compression: CURLOPT_ACCEPT_ENCODING "
            "is unset, so a gzip body is opaque bytes and fails to parse), 101 upgrade, an "
            "api_base pointing at the gateway itself (no loop detection)."},
    {"id": "F-13", "what": "truncated streams end with an error, never [DONE]",
     "tests": ["test_streaming.py:test_truncated_upstream_ends_with_error_event",
               "test_providers.py:test_anthropic_truncated_stream",
               "test_providers.py:test_gemini_truncated_stream",
               "test_messages.py:test_stream_cut_ends_with_error_event"]},
    {"id": "F-14", "what": "client gone mid-stream / mid-request: upstream cancelled <= 1 s",
     "tests": ["test_streaming.py:test_client_disconnect_cancels_upstream",
               R + "test_client_gone_mid_request_cancels_upstream"]},
    {"id": "F-15", "what": "logger SIGSTOP under load: request path never blocks",
     "tests": ["test_logger.py:test_duplicate_delivery_is_stored_and_billed_once",
               "reliability/logger_frozen"],
     "gap": "No zmq drop counter is exported."},
    {"id": "F-16", "what": "spool volume full during a PostgreSQL outage",
     "tests": ["test_logger.py:test_full_spool_holds_records_in_the_gateway",
               "tests/unit/test_spool.c:test_limit_refuses",
               "tests/unit/test_spool.c:test_steady_traffic_keeps_disk_bounded"],
     "gap": "Scaled: the spool's own bound (--spool-max-mb, 64 KiB in the test) stands for a "
            "full volume; a real ENOSPC (a tiny tmpfs needs a mount) takes the same path, a "
            "failed write or sync refuses the batch and nothing is acknowledged."},
    {"id": "F-17", "what": "SIGHUP reload: bad config kept out, new config applied",
     "tests": ["test_reload.py:test_reload_adds_and_removes_groups",
               "test_reload.py:test_reload_keeps_requests_in_flight",
               "test_reload.py:test_bad_config_rejected",
               "test_reload.py:test_worker_joins_under_traffic",
               "test_ops.py:test_config_reload_is_audited"]},
    {"id": "F-18", "what": "TEI down or slow: embeddings fail fast, chat unaffected",
     "tests": ["test_providers.py:test_tei_embeddings_and_base64",
               R + "test_upstream_529_and_connection_refused"],
     "gap": "Connection refused is tested on an OpenAI deployment; a TEI-specific outage is "
            "not."},
    # 3.3 Bad input
    {"id": "B-1", "what": "malformed JSON", "tests": [
        "test_foundation.py:test_bad_json_and_fields", R + "test_malformed_and_deep_json",
        "fuzz/json", "fuzz/request"]},
    {"id": "B-2", "what": "huge bodies: declared, chunked, 5,000 messages",
     "tests": [R + "test_huge_bodies"],
     "gap": "A chunked body past the limit is dropped as it arrives (memory flat) but answered "
            "413 only when it ends: libmicrohttpd 0.9.75 takes no response during a body, so "
            "one that never ends waits for the 120 s inactivity timeout."},
    {"id": "B-3", "what": "request smuggling corpus", "tests": [
        R + "test_request_smuggling_and_oversize_headers"],
     "gap": "obs-fold lines, bare LF line endings and a NUL in a header value are tolerated "
            "by libmicrohttpd 0.9.75's parser (no option refuses them before 0.9.77); each "
            "is still read as one request with one length (tested), so nothing is smuggled."},
    {"id": "B-4", "what": "oversize headers and URL", "tests": [
        R + "test_request_smuggling_and_oversize_headers", R + "test_authorization_variants"],
     "gap": "The 431 answers are libmicrohttpd's HTML, not OpenAI JSON."},
    {"id": "B-5", "what": "deep nesting", "tests": [R + "test_malformed_and_deep_json",
                                                    "fuzz/json"]},
    {"id": "B-6", "what": "invalid UTF-8, surrogates, NUL", "tests": [R + "test_invalid_utf8",
                                                                      "fuzz/json"]},
    {"id": "B-7", "what": "wrong Content-Type: 415", "tests": [
        "test_foundation.py:test_bad_json_and_fields",
        R + "test_unknown_fields_and_content_type"]},
    {"id": "B-8", "what": "Authorization abuse: 401, nothing echoed", "tests": [
        "test_foundation.py:test_models_need_a_key",
        "test_foundation.py:test_unauthenticated_chat_never_reaches_upstream",
        R + "test_authorization_variants"]},
    {"id": "B-9", "what": "SQL metacharacters round-trip; parameterised statements", "tests": [
        "test_keys.py:test_sql_metacharacters_round_trip"],
     "gap": "No pg_stat_statements / log_statement check of the statement texts."},
    {"id": "B-10", "what": "CR/LF never reaches a header", "tests": [
        R + "test_crlf_never_reaches_a_header"],
     "gap": "CR/LF in `user`/metadata is accepted (200): those values are never copied into a "
            "header, which the test verifies on both sides."},
    {"id": "B-11", "what": "path traversal and normalisation", "tests": [
        "test_foundation.py:test_unknown_route_and_method",
        R + "test_paths_and_host_headers_do_not_bypass_auth"]},
    {"id": "B-12", "what": "SSRF: per-request api_base/base_url refused (400)", "tests": [
        R + "test_per_request_upstream_override_refused",
        R + "test_clientside_credentials_only_as_configured", R + "test_upstream_garbage_answers",
        "tests/unit/test_cfg.c:test_clientside_rules",
        "tests/unit/test_cfg.c:test_clientside_addresses", "fuzz/url_guard"],
     "gap": "The allowlist is LiteLLM's configurable_clientside_auth_params (patterns match "
            "the whole URL); the payload corpus is sampled (8 spellings of loopback and "
            "metadata addresses); a DNS name resolving to 127.0.0.1 is covered by the "
            "resolved-address check (`localhost`), not by a test DNS server. The public-host "
            "part of the test needs an address besides loopback on the machine."},
    {"id": "B-13", "what": "Host / forwarding headers do not bypass auth", "tests": [
        R + "test_paths_and_host_headers_do_not_bypass_auth",
        "test_keys.py:test_virtual_keys_cannot_manage_keys"],
     "gap": "Routes x {no key, virtual, master} is sampled (4 routes), not enumerated."},
    {"id": "B-14", "what": "model names: exact match, no folding", "tests": [
        "test_foundation.py:test_unknown_model", R + "test_model_names",
        "test_keys.py:test_model_allow_list"],
     "gap": "Unknown models are 400 `model_not_found` (LiteLLM's status), not 404."},
    {"id": "B-15", "what": "role x route matrix, no self-escalation", "tests": [
        "test_keys.py:test_virtual_keys_cannot_manage_keys", "test_keys.py:test_key_lifecycle"],
     "gap": "There are no users, teams or roles: virtual keys cannot call any management "
            "route, so escalation has nothing to escalate to."},
    {"id": "B-16", "what": "config-like request fields ignored or 400", "tests": [
        R + "test_per_request_upstream_override_refused",
        "test_foundation.py:test_openai_compatible_call",
        "test_cache.py:test_tenants_do_not_share"]},
    {"id": "B-17", "what": "every entry point x every policy hook", "tests": [
        "test_keys.py:test_model_allow_list", "test_keys.py:test_rpm_limit_exact",
        "test_messages.py:test_virtual_key_and_spend_record"],
     "gap": "No hook counters exist; paths are sampled, not enumerated."},
    {"id": "B-18", "what": "out-of-range numbers and wrong types: 400 or clamp", "tests": [
        R + "test_numeric_bounds", R + "test_wrong_types_refused"]},
    # 3.4 Secrets
    {"id": "S-1", "what": "canary secrets absent from logs, DB, Redis", "tests": [
        "test_keys.py:test_key_lifecycle", "test_reload.py:test_env_file_secrets",
        "test_foundation.py:test_upstream_auth_error_hides_key", R + "test_authorization_variants"],
     "gap": "Checked per module (teardowns scan logs and pg_dump for the provider, master and "
            "virtual keys); not at debug level, not for 8-byte fragments, not in Redis."},
    {"id": "S-2", "what": "spend/audit rows after error paths hold no secrets", "tests": [
        "test_foundation.py:test_error_requests_are_recorded",
        "test_ops.py:test_audit_log_of_key_actions"],
     "gap": "The pg_dump scan runs after test_keys only."},
    {"id": "S-3", "what": "/health, /metrics, /models leak nothing", "tests": [
        "test_router.py:test_health_lists_endpoints_without_secrets",
        "test_foundation.py:test_liveliness_is_public",
        "test_logger.py:test_metrics_auth_when_required"]},
    {"id": "S-4", "what": "error bodies echo no secret", "tests": [
        "test_foundation.py:test_unauthenticated_chat_never_reaches_upstream",
        "test_foundation.py:test_upstream_auth_error_hides_key",
        R + "test_authorization_variants"]},
    {"id": "S-5", "what": "virtual keys stored hashed; digest not a credential", "tests": [
        "test_keys.py:test_key_lifecycle", R + "test_authorization_variants"],
     "gap": "Stored as plain SHA-256 (LiteLLM's `token` column), not HMAC with a pepper."},
    {"id": "S-6", "what": "key separation; cache keyed by full digest", "tests": [],
     "gap": "Not covered: there is no pepper, encryption or signing key to separate; the key "
            "cache is keyed by the full sha256 hex (gw_keys)."},
    {"id": "S-7", "what": "start-up guards", "tests": [
        "test_foundation.py:test_daemons_refuse_weak_or_missing_master_key",
        "test_foundation.py:test_config_errors_name_file_line_and_key"],
     "gap": "Unknown config keys are warnings (LiteLLM compatibility), not fatal."},
    {"id": "S-8", "what": "constant-time key comparison (dudect)", "tests": [],
     "gap": "Not covered: no dudect harness; the presented key's SHA-256 is compared with the "
            "master key's by CRYPTO_memcmp (lp_sha256_hex_equal) and virtual keys are looked up "
            "by digest."},
    # 3.5 Fuzzing
    {"id": "Z-1", "what": "request parsing and validation", "tests": ["fuzz/request", "fuzz/json"]},
    {"id": "Z-2", "what": "SSE framing per provider", "tests": [
        "fuzz/sse", "fuzz/openai_stream", "fuzz/anthropic_stream", "fuzz/gemini_stream"]},
    {"id": "Z-3", "what": "provider non-stream responses", "tests": [
        "fuzz/openai_response", "fuzz/anthropic_response", "fuzz/gemini_response",
        "fuzz/voyage_response", "fuzz/tei_response"]},
    {"id": "Z-4", "what": "YAML config loader", "tests": ["fuzz/yaml", "fuzz/cfg"]},
    {"id": "Z-5", "what": "ZeroMQ frame decoding", "tests": ["fuzz/msg"]},
    {"id": "Z-6", "what": "outbound header builder and auth-header parser", "tests": [],
     "gap": "Not covered by a dedicated target (fuzz/request reaches the auth parser only "
            "through MHD_lookup_connection_value's fixed headers)."},
    {"id": "Z-7", "what": "URL guard (SSRF allowlist)", "tests": ["fuzz/url_guard"]},
    {"id": "Z-8", "what": "disk-spool record decoder", "tests": [
        "fuzz/spool", "test_logger.py:test_damaged_spool_is_read_past"]},
    # Sanitizers
    {"id": "ASan", "what": "integration suite under ASan+UBSan, no report", "tests": [
        "make test-asan"]},
    {"id": "valgrind", "what": "no leak in a daemon run", "tests": ["reliability/valgrind"]},
]

SECTIONS = [("Load", "L-"), ("Faults", "F-"), ("Bad input", "B-"), ("Secrets", "S-"),
            ("Fuzzing", "Z-"), ("Sanitizers", "")]


def _fmt(v):
    if isinstance(v, dict):
        return ", ".join("%s %s" % (k, _fmt(x)) for k, x in v.items() if k != "crash_logs")
    if isinstance(v, list):
        return "[" + "; ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _status(ref, results, soak):
    """(status word, figures text) of one reference."""
    if ref.startswith("fuzz/"):
        t = (results.get("fuzz") or {}).get("targets", {}).get(ref[5:])
        return (t["status"], t["detail"]) if t else ("make test", "")
    if ref.startswith("reliability/"):
        r = results.get(ref[12:])
        if not r:
            return ("not run", "")
        return ("PASS" if r.get("pass") else "FAIL", r.get("summary", ""))
    if ref == "soak":
        if not soak:
            return ("not run", "run `make soak`")
        return ("PASS" if soak.get("pass") else "FAIL", soak.get("summary", ""))
    if ref == "make test-asan":
        return ("make test-asan", "")
    for scenario in ("integration", "existing"):
        t = (results.get(scenario) or {}).get("tests", {}).get(ref)
        if t:
            fig = ""
            name = TEST_FIGURES.get(ref)
            if name:
                fig = _fmt((results["integration"].get("figures") or {}).get(name, {}))
            return (t["status"], fig or t.get("reason", ""))
    return ("make test", "")


def render(results, soak, machine, build):
    out = ["# Reliability and security: what is covered, by which test, with figures", "",
           "Generated by `make reliability` (tests/reliability/reliability.py) on %s, %s "
           "cores, kernel %s, build `%s`. Do not edit by hand: the IDs are those of "
           "../shared/RELIABILITY.md; the mapping lives in tests/reliability/catalogue.py."
           % (machine["date"], machine["cores"], machine["kernel"], build), "",
           "Status: PASS/FAIL as measured in this run; `make test` for tests this run did not "
           "execute (integration tests of other files unless `RELIABILITY_ALL=1`, fuzz targets "
           "with `LP_SKIP_FUZZ=1`). Test names are `tests/integration/<file>:<test>`, "
           "`fuzz/<target>` (tests/fuzz), `reliability/<scenario>` and `soak` "
           "(tests/reliability).", ""]
    out += ["## Scenarios of this run", "", "| scenario | status | seconds | outcome |",
            "|---|---|---|---|"]
    for name, r in results.items():
        if name.startswith("_"):
            continue
        word = "SKIP" if "skipped" in r else ("PASS" if r.get("pass") else "FAIL")
        out.append("| %s | %s | %s | %s |" % (name, word, r.get("seconds", ""),
                                              _cell(r.get("summary") or r.get("skipped") or "")))
    if soak:
        out.append("| soak (last `make soak`) | %s | %s | %s |"
                   % ("PASS" if soak.get("pass") else "FAIL", soak.get("seconds", ""),
                      _cell(soak.get("summary", ""))))
    out.append("")
    uncovered = []
    for title, prefix in SECTIONS:
        out += ["## " + title, "", "| ID | scenario | covered by | status | measured |",
                "|---|---|---|---|---|"]
        for e in CATALOGUE:
            if (prefix and not e["id"].startswith(prefix)) or \
                    (not prefix and e["id"][:2] in ("L-", "F-", "B-", "S-", "Z-")):
                continue
            if not e["tests"]:
                uncovered.append(e)
                out.append("| %s | %s | - | not covered | %s |" % (e["id"], _cell(e["what"]),
                                                                   _cell(e.get("gap", ""))))
                continue
            first = True
            for ref in e["tests"]:
                st, fig = _status(ref, results, soak)
                out.append("| %s | %s | `%s` | %s | %s |"
                           % (e["id"] if first else "", _cell(e["what"]) if first else "",
                              ref, st, _cell(fig)))
                first = False
            if e.get("gap"):
                out.append("| | | *gap* | | %s |" % _cell(e["gap"]))
        out.append("")
    out += ["## Not covered, and why", ""]
    for e in uncovered:
        out.append("- **%s** (%s): %s" % (e["id"], e["what"], e.get("gap", "")))
    out.append("")
    fails = []
    for scenario in ("integration", "existing"):
        for name, t in sorted(((results.get(scenario) or {}).get("tests") or {}).items()):
            if t["status"] == "FAIL":
                fails.append("- `%s`: %s" % (name, t.get("reason", "")))
    for name, r in results.items():
        if not name.startswith("_") and name not in ("integration", "existing") and \
                "skipped" not in r and not r.get("pass"):
            fails.append("- `reliability/%s`: %s" % (name, r.get("summary", "")))
            if r.get("figures", {}).get("crash_logs"):
                for daemon, log in r["figures"]["crash_logs"].items():
                    fails.append("  - %s log tail: `%s`" % (daemon, _cell(log[-600:])))
    out += ["## Failures of this run", ""] + (fails or ["None."]) + [""]
    if soak:
        out += ["## Soak (last `make soak`, %s)" % (soak.get("machine") or {}).get("date", ""), "",
                "RSS delta between the end of the warm and of the measured batch, and its "
                "least-squares slope over the measured batch; fds, threads and CLOSE-WAIT "
                "after 30 s idle, against the start. Pass: <= 16 MiB, <= 0.5 MiB/min, fds +-2 "
                "(a worker keeps its provider connections for reuse), threads +0, CLOSE-WAIT 0.",
                "", "| daemon | healthy MiB | healthy MiB/min | failing MiB | failing MiB/min | "
                "fds | threads | CLOSE-WAIT |", "|---|---|---|---|---|---|---|---|"]
        for name, d in sorted((soak.get("daemons") or {}).items()):
            out.append("| %s | %+.2f | %+.3f | %+.2f | %+.3f | %+d | %+d | %d |" % (
                name, d["healthy"]["rss_phase_delta_mib"], d["healthy"]["rss_slope_mib_per_min"],
                d["failing"]["rss_phase_delta_mib"], d["failing"]["rss_slope_mib_per_min"],
                d["fds_delta"], d["threads_delta"], d["after_idle"]["close_wait"]))
        out.append("")
    return "\n".join(out)
