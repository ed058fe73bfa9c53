#!/usr/bin/env python3
"""`make reliability`: the long fault scenarios of issue 11, valgrind, and docs/RELIABILITY.md.

    python3 tests/reliability/reliability.py [--build build] [--only a,b] [--skip a,b]
                                             [--out docs/RELIABILITY.md]

Scenarios (each a function sc_<name> below; ../shared/RELIABILITY.md IDs in brackets):
  integration      tests/integration/test_reliability.py, figures kept   [F-*, B-*, L-4]
  existing         the other integration tests the catalogue cites (RELIABILITY_ALL=1 only;
                   `make test` runs them)
  fuzz             make fuzz-smoke (LP_SKIP_FUZZ=1 skips)                  [Z-*]
  idle10k          10,000 idle keep-alive connections, the gateway's cap  [L-4 a]
  slowloris        trickled headers and bodies against the 120 s timeout  [L-4 b, c]
  streams200       200 concurrent slow streams (30 s each)                [L-5 scaled]
  pg_outage30      PostgreSQL stopped 30 s under load, then started       [F-6]
  pg_frozen        PostgreSQL SIGSTOPped 20 s under load                  [F-7]
  logger_frozen    the logger SIGSTOPped 20 s under load                  [F-15]
  redis_frozen     Redis SIGSTOPped 15 s under load (limited key)         [F-8]
  kill_worker      kill -9 a worker every 5 s, 6 times, under load        [F-1]
  kill_router      kill -9 the router every 5 s (down 1 s), 4 times       [F-3]
  kill_logger      kill -9 the logger every 5 s, 6 times                  [F-5]
  kill_gateway     kill -9 the gateway every 5 s, 4 times                 [F-4b]
  valgrind         each daemon under valgrind --leak-check=full for a few requests, SIGTERM

Results go to build/reliability/results.json; docs/RELIABILITY.md is rendered from them
(with the figures of the last `make soak`, build/reliability/soak.json, when present). The
exit status is 1 when any scenario failed.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import lib
from lib import harness, tr

import catalogue

KEY = "sk-upstream-" + os.urandom(8).hex()


class Ctx:
    def __init__(self, build):
        self.build = build
        self.bindir = os.path.join(lib.ROOT, build, "bin")
        self._env = None

    @property
    def env(self):
        if self._env is None:
            self._env = harness.Env(self.bindir)
        return self._env

    def close(self):
        if self._env is not None:
            self._env.close()


def _stack(ctx, models, name, workers=1, db=False, general=None, router=None, extra_env=None):
    cfg = harness.config(models, general=dict({"proxy_batch_write_at": 0.2}, **(general or {})),
                         router=router)
    return harness.Stack(ctx.env, cfg, workers=workers, db_url=ctx.env.pg.url if db else None,
                         extra_env=extra_env, name=name)


def _latencies(results, t_from=None, t_to=None):
    return [r[3] for r in results if r[1] == 200 and
            (t_from is None or r[0] - r[3] >= t_from) and (t_to is None or r[0] <= t_to)]


def _ms(v):
    return None if v is None else round(v * 1000.0, 1)


def _rows_figures(pg, tag, answered):
    want = set(answered)
    try:
        harness.wait_for(lambda: len(tr._rows(pg, tag)) >= len(want), 60,
                         what="rows for %s" % tag)
    except AssertionError:
        pass
    time.sleep(0.5)
    ids = [r[0] for r in tr._rows(pg, tag)]
    return {"answered": len(want), "rows": len(ids), "rows_lost": len(want - set(ids)),
            "rows_doubled": len(ids) - len(set(ids)), "rows_extra": len(set(ids) - want)}


# ---------------------------------------------------------------------------------------------
# Runs of the integration suite and the fuzz targets


def _run_integration(ctx, filt, figures_path=None, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    if figures_path:
        env["LP_RELIABILITY_FIGURES"] = figures_path
    p = subprocess.run([sys.executable, os.path.join(lib.ROOT, "tests/integration/run.py"),
                        ctx.bindir, filt], capture_output=True, text=True, env=env,
                       cwd=lib.ROOT)
    status = {}
    current = None
    for line in p.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) integration/(test_\w+):(\w+)", line)
        if m:
            current = "%s.py:%s" % (m.group(2), m.group(3))
            status[current] = {"status": m.group(1), "reason": ""}
            t = re.search(r"\((\d+\.\d+)s\)$", line)
            if t:
                status[current]["seconds"] = float(t.group(1))
        elif current and status[current]["status"] == "FAIL" and \
                re.match(r"^\w*(Error|Exception)\b.*:", line):
            status[current]["reason"] = line.strip()[:600]
    return status, p.returncode


def sc_integration(ctx):
    path = os.path.join(lib.ROOT, "build/reliability/integration-figures.json")
    status, rc = _run_integration(ctx, "test_reliability", path)
    figures = lib.load_json(path) or {}
    failed = sorted(k for k, v in status.items() if v["status"] == "FAIL")
    return {"pass": rc == 0 and not failed, "tests": status, "figures": figures,
            "summary": "%d tests, %d failed" % (len(status), len(failed))}


def sc_existing(ctx):
    if not os.environ.get("RELIABILITY_ALL"):
        return {"skipped": "set RELIABILITY_ALL=1 (make test runs these)"}
    tests = sorted({t for entry in catalogue.CATALOGUE for t in entry["tests"]
                    if t.startswith("test_") and not t.startswith("test_reliability.py")})
    status = {}
    for module in sorted({t.split(":")[0] for t in tests}):
        s, _ = _run_integration(ctx, module[:-3] + ":")
        status.update({k: v for k, v in s.items() if k in tests})
    failed = sorted(k for k, v in status.items() if v["status"] == "FAIL")
    return {"pass": not failed, "tests": status,
            "summary": "%d tests, %d failed" % (len(status), len(failed))}


def sc_fuzz(ctx):
    if os.environ.get("LP_SKIP_FUZZ"):
        return {"skipped": "LP_SKIP_FUZZ set"}
    p = subprocess.run(["make", "--no-print-directory", "fuzz-smoke"], capture_output=True,
                       text=True, cwd=lib.ROOT)
    targets = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) fuzz/(\w+): (.*)$", line)
        if m:
            targets[m.group(2)] = {"status": m.group(1), "detail": m.group(3)[:300]}
    failed = [t for t, v in targets.items() if v["status"] == "FAIL"]
    return {"pass": p.returncode == 0 and bool(targets) and not failed, "targets": targets,
            "summary": "%d targets, %d failed" % (len(targets), len(failed)),
            "error": None if targets else (p.stdout + p.stderr)[-800:]}


# ---------------------------------------------------------------------------------------------
# Connections


def sc_idle10k(ctx):
    """L-4 (a): 9,900 idle keep-alive connections, then 300 more past the gateway's cap
    (MHD_OPTION_CONNECTION_LIMIT 10,000): each extra one is answered, refused or closed,
    never left hanging."""
    n, extra = 9900, 300
    tr._raise_fd_limit(n + extra + 1000)
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="ok")], "idle10k")
    idle, over = [], []
    fig = {}
    try:
        gw = stack.procs["gateway"].p.pid
        base = lib.sample(gw)
        t0 = time.monotonic()
        for _ in range(n):
            idle.append(socket.create_connection(("127.0.0.1", stack.port), timeout=10))
        for s in idle:
            s.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = sum(1 for s in idle if s.recv(4096).startswith(b"HTTP/1.1 200"))
        fig["open_s"] = round(time.monotonic() - t0, 2)
        now = lib.sample(gw)
        fig.update(connections=n, answered=answered, gateway_fds=now["fds"] - base["fds"],
                   gateway_rss_growth_mib=round((now["rss_kib"] - base["rss_kib"]) / 1024.0, 1),
                   per_connection_kib=round((now["rss_kib"] - base["rss_kib"]) / float(n), 1))
        lat = []
        http = harness.Http(stack.port, timeout=10)
        for _ in range(20):
            t1 = time.monotonic()
            st = stack.chat("m")[0]
            lat.append(time.monotonic() - t1)
            if st != 200:
                fig["legit_status"] = st
        http.close()
        fig["legit_p50_ms"], fig["legit_max_ms"] = _ms(lib.percentile(lat, 50)), _ms(max(lat))
        outcomes = collections.Counter()
        for _ in range(extra):
            try:
                s = socket.create_connection(("127.0.0.1", stack.port), timeout=3)
                s.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
                over.append(s)
            except OSError:
                outcomes["refused"] += 1
        deadline = time.monotonic() + 5.0
        for s in over:  # every extra connection gets 5 s in all to be answered or closed
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(4096)
                outcomes["answered %s" % data[9:12].decode() if data else "closed"] += 1
            except socket.timeout:
                outcomes["hung"] += 1
            except OSError:
                outcomes["reset"] += 1
        fig["beyond_cap"] = dict(outcomes)
        fig["fds_at_cap"] = lib.fds(gw) - base["fds"]
    finally:
        for s in idle + over:
            s.close()
    try:
        harness.wait_for(lambda: lib.fds(gw) <= base["fds"] + 5, 30, what="fds released")
        fig["fds_released"] = True
    except AssertionError:
        fig["fds_released"] = False
    fig["rss_after_close_mib"] = round((lib.status_field(gw, "VmRSS") - base["rss_kib"]) / 1024.0,
                                       1)
    stack.stop()
    ok = (fig["answered"] == n and "legit_status" not in fig and fig["fds_released"] and
          outcomes["hung"] == 0 and fig["per_connection_kib"] <= 64)
    return {"pass": ok, "figures": fig,
            "summary": "%d idle: +%d fds, %.1f KiB each; past the cap: %s"
                       % (n, fig["gateway_fds"], fig["per_connection_kib"], dict(outcomes))}


def _is_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def sc_slowloris(ctx):
    """L-4 (b), (c): connections that trickle headers or a body (one byte every 5 s), next to
    silent and idle ones, watched for 135 s against libmicrohttpd's 120 s timeout, with
    ordinary traffic alongside. The catalogue wants trickles closed by a total deadline."""
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="ok")], "slowloris")
    groups = {"silent_headers": [], "trickled_headers": [], "trickled_body": [], "idle": []}
    closed_at = {}
    load = None
    try:
        body = b'{"model":"m","messages":[{"role":"user","content":"x"}]}' + b" " * 1000
        for _ in range(20):
            for g in groups:
                s = socket.create_connection(("127.0.0.1", stack.port))
                if g == "idle":
                    s.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
                    s.recv(4096)
                elif g == "trickled_body":
                    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                              b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % (harness.MASTER_KEY.encode(),
                                                               len(body)))
                else:
                    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                groups[g].append(s)
        load = tr.Load(stack.port, "m", "slw", threads=1)
        t0 = time.monotonic()
        step = 0
        while time.monotonic() - t0 < 135:
            time.sleep(1.0)
            step += 1
            for g, socks in groups.items():
                for i, s in enumerate(socks):
                    if (g, i) in closed_at:
                        continue
                    if not _is_open(s):
                        closed_at[(g, i)] = time.monotonic() - t0
                    elif step % 5 == 0 and g.startswith("trickled"):
                        try:
                            s.setblocking(True)
                            s.sendall(b"X" if g == "trickled_headers" else b" ")
                        except OSError:
                            closed_at[(g, i)] = time.monotonic() - t0
        results = load.stop()
    finally:
        if load:
            load.stop()
        for socks in groups.values():
            for s in socks:
                s.close()
    stack.stop()
    fig = {}
    for g in groups:
        times = sorted(t for (gg, _), t in closed_at.items() if gg == g)
        fig[g] = {"closed": len(times), "of": 20,
                  "median_close_s": round(lib.percentile(times, 50), 1) if times else None}
    lat = _latencies(results)
    fig["legit_requests"] = len(results)
    fig["legit_errors"] = sum(1 for r in results if r[1] != 200)
    fig["legit_p99_ms"] = _ms(lib.percentile(lat, 99))
    ok = all(fig[g]["closed"] == 20 for g in groups) and fig["legit_errors"] == 0
    return {"pass": ok, "figures": fig,
            "summary": "closed within 135 s: " + ", ".join(
                "%s %d/20%s" % (g, fig[g]["closed"], " (median %ss)" % fig[g]["median_close_s"]
                                if fig[g]["closed"] else "")
                for g in groups)}


class _TimedStream(threading.Thread):
    """A stream whose event arrival times are kept (inter-chunk gaps)."""

    def __init__(self, port, model):
        super().__init__(daemon=True)
        self.port, self.model = port, model
        self.times, self.ended = [], None
        self.start()

    def run(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps({
                "model": self.model, "stream": True,
                "messages": [{"role": "user", "content": "one two three four five six seven"}]}),
                headers={"Authorization": "Bearer " + harness.MASTER_KEY,
                         "Content-Type": "application/json"})
            r = conn.getresponse()
            while True:
                line = r.readline()
                if not line:
                    self.ended = "eof"
                    break
                if line.startswith(b"data:"):
                    self.times.append(time.monotonic())
                    if b"[DONE]" in line:
                        self.ended = "done"
                        break
                    if line.startswith(b'data: {"error"'):
                        self.ended = "error"
                        break
        except OSError as e:
            self.ended = type(e).__name__
        finally:
            conn.close()


def sc_streams200(ctx):
    """L-5 (scaled): 200 concurrent streams, 60 chunks 500 ms apart (30 s each)."""
    n, gap = 200, 0.5
    m = ctx.env.mock.base
    stack = _stack(ctx, [harness.deployment("drip", "openai/x", m + "/chunks/60/chunk-delay/500/v1",
                                            api_key=KEY)], "streams200")
    try:
        gw, wk = stack.procs["gateway"].p.pid, stack.workers[0].p.pid
        base = {p: lib.sample(p) for p in (gw, wk)}
        streams = [_TimedStream(stack.port, "drip") for _ in range(n)]
        time.sleep(15)
        mid = {p: lib.sample(p) for p in (gw, wk)}
        for s in streams:
            s.join(60)
        # Between content events: the last gap before [DONE] also spans the provider's usage
        # chunk, which the proxy asks for and drops for a client that did not.
        gaps = [b - a for s in streams for a, b in zip(s.times[1:-2], s.times[2:-1])]
        done = sum(1 for s in streams if s.ended == "done")
        time.sleep(2)
        after = {p: lib.sample(p) for p in (gw, wk)}
        fig = {"streams": n, "completed": done,
               "gap_p50_ms": _ms(lib.percentile(gaps, 50)),
               "gap_p99_ms": _ms(lib.percentile(gaps, 99)),
               "gateway_kib_per_stream": round((mid[gw]["rss_kib"] - base[gw]["rss_kib"]) / n, 1),
               "worker_kib_per_stream": round((mid[wk]["rss_kib"] - base[wk]["rss_kib"]) / n, 1),
               "gateway_fds_during": mid[gw]["fds"] - base[gw]["fds"],
               "fds_after": {"gateway": after[gw]["fds"] - base[gw]["fds"],
                             "worker": after[wk]["fds"] - base[wk]["fds"]}}
    finally:
        stack.stop()
    ok = (done == n and fig["gap_p99_ms"] <= (gap * 1000 + 100) and
          fig["gateway_kib_per_stream"] <= 64 and fig["worker_kib_per_stream"] <= 64 and
          abs(fig["fds_after"]["gateway"]) <= 2 and
          # the worker keeps finished provider connections for reuse (up to 512)
          -2 <= fig["fds_after"]["worker"] <= n + 2)
    return {"pass": ok, "figures": fig,
            "summary": "%d/%d streams completed; gap p99 %s ms (mock 500 ms); %s/%s KiB per "
                       "stream (gateway/worker)" % (done, n, fig["gap_p99_ms"],
                                                     fig["gateway_kib_per_stream"],
                                                     fig["worker_kib_per_stream"])}


# ---------------------------------------------------------------------------------------------
# Stores: PostgreSQL, the logger, Redis


def _key(stack, **fields):
    st, _, body = stack.http.json("POST", "/key/generate", fields, stack.auth())
    if st != 200:
        raise AssertionError("key/generate: %d %r" % (st, body))
    return body["key"]


def sc_pg_outage30(ctx):
    """F-6: PostgreSQL stopped 30 s under load (master key, and a virtual key used before the
    outage), then started: served throughout, never-seen keys 503, spool drained, rows exact."""
    pg = ctx.env.pg
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="four words of answer",
                                            input_cost_per_token=1e-6, output_cost_per_token=2e-6)],
                   "pg-outage", db=True)
    loads = []
    fig = {}
    try:
        key = _key(stack)
        lg = stack.procs["logger"].p.pid
        loads = [tr.Load(stack.port, "m", "pgo", threads=2),
                 tr.Load(stack.port, "m", "pgk", threads=1, key=key)]
        time.sleep(2)
        rss0 = lib.status_field(lg, "VmRSS")
        t_stop = time.monotonic()
        pg.stop()
        harness.wait_for(lambda: stack.http.json("GET", "/health/readiness")[2]["db"] !=
                         "connected", 15, what="readiness: database down")
        fig["db_down_reported_s"] = round(time.monotonic() - t_stop, 2)
        unknown = collections.Counter()
        spool_max = rss_max = 0
        while time.monotonic() - t_stop < 30:
            st, _, body = stack.http.json("POST", "/v1/chat/completions",
                                          {"model": "m", "messages": [{"role": "user",
                                                                       "content": "x"}]},
                                          {"Authorization": "Bearer sk-" + os.urandom(11).hex()})
            unknown["%d %s" % (st, (body.get("error") or {}).get("code"))] += 1
            spool_max = max(spool_max, os.path.getsize(stack.spool))
            rss_max = max(rss_max, lib.status_field(lg, "VmRSS"))
            time.sleep(1.0)
        pg.start()
        t_start = time.monotonic()
        # The backlog is drained when every request answered before the restart has its row
        # (the load goes on, so the spool file itself is never empty meanwhile).
        backlog = sum(ld.count(lambda r: r[2] and r[0] <= t_start) for ld in loads)

        def rows():
            return len(tr._rows(pg, "pgo")) + len(tr._rows(pg, "pgk"))
        harness.wait_for(lambda: rows() >= backlog, 120, what="%d rows" % backlog)
        fig["backlog_rows"] = backlog
        fig["spool_drained_s"] = round(time.monotonic() - t_start, 2)
        for ld in loads:
            ld.stop()
        harness.wait_for(lambda: os.path.getsize(stack.spool) == 0, 60,
                         what="the spool file empty once the load stopped")
        results = loads[0].results + loads[1].results
        fig.update(requests=len(results), errors=sum(1 for r in results if r[1] != 200),
                   unknown_keys_during_outage=dict(unknown),
                   spool_max_mib=round(spool_max / lib.MIB, 2),
                   logger_rss_growth_mib=round((rss_max - rss0) / 1024.0, 1))
        fig["master"] = _rows_figures(pg, "pgo", loads[0].answered())
        fig["virtual_key"] = _rows_figures(pg, "pgk", loads[1].answered())
    finally:
        for ld in loads:
            ld.stop()
        stack.stop()
    rows_ok = all(fig[k]["rows_lost"] == 0 and fig[k]["rows_doubled"] == 0 and
                  fig[k]["rows_extra"] == 0 for k in ("master", "virtual_key"))
    unknown_ok = set(k.split()[0] for k in fig["unknown_keys_during_outage"]) == {"503"}
    ok = fig["errors"] == 0 and rows_ok and unknown_ok and fig["spool_drained_s"] <= 60 and \
        fig["logger_rss_growth_mib"] <= 32
    return {"pass": ok, "figures": fig,
            "summary": "%d requests, %d errors; unknown keys %s; spool drained in %ss; rows lost "
                       "%d, doubled %d" % (fig["requests"], fig["errors"],
                                           fig["unknown_keys_during_outage"],
                                           fig["spool_drained_s"],
                                           fig["master"]["rows_lost"] +
                                           fig["virtual_key"]["rows_lost"],
                                           fig["master"]["rows_doubled"] +
                                           fig["virtual_key"]["rows_doubled"])}


def sc_pg_frozen(ctx):
    """F-7: PostgreSQL SIGSTOPped (postmaster and backends) 20 s under load: TCP stays up,
    nothing answers. Serving must not notice; the logger should declare the database down."""
    pg = ctx.env.pg
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="ok")], "pg-frozen",
                   db=True)
    load = None
    fig = {}
    frozen = False
    try:
        load = tr.Load(stack.port, "m", "pgf", threads=2)
        time.sleep(3)
        t_stop = time.monotonic()
        lib.signal_pg(pg, signal.SIGSTOP)
        frozen = True
        seen_down = None
        while time.monotonic() - t_stop < 20:
            db = harness.Http(stack.port, timeout=5).json("GET", "/health/readiness")[2]["db"]
            if db != "connected" and seen_down is None:
                seen_down = time.monotonic() - t_stop
            time.sleep(0.5)
        lib.signal_pg(pg, signal.SIGCONT)
        frozen = False
        t_cont = time.monotonic()
        time.sleep(3)
        results = load.stop()
        before = _latencies(results, t_to=t_stop)
        during = _latencies(results, t_from=t_stop, t_to=t_cont)
        fig.update(requests=len(results), errors=sum(1 for r in results if r[1] != 200),
                   p99_before_ms=_ms(lib.percentile(before, 99)),
                   p99_during_ms=_ms(lib.percentile(during, 99)),
                   db_down_declared_s=round(seen_down, 2) if seen_down is not None else None)
        fig.update(_rows_figures(pg, "pgf", load.answered()))
    finally:
        if frozen:
            lib.signal_pg(pg, signal.SIGCONT)
        if load:
            load.stop()
        stack.stop()
    ok = (fig["errors"] == 0 and fig["rows_lost"] == 0 and fig["rows_doubled"] == 0 and
          fig["p99_during_ms"] <= 2 * fig["p99_before_ms"] + 50 and
          fig["db_down_declared_s"] is not None)
    return {"pass": ok, "figures": fig,
            "summary": "%d requests, %d errors; p99 %s -> %s ms; database declared down after %s s;"
                       " rows lost %d, doubled %d" % (fig["requests"], fig["errors"],
                                                       fig["p99_before_ms"], fig["p99_during_ms"],
                                                       fig["db_down_declared_s"], fig["rows_lost"],
                                                       fig["rows_doubled"])}


def sc_logger_frozen(ctx):
    """F-15: the logger SIGSTOPped 20 s under load: the request path never waits for it; its
    records are kept and delivered after SIGCONT, exactly once in the table."""
    pg = ctx.env.pg
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="ok")], "lg-frozen",
                   db=True)
    load = None
    lg = stack.procs["logger"]
    try:
        load = tr.Load(stack.port, "m", "lgf", threads=2)
        time.sleep(3)
        t_stop, t_cont, _ = tr._freeze(lg, lg.text, 20)
        time.sleep(3)
        results = load.stop()
        before = _latencies(results, t_to=t_stop)
        during = _latencies(results, t_from=t_stop, t_to=t_cont)
        fig = {"requests": len(results), "errors": sum(1 for r in results if r[1] != 200),
               "p99_before_ms": _ms(lib.percentile(before, 99)),
               "p99_during_ms": _ms(lib.percentile(during, 99))}
        fig.update(_rows_figures(pg, "lgf", load.answered()))
    finally:
        lg.send(signal.SIGCONT)
        if load:
            load.stop()
        stack.stop()
    ok = (fig["errors"] == 0 and fig["rows_lost"] == 0 and fig["rows_doubled"] == 0 and
          fig["rows_extra"] == 0 and fig["p99_during_ms"] <= 1.2 * fig["p99_before_ms"] + 5)
    return {"pass": ok, "figures": fig,
            "summary": "%d requests, %d errors; p99 %s -> %s ms; rows lost %d, doubled %d"
                       % (fig["requests"], fig["errors"], fig["p99_before_ms"],
                          fig["p99_during_ms"], fig["rows_lost"], fig["rows_doubled"])}


def sc_redis_frozen(ctx):
    """F-8: Redis SIGSTOPped 15 s under load with a rate-limited key (fail-open)."""
    redis = ctx.env.redis
    stack = _stack(ctx, [harness.deployment("m", "openai/m", mock_response="ok")], "redis-frozen",
                   db=True, extra_env={"REDIS_URL": redis.url})
    load = None
    gw = stack.procs["gateway"]
    try:
        key = _key(stack, rpm_limit=1000000, tpm_limit=1000000000)
        load = tr.Load(stack.port, "m", "rdf", threads=3, key=key)
        time.sleep(2)
        t_stop, t_cont, log = tr._freeze(redis.proc, gw.text, 15)
        time.sleep(3)
        results = load.stop()
        during = [r for r in results if t_stop < r[0] < t_cont]
        fig = {"requests": len(results), "errors": sum(1 for r in results if r[1] != 200),
               "requests_during_freeze": len(during),
               "paid_timeout_during_freeze": sum(1 for r in during if r[3] > 0.15),
               "max_latency_ms": _ms(max(r[3] for r in results)),
               "unreachable_logged": log.count("unreachable"),
               "connected_logged": log.count("connected: rate limits")}
    finally:
        if redis.proc.alive():
            redis.proc.send(signal.SIGCONT)
        if load:
            load.stop()
        stack.stop()
    ok = (fig["errors"] == 0 and fig["max_latency_ms"] < 1000 and fig["unreachable_logged"] <= 1
          and fig["connected_logged"] == 0)
    return {"pass": ok, "figures": fig,
            "summary": "%d requests, %d errors; %d of %d requests during the freeze waited for the "
                       "Redis deadline; logged unreachable %d x, connected %d x"
                       % (fig["requests"], fig["errors"], fig["paid_timeout_during_freeze"],
                          fig["requests_during_freeze"], fig["unreachable_logged"],
                          fig["connected_logged"])}


# ---------------------------------------------------------------------------------------------
# kill -9 loops


def _kill_loop(ctx, daemon, cycles, period=5.0, down=0.5):
    pg = ctx.env.pg
    m = ctx.env.mock.base
    tag = "kl" + daemon[:3]
    stack = _stack(ctx, [harness.deployment("w", "openai/x", m + "/delay/20/v1", api_key=KEY),
                         harness.deployment("drip", "openai/x",
                                            m + "/chunks/30/chunk-delay/100/v1", api_key=KEY)],
                   "kill-" + daemon, workers=2, db=True, router={"timeout": 5})
    stream_ends = collections.Counter()
    load = None
    recoveries, crashed, fig = [], {}, {}
    try:
        load = tr.Load(stack.port, "w", tag, threads=4)
        time.sleep(2)
        target = "worker0" if daemon == "worker" else daemon
        for _ in range(cycles):
            time.sleep(max(0.0, period - down))
            others = tr._pids(stack, target)
            streams = []
            if daemon == "worker":  # streams in flight on both workers when one dies
                streams = [tr.StreamReader(stack.port, "drip", "%ss-%d" % (tag, i), timeout=15)
                           for i in range(4)]
                harness.wait_for(lambda: all(len(x.events) >= 2 for x in streams), 10,
                                 what="streams flowing")
            tr._kill9(stack, target)
            time.sleep(down)
            tr._restart(stack, target)
            for x in streams:
                x.join(20)
                stream_ends[x.ended] += 1
            t_restart = time.monotonic()
            try:
                harness.wait_for(lambda: load.count(lambda r: r[0] > t_restart and r[1] == 200) > 0,
                                 20, what="service after the restart")
                recoveries.append(min(r[0] for r in list(load.results)
                                      if r[0] > t_restart and r[1] == 200) - t_restart)
            except AssertionError:
                recoveries.append(None)
            crashed = {n: stack.procs[n].text()[-1500:] for n in others
                       if n in stack.procs and not stack.procs[n].alive()}
            if crashed:
                break
        time.sleep(2)
        load.stop_flag.set()
        for t in load.threads:
            t.join(40)
        hung = sum(1 for t in load.threads if t.is_alive())
        results = list(load.results)
        lat = [r[3] for r in results if r[1]]
        codes = collections.Counter(r[4] or r[6] for r in results if r[1] != 200)
        fig.update({"cycles": len(recoveries), "requests": len(results),
               "ok": sum(1 for r in results if r[1] == 200), "not_ok": dict(codes),
               "client_timeouts": codes.get("timeout", 0) + codes.get("TimeoutError", 0) + hung,
               "max_latency_s": round(max(lat), 2) if lat else None,
               "p99_latency_ms": _ms(lib.percentile(lat, 99)),
               "recovery_max_s": round(max(x for x in recoveries if x is not None), 3)
               if any(x is not None for x in recoveries) else None,
               "never_recovered": sum(1 for x in recoveries if x is None),
               "crashed": sorted(crashed)})
        if stream_ends:
            fig["streams_ended"] = dict(stream_ends)
        if not crashed:
            fig.update(_rows_figures(pg, tag, load.answered()))
    finally:
        if load:
            load.stop_flag.set()
        for n in list(crashed):
            stack.procs.pop(n, None)
        try:
            stack.stop()
        except AssertionError as e:
            fig["stop_error"] = str(e)[:1500]
    bad_codes = [c for c in fig["not_ok"] if c and c.startswith("<not an OpenAI")]
    bad_streams = sum(n for e, n in stream_ends.items()
                      if e not in ("done", "error:upstream_worker_lost"))
    ok = (not crashed and not bad_streams and fig["never_recovered"] == 0 and
          fig["client_timeouts"] == 0 and
          not bad_codes and fig.get("rows_lost") == 0 and fig.get("rows_doubled") == 0 and
          "stop_error" not in fig)
    summary = "%d cycles, %d requests (%d ok), max latency %ss, recovery max %ss, rows lost %s " \
              "doubled %s" % (fig["cycles"], fig["requests"], fig["ok"], fig["max_latency_s"],
                              fig["recovery_max_s"], fig.get("rows_lost"),
                              fig.get("rows_doubled"))
    if stream_ends:
        summary += "; streams ended %s" % dict(stream_ends)
    if crashed:
        summary += "; CRASHED: %s" % ", ".join(crashed)
        fig["crash_logs"] = crashed
    return {"pass": ok, "figures": fig, "summary": summary}


def sc_kill_worker(ctx):
    return _kill_loop(ctx, "worker", 6)


def sc_kill_router(ctx):
    return _kill_loop(ctx, "router", 4, down=1.0)


def sc_kill_logger(ctx):
    return _kill_loop(ctx, "logger", 6)


def sc_kill_gateway(ctx):
    return _kill_loop(ctx, "gateway", 4)


# ---------------------------------------------------------------------------------------------
# valgrind


def sc_valgrind(ctx):
    """Each daemon in turn under valgrind --leak-check=full --error-exitcode=1 (the others
    plain) for a few requests of every kind, then SIGTERM."""
    if not shutil.which("valgrind"):
        return {"pass": False, "summary": "valgrind not installed (apt-get install valgrind)"}
    env = ctx.env
    m = env.mock.base
    models = [harness.deployment("up", "openai/gpt-4o-mini", m + "/v1", api_key=KEY),
              harness.deployment("broken", "openai/x", m + "/status/500/v1", api_key=KEY),
              harness.deployment("embed", "openai/text-embedding-3-small", m + "/v1", api_key=KEY,
                                 model_info={"mode": "embedding"}),
              harness.deployment("mocked", "openai/m", mock_response="mocked answer")]
    out = {}
    real = ctx.bindir
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")
    for daemon in ("llm-router", "llm-worker", "llm-logger", "llm-gateway"):
        wrap = tempfile.mkdtemp(prefix="vg-", dir=env.root)
        for name in os.listdir(real):
            os.symlink(os.path.join(real, name), os.path.join(wrap, name))
        os.unlink(os.path.join(wrap, daemon))
        vglog = os.path.join(wrap, "valgrind.%p.log")
        with open(os.path.join(wrap, daemon), "w") as f:
            f.write("#!/bin/sh\nexec valgrind --leak-check=full "
                    "--show-leak-kinds=definite,possible "
                    "--errors-for-leak-kinds=definite,possible --error-exitcode=1 "
                    "--suppressions=%s --log-file=%s %s \"$@\"\n"
                    % (supp, vglog, os.path.join(real, daemon)))
        os.chmod(os.path.join(wrap, daemon), 0o755)
        env.bindir = wrap
        res = {"requests": 0, "errors": [], "statuses": collections.Counter()}
        stack = None
        try:
            stack = _SlowStack(env, harness.config(models), workers=1, db_url=env.pg.url,
                               name="vg-" + daemon)
            h = stack.auth()
            calls = [("POST", "/v1/chat/completions", {"model": "up", "messages": [
                         {"role": "user", "content": "hi"}]}),
                     ("POST", "/v1/chat/completions", {"model": "up", "stream": True, "messages": [
                         {"role": "user", "content": "stream"}]}),
                     ("POST", "/v1/chat/completions", {"model": "mocked", "messages": [
                         {"role": "user", "content": "m"}]}),
                     ("POST", "/v1/chat/completions", {"model": "broken", "messages": [
                         {"role": "user", "content": "b"}]}),
                     ("POST", "/v1/embeddings", {"model": "embed", "input": ["a", "b"]}),
                     ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}),
                     ("POST", "/key/generate", {"key_alias": "vg"}),
                     ("GET", "/spend/logs?limit=5", None), ("GET", "/metrics", None),
                     ("GET", "/health/readiness", None)]
            http = harness.Http(stack.port, timeout=60)
            for _ in range(2):
                for method, path, body in calls:
                    st, _, _ = http.request(method, path, body, h)
                    res["requests"] += 1
                    res["statuses"][st] += 1
                    if st >= 500 and path != "/v1/chat/completions":
                        res["errors"].append("%s %s -> %d" % (method, path, st))
            http.close()
            time.sleep(1.0)  # records written
        except Exception as e:
            res["errors"].append("traffic: %s" % str(e)[:300])
        finally:
            if stack:
                short = daemon.split("-")[1]
                for n in list(stack.procs):
                    if n.startswith(short) or (short == "worker" and n.startswith("worker")):
                        p = stack.procs[n]
                        p.send(signal.SIGTERM)
                        try:
                            p.p.wait(120)
                        except subprocess.TimeoutExpired:
                            res["errors"].append("did not exit within 120 s under valgrind")
                        res["exit"] = p.p.returncode
                try:
                    stack.stop()
                except AssertionError as e:
                    res["errors"].append("stop: %s" % str(e)[:300])
            env.bindir = real
        summary = []
        for path in sorted(os.listdir(wrap)):
            if path.startswith("valgrind.") and path.endswith(".log"):
                text = open(os.path.join(wrap, path)).read()
                errs = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
                lost = re.findall(r"definitely lost: ([\d,]+) bytes", text)
                possible = re.findall(r"possibly lost: ([\d,]+) bytes", text)
                heap = re.findall(r"total heap usage: ([\d,]+) allocs", text)
                summary.append({"errors": int(errs[-1]) if errs else None,
                                "allocs": heap[-1] if heap else None,
                                "definitely_lost": lost[-1] if lost else "0",
                                "possibly_lost": possible[-1] if possible else "0"})
                if not errs or int(errs[-1]) != 0:
                    keep = os.path.join(lib.ROOT, "build/reliability", "valgrind-%s.log" % daemon)
                    shutil.copy(os.path.join(wrap, path), keep)
                    res["errors"].append("valgrind reported errors: %s" % keep)
        res["valgrind"] = summary
        res["statuses"] = dict(res["statuses"])
        out[daemon] = res
    ok = all(not r["errors"] and r.get("exit") == 0 and r["valgrind"] and
             all(v["errors"] == 0 for v in r["valgrind"]) for r in out.values())

    def word(r):
        if not r["errors"] and r.get("exit") == 0:
            return "clean"
        return "; ".join(r["errors"]) or "exit %s" % r.get("exit")
    return {"pass": ok, "figures": out,
            "summary": "; ".join("%s: %s" % (d, word(r)) for d, r in out.items())}


class _SlowStack(harness.Stack):
    """A stack with a daemon under valgrind: everything takes longer to come up."""

    def wait_ready(self, workers=1, timeout=10):
        return super().wait_ready(workers, 90)


# ---------------------------------------------------------------------------------------------

SCENARIOS = ["integration", "existing", "fuzz", "idle10k", "slowloris", "streams200",
             "pg_outage30", "pg_frozen", "logger_frozen", "redis_frozen", "kill_worker",
             "kill_router", "kill_logger", "kill_gateway", "valgrind"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--out", default="docs/RELIABILITY.md")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    skip = [s for s in args.skip.split(",") if s]
    names = [s for s in SCENARIOS if (not only or s in only) and s not in skip]
    results_path = os.path.join(lib.ROOT, "build/reliability/results.json")
    # A partial run (--only) keeps the other scenarios' last results.
    results = (lib.load_json(results_path) or {}) if only else {}
    results.pop("_machine", None)
    ctx = Ctx(args.build)
    os.makedirs(os.path.join(lib.ROOT, "build/reliability"), exist_ok=True)
    try:
        for name in names:
            print("== %s" % name, flush=True)
            t0 = time.monotonic()
            try:
                r = globals()["sc_" + name](ctx)
            except Exception:
                r = {"pass": False, "summary": "scenario error",
                     "error": traceback.format_exc(limit=6)}
            r["seconds"] = round(time.monotonic() - t0, 1)
            results[name] = r
            word = "SKIP" if "skipped" in r else ("PASS" if r.get("pass") else "FAIL")
            print("%s reliability/%s (%.0fs): %s" % (word, name, r["seconds"],
                                                     r.get("summary") or r.get("skipped") or ""),
                  flush=True)
            if r.get("error"):
                print(r["error"], flush=True)
            lib.save_json(results_path, dict(results, _machine=lib.machine()))
    finally:
        ctx.close()
    soak = lib.load_json(os.path.join(lib.ROOT, "build/reliability/soak.json"))
    ordered = {n: results[n] for n in SCENARIOS if n in results}
    text = catalogue.render(ordered, soak, lib.machine(), args.build)
    with open(os.path.join(lib.ROOT, args.out), "w") as f:
        f.write(text)
    print("wrote %s" % args.out)
    failed = [n for n in names if "skipped" not in results[n] and not results[n].get("pass")]
    if failed:
        print("reliability: %d scenario(s) failed: %s" % (len(failed), ", ".join(failed)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
