"""Hot reload (SIGHUP), bad-config rejection, graceful SIGTERM drain, workers joining under load."""

import json
import os
import signal
import threading
import time

from harness import (Http, Stack, check, check_eq, check_error, config, deployment, http_raw,
                     wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(6).hex()
DAEMONS = ("router", "gateway", "worker0")


def _models(env, extra=None):
    m = env.mock.base
    models = [deployment("a", "openai/a", mock_response="answer from a"),
              deployment("slow", "openai/x", m + "/delay/1500/v1", api_key=UPSTREAM_KEY)]
    return models + (extra or [])


def _write(stack, text):
    tmp = stack.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, stack.config_path)


def _hup(stack, names=DAEMONS, marker="config reloaded"):
    """SIGHUP to the daemons; wait until each logged marker once more."""
    before = {n: stack.procs[n].text().count(marker) for n in names}
    for n in names:
        stack.procs[n].send(signal.SIGHUP)
    for n in names:
        try:
            wait_for(lambda n=n: stack.procs[n].text().count(marker) > before[n], 5,
                     what="%s to log %r" % (n, marker))
        except AssertionError as e:
            raise AssertionError("%s; its log ends:\n%s" % (e, stack.procs[n].text()[-800:]))


def setup(env):
    return env


def test_reload_adds_and_removes_groups(env):
    stack = Stack(env, config(_models(env)), name="reload")
    try:
        st, _, err = stack.chat("b")
        check_error(st, err, 400, "model_not_found")
        _write(stack, config(_models(env, [deployment("b", "openai/b",
                                                      mock_response="answer from b")])))
        _hup(stack)
        st, _, body = stack.chat("b")
        check_eq((st, body["choices"][0]["message"]["content"]), (200, "answer from b"),
                 "the new group answers")
        check_eq(stack.chat("a")[0], 200, "the old group still answers")
        st, _, models = stack.http.json("GET", "/v1/models", None, stack.auth())
        check_eq(sorted(m["id"] for m in models["data"]), ["a", "b", "slow"], "/v1/models")
        # Removed again: refused at the door.
        _write(stack, config(_models(env)))
        _hup(stack)
        st, _, err = stack.chat("b")
        check_error(st, err, 400, "model_not_found")
    finally:
        stack.stop()


def test_reload_keeps_requests_in_flight(env):
    stack = Stack(env, config(_models(env)), name="reload-inflight")
    try:
        results = []

        def slow():
            results.append(Http(stack.port).json(
                "POST", "/v1/chat/completions",
                {"model": "slow", "messages": [{"role": "user", "content": "wait"}]},
                stack.auth())[0])
        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.4)
        # The deployment the calls are on changes its position; a new one is added.
        _write(stack, config([deployment("c", "openai/c", mock_response="c")] + _models(env)))
        _hup(stack)
        for t in threads:
            t.join()
        check_eq(results, [200, 200, 200], "calls in flight across the reload")
        check_eq(stack.chat("c")[0], 200, "the new config serves")
    finally:
        stack.stop()


def test_bad_config_rejected(env):
    stack = Stack(env, config(_models(env)), name="reload-bad")
    try:
        good = open(stack.config_path).read()
        _write(stack, "model_list:\n  - model_name: a\n    litellm_params:\n"
                      "      model: openai/a\n      rpm: lots\n")
        _hup(stack, marker="reload rejected")
        for n in DAEMONS:
            log = stack.procs[n].text()
            check(":5:12: litellm_params.rpm" in log, "%s names file, line and key" % n)
        check_eq(stack.chat("a")[0], 200, "the old config stays in force")
        check_eq(stack.chat("slow", extra={"timeout": 5})[0], 200, "every old group")
        _write(stack, "not: [valid yaml")
        _hup(stack, marker="reload rejected")
        check_eq(stack.chat("a")[0], 200, "still serving after a syntax error")
        _write(stack, good)
    finally:
        stack.stop()


def test_sigterm_drains_streams(env):
    m = env.mock.base
    models = _models(env) + [deployment("drip", "openai/x", m + "/chunks/15/chunk-delay/100/v1",
                                        api_key=UPSTREAM_KEY)]
    stack = Stack(env, config(models), name="drain")
    socks = []
    try:
        body = {"model": "drip", "stream": True,
                "messages": [{"role": "user", "content": "drain"}]}
        for _ in range(4):
            socks.append(http_raw(stack.port, "POST", "/v1/chat/completions", body,
                                  stack.auth()))
        time.sleep(0.3)  # the streams are flowing
        gw = stack.procs["gateway"]
        gw.send(signal.SIGTERM)
        time.sleep(0.2)
        # New connections are refused while the old streams finish.
        try:
            Http(stack.port, timeout=2).json("GET", "/health/liveliness")
            refused = False
        except OSError:
            refused = True
        check(refused, "the gateway stopped accepting")
        for s in socks:
            data = b""
            s.settimeout(15)
            while b"data: [DONE]" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            check(b"data: [DONE]" in data, "a stream in flight ended whole during the drain")
        wait_for(lambda: not gw.alive(), 10, what="the gateway to exit")
        check_eq(gw.p.returncode, 0, "clean exit after the drain")
        check("drained" in gw.text(), "the gateway said it drained")
    finally:
        for s in socks:
            s.close()
        stack.stop()


def test_worker_joins_under_traffic(env):
    stack = Stack(env, config(_models(env)), name="scale")
    stop = threading.Event()
    statuses = []

    def load():
        http = Http(stack.port)
        while not stop.is_set():
            try:
                statuses.append(http.json("POST", "/v1/chat/completions",
                                          {"model": "a",
                                           "messages": [{"role": "user", "content": "x"}]},
                                          stack.auth())[0])
            except OSError:
                statuses.append(0)
        http.close()
    threads = [threading.Thread(target=load) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        stack.add_worker()
        wait_for(lambda: Http(stack.port).json("GET", "/health/readiness")[2]["workers"] >= 2, 5,
                 what="the router to count the new worker")
        # The first worker leaves; the one that joined carries the traffic alone.
        stack.procs["worker0"].stop()
        n = len(statuses)
        wait_for(lambda: len(statuses) > n + 50, 10, what="traffic on the new worker")
    finally:
        stop.set()
        for t in threads:
            t.join()
        stack.stop()
    check(len(statuses) > 100, "traffic flowed (%d requests)" % len(statuses))
    check_eq(sorted(set(statuses)), [200], "no request failed while workers came and went")


def test_env_file_secrets(env):
    """*_FILE variables stand in for the secrets (Docker and Kubernetes secret files)."""
    keyfile = os.path.join(env.root, "upstream-key")
    with open(keyfile, "w") as f:
        f.write(UPSTREAM_KEY + "\n")
    m = env.mock.base
    models = [deployment("filed", "openai/x", m + "/v1", api_key="os.environ/FILED_KEY")]
    stack = Stack(env, config(models), extra_env={"FILED_KEY_FILE": keyfile}, name="envfile")
    try:
        env.mock.clear()
        check_eq(stack.chat("filed")[0], 200, "call with a key read from a file")
        sent = [r for r in env.mock.requests() if r["path"].endswith("/chat/completions")]
        check_eq(sent[-1]["headers"].get("authorization"), "Bearer " + UPSTREAM_KEY,
                 "the file's key, without its newline, went upstream")
    finally:
        stack.stop()
    logs = "\n".join(stack.logs().values())
    check(UPSTREAM_KEY not in logs, "the key is in no log")
