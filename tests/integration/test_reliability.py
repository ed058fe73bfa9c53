"""Reliability and hostile input (issue 11; IDs from ../shared/RELIABILITY.md).

Only what the other test files do not already cover (docs/RELIABILITY.md maps every ID to its
test): kill -9 of a worker, the router and a gateway under steady load with exact usage rows;
Redis frozen and killed under load; upstream misbehaviour (529, connection refused, reset
mid-body, redirects, HTML, oversize answers, every timeout phase within 10 %); client
misbehaviour (slowloris headers and bodies, thousands of idle keep-alive connections, a client
gone mid-request); bad input (malformed and deep JSON, huge bodies, invalid UTF-8, wrong
types, out-of-range numbers, Content-Type, CR/LF, non-ASCII model names, per-request upstream
overrides, Authorization variants, path and Host tricks).

A misbehaving upstream the C mock cannot play (reset mid-body, 100 MB answers, redirects,
HTML) is `Rogue` below: a raw-socket HTTP server whose behaviour is chosen by the first
segment of the configured api_base path, never by the client.

Figures (recovery times, counts, RSS) are collected in FIGURES and written as JSON to
$LP_RELIABILITY_FIGURES when it is set (`make reliability` puts them in docs/RELIABILITY.md).
"""

import collections
import hashlib
import http.client
import json
import os
import resource
import signal
import socket
import struct
import threading
import time

from harness import (MASTER_KEY, Http, Mock, Stack, check, check_eq, check_error, config,
                     deployment, free_port, rss_kb, wait_for)

UPSTREAM_KEY = "sk-upstream-" + os.urandom(8).hex()
FIGURES = {}
MIB = 1024 * 1024
IDLE_CONNECTIONS = int(os.environ.get("LP_IDLE_CONNECTIONS", "2000"))


def figure(name, **values):
    FIGURES.setdefault(name, {}).update(values)


# ---------------------------------------------------------------------------------------------
# Helpers: load, streams, restarts, rows, /proc


class Load:
    """Closed-loop clients, one keep-alive connection each, no automatic retry. Every request
    carries a unique `user` (<tag>-<n>) so its usage row can be found. Results are
    (t_end, status, call_id, latency, error_code, retry_after, exception)."""

    def __init__(self, port, model, tag, threads=3, key=MASTER_KEY, timeout=30.0):
        self.port, self.model, self.tag, self.key, self.timeout = port, model, tag, key, timeout
        self.results = []
        self.lock = threading.Lock()
        self.n = 0
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        while not self.stop_flag.is_set():
            with self.lock:
                self.n += 1
                user = "%s-%d" % (self.tag, self.n)
            body = json.dumps({"model": self.model, "user": user,
                               "messages": [{"role": "user", "content": "load " + user}]})
            t0 = time.monotonic()
            status, rid, code, retry_after, exc = 0, None, None, None, None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request("POST", "/v1/chat/completions", body=body,
                             headers={"Authorization": "Bearer " + self.key,
                                      "Content-Type": "application/json"})
                r = conn.getresponse()
                payload = r.read()
                status = r.status
                rid = r.getheader("x-litellm-call-id")
                retry_after = r.getheader("retry-after")
                if status != 200:
                    code = _error_code(payload)
                if (r.getheader("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                exc = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.monotonic()
            with self.lock:
                self.results.append((t1, status, rid, t1 - t0, code, retry_after, exc))
            if status != 200:
                time.sleep(0.02)  # paced while something is down
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        check(not any(t.is_alive() for t in self.threads), "a load client hung")
        return self.results

    def count(self, pred=lambda r: True):
        with self.lock:
            return sum(1 for r in self.results if pred(r))

    def answered(self):
        return [r[2] for r in self.results if r[2]]


def _error_code(payload):
    """The error.code of an OpenAI-shaped error body, or a marker when it is not one."""
    try:
        e = json.loads(payload)["error"]
        if all(k in e for k in ("message", "type", "param", "code")) and e["message"]:
            return e["code"]
    except (ValueError, KeyError, TypeError):
        pass
    return "<not an OpenAI error: %r>" % payload[:120]


class StreamReader(threading.Thread):
    """One streamed chat read in a thread: its events, how it ended and when."""

    def __init__(self, port, model, user, timeout=20.0):
        super().__init__(daemon=True)
        self.port, self.model, self.user, self.timeout = port, model, user, timeout
        self.events = []
        self.status = None
        self.call_id = None
        self.ended = None  # "done", "error:<code>", "eof", or an exception name
        self.t_end = None
        self.start()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps({
                "model": self.model, "stream": True, "user": self.user,
                "messages": [{"role": "user", "content": "stream " + self.user}]}),
                headers={"Authorization": "Bearer " + MASTER_KEY,
                         "Content-Type": "application/json"})
            r = conn.getresponse()
            self.status = r.status
            self.call_id = r.getheader("x-litellm-call-id")
            while True:
                line = r.readline()
                if not line:
                    self.ended = "eof"
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip().decode()
                self.events.append(data)
                if data == "[DONE]":
                    self.ended = "done"
                    break
                if data.startswith('{"error"'):
                    self.ended = "error:" + str(json.loads(data)["error"]["code"])
                    break
        except (OSError, http.client.HTTPException) as e:
            self.ended = type(e).__name__
        finally:
            self.t_end = time.monotonic()
            conn.close()

    def content_chunks(self):
        n = 0
        for e in self.events:
            try:
                c = json.loads(e)
                if c.get("choices") and c["choices"][0].get("delta", {}).get("content"):
                    n += 1
            except ValueError:
                pass
        return n


def _argv(stack, name):
    if name == "router":
        return ["llm-router", "--frontend", stack.front, "--backend", stack.back], None
    if name == "logger":
        return (["llm-logger", "--bind", stack.logger_ep, "--spool", stack.spool],
                os.path.join(stack.dir, "logger.out"))
    if name.startswith("worker"):
        return ["llm-worker", "--router", stack.back], None
    return ["llm-gateway", "--port", str(stack.port), "--router", stack.front, "--logger",
            stack.logger_ep], None


def _kill9(stack, name):
    proc = stack.procs.pop(name)  # _restart puts a new one in its place
    proc.kill()  # SIGKILL, wait, close its log
    check_eq(proc.p.returncode, -signal.SIGKILL, "%s killed by SIGKILL" % name)
    return time.monotonic()


def _restart(stack, name):
    argv, out = _argv(stack, name)
    proc = stack.start(name, argv, stdout=out)
    if name.startswith("worker"):
        stack.workers[int(name[len("worker"):])] = proc
    return proc


def _pids(stack, but):
    return {n: p.p.pid for n, p in stack.procs.items() if n != but}


def _check_not_restarted(stack, pids):
    for n, pid in pids.items():
        check(stack.procs[n].p.pid == pid and stack.procs[n].alive(),
              "%s was restarted or died (pid %d)" % (n, pid))


def _rows(pg, tag):
    return pg.query("SELECT request_id, status, http_status, error_type, completion_tokens, "
                    "metadata->>'worker' FROM \"LiteLLM_SpendLogs\" WHERE \"user\" LIKE '%s-%%'"
                    % tag)


def _check_rows_exact(pg, tag, answered, name):
    """Usage rows = requests answered: none lost, none doubled, none extra."""
    want = set(answered)
    check_eq(len(want), len(answered), "distinct call ids answered")
    try:
        wait_for(lambda: len(_rows(pg, tag)) >= len(want), timeout=30,
                 what="%d usage rows for %s" % (len(want), tag))
    except AssertionError:
        pass  # reported below with the figures
    time.sleep(0.5)
    rows = _rows(pg, tag)
    ids = [r[0] for r in rows]
    lost, extra = want - set(ids), set(ids) - want
    doubled = len(ids) - len(set(ids))
    figure(name, answered=len(want), rows=len(ids), rows_lost=len(lost), rows_doubled=doubled,
           rows_extra=len(extra))
    check(not lost and not doubled and not extra,
          "usage rows for %s: %d answered, %d rows, %d lost (e.g. %s), %d doubled, %d extra"
          % (tag, len(want), len(ids), len(lost), sorted(lost)[:3], doubled, len(extra)))
    return rows


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss(pid):
    """Reset VmHWM (Linux >= 4.0), so the next peak is this test's alone."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read_message(sock):
    """One HTTP/1.1 message (head, Content-Length body) from sock: (start line, headers
    with lower-case names, body), or None when the peer closes before its head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0") or 0)
    while len(body) < n:
        d = sock.recv(65536)
        if not d:
            break
        body += d
    return lines[0], hdrs, body


def _raw(port, data, timeout=5.0):
    """Send raw bytes on a fresh connection; (status, headers dict, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        msg = _read_message(s)
        if msg is None:
            return 0, {}, b""
        start, hdrs, body = msg
        return (int(start.split()[1]) if start.startswith("HTTP/") else 0), hdrs, body
    finally:
        s.close()


def _within(elapsed, configured):
    """The catalogue's tolerance for a configured deadline: +-10 % + 100 ms."""
    return configured * 0.9 <= elapsed <= configured * 1.1 + 0.1


# ---------------------------------------------------------------------------------------------
# A misbehaving upstream


class Rogue:
    """Raw-socket HTTP/1.1 server; the first path segment of the request picks the misdeed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.connections = 0
        self.sent = 0
        self.requests = []  # (path, headers) per request
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            req = self._read_request(c)
            if req is None:
                return
            with self.lock:
                self.requests.append(req)
            mode = req[0].strip("/").split("/")[0]
            getattr(self, "_m_" + mode, self._m_html)(c)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def _read_request(c):
        msg = _read_message(c)
        return msg and (msg[0].split(" ")[1], msg[1])

    @staticmethod
    def _rst(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _m_reset(self, c):
        """Headers and part of the body, then a TCP reset."""
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000"
                  b"\r\n\r\n" + b'{"id":"x","object":"chat.completion","choices":[')
        time.sleep(0.05)
        self._rst(c)

    def _m_resetsse(self, c):
        """One good SSE event, then a TCP reset."""
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        ev = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"x",'
              b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hel"},'
              b'"finish_reason":null}]}\n\n')
        c.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
        time.sleep(0.1)
        self._rst(c)

    def _m_html(self, c):
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))

    def _m_redirect(self, c):
        target = getattr(self, "redirect_to", self.base + "/html")
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: %s/v1/chat/completions\r\n"
                  b"Content-Length: 0\r\n\r\n" % target.encode())

    def _m_hugeline(self, c):
        """A stream whose first event is one 10 MiB line."""
        n = 10 * MIB
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n"
                  b"\r\ndata: " % (n + 6))
        block = b"x" * MIB
        for _ in range(10):
            c.sendall(block)

    def _big(self, c, chunked):
        total = 100 * 1000 * 1000
        if chunked:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % total)
        block = b'{"a":"' + b"x" * MIB
        sent = 0
        while sent < total:
            piece = block[:min(len(block), total - sent)]
            c.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            with self.lock:
                self.sent = sent
        if chunked:
            c.sendall(b"0\r\n\r\n")

    def _m_big(self, c):
        self._big(c, False)

    def _m_bigchunked(self, c):
        self._big(c, True)


class BlackHole:
    """A port whose accept queue is full: SYNs are dropped, so a connect never completes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        time.sleep(0.1)

    def holes(self):
        """True when a fresh connect does not complete within 0.5 s."""
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", self.port))
            return False
        except OSError:
            return True
        finally:
            probe.close()

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# Shared stacks


class Ctx:
    def __init__(self, env):
        self.env = env
        self.rogue = Rogue()
        self.canary = Rogue()  # must never see a connection
        self.rogue.redirect_to = self.canary.base
        self.closed_port = free_port()  # nothing listens there
        self._stacks = {}

    def stack(self, name):
        if name not in self._stacks:
            self._stacks[name] = getattr(self, "_make_" + name)()
        return self._stacks[name]

    def _make_upstream(self):
        m, r = self.env.mock.base, self.rogue.base
        k = UPSTREAM_KEY
        models = [
            deployment("anthropic-529", "anthropic/claude-3-5-haiku",
                       m + "/status/529/retry-after/2", api_key=k),
            deployment("openai-529", "openai/x", m + "/status/529/v1", api_key=k),
            deployment("refused", "openai/x", "http://127.0.0.1:%d/v1" % self.closed_port,
                       api_key=k),
            deployment("reset", "openai/x", r + "/reset/v1", api_key=k),
            deployment("resetsse", "openai/x", r + "/resetsse/v1", api_key=k),
            deployment("html", "openai/x", r + "/html/v1", api_key=k),
            deployment("redirect", "openai/x", r + "/redirect/v1", api_key=k),
            deployment("hugeline", "openai/x", r + "/hugeline/v1", api_key=k),
            deployment("truncated", "openai/x", m + "/truncate/v1", api_key=k),
            deployment("hang", "openai/x", m + "/hang/v1", api_key=k, timeout=2),
            deployment("hang-stream", "openai/x", m + "/hang/v1", api_key=k, timeout=10,
                       stream_timeout=1),
            deployment("stall", "openai/x", m + "/chunks/10/chunk-delay/5000/v1", api_key=k,
                       timeout=30, stream_timeout=1),
            deployment("drip", "openai/x", m + "/chunks/1000/chunk-delay/100/v1", api_key=k,
                       timeout=2),
        ]
        self.blackhole = BlackHole()
        models.append(deployment("blackhole", "openai/x",
                                 "http://127.0.0.1:%d/v1" % self.blackhole.port, api_key=k,
                                 timeout=2))
        return Stack(self.env, config(models, router={"num_retries": 0}), workers=1,
                     name="rel-upstream")

    def _make_client(self):
        m = self.env.mock.base
        models = [deployment("m", "openai/m", mock_response="short answer"),
                  deployment("hang", "openai/x", m + "/hang/v1", api_key=UPSTREAM_KEY,
                             timeout=30)]
        return Stack(self.env, config(models, general={"proxy_batch_write_at": 0.2},
                                      router={"num_retries": 0}),
                     workers=1, db_url=self.env.pg.url, name="rel-client")

    def _make_input(self):
        m = self.env.mock.base
        models = [deployment("m", "openai/m", mock_response="short answer"),
                  deployment("up", "openai/gpt-4o-mini", m + "/v1", api_key=UPSTREAM_KEY),
                  deployment("modèle", "openai/m", mock_response="réponse")]
        return Stack(self.env, config(models, general={"max_request_size_mb": 1}),
                     workers=1, db_url=self.env.pg.url, name="rel-input")

    def close(self):
        errors = []
        for s in self._stacks.values():
            try:
                s.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.rogue.close()
        self.canary.close()
        if hasattr(self, "blackhole"):
            self.blackhole.close()
        if errors:
            raise AssertionError("\n".join(errors))


def setup(env):
    return Ctx(env)


def teardown(ctx):
    try:
        ctx.close()
        logs = "\n".join("\n".join(s.logs().values()) for s in ctx._stacks.values())
        check(UPSTREAM_KEY not in logs, "the provider key is in a daemon log")
        check(MASTER_KEY not in logs, "the master key is in a daemon log")
        check_eq(ctx.canary.connections, 0, "connections to the canary listener")
    finally:
        path = os.environ.get("LP_RELIABILITY_FIGURES")
        if path:
            with open(path, "w") as f:
                json.dump(FIGURES, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Faults: kill -9 under load (F-1, F-2, F-3, F-4b), Redis (F-8)


def test_worker_kill9_under_load(ctx):
    """F-1a/F-1b, F-2: a worker SIGKILLed with non-stream calls and streams in flight."""
    env = ctx.env
    pg = env.pg
    m = env.mock.base
    cfg = config([deployment("w", "openai/x", m + "/delay/50/v1", api_key=UPSTREAM_KEY),
                  deployment("drip", "openai/x", m + "/chunks/40/chunk-delay/100/v1",
                             api_key=UPSTREAM_KEY)],
                 general={"proxy_batch_write_at": 0.2})
    stack = Stack(env, cfg, workers=2, db_url=pg.url, name="rel-worker-kill")
    load = None
    try:
        # Streams first, so the router spreads them over both workers (ties rotate).
        streams = [StreamReader(stack.port, "drip", "wk9s-%d" % i, timeout=10)
                   for i in range(4)]
        wait_for(lambda: all(len(s.events) >= 3 for s in streams), 10,
                 what="4 streams flowing")
        load = Load(stack.port, "w", "wk9")
        wait_for(lambda: load.count(lambda r: r[1] == 200) >= 20, 10, what="load flowing")
        others = _pids(stack, "worker0")
        t_kill = _kill9(stack, "worker0")
        for s in streams:
            s.join(20)
        check(not any(s.is_alive() for s in streams), "a stream hung after the worker died")
        lost = [s for s in streams if s.ended != "done"]
        for s in streams:
            check_eq(s.status, 200, "stream status")
            check(s.ended in ("done", "error:upstream_worker_lost"),
                  "a stream ended with %r: %r" % (s.ended, s.events[-2:]))
        check(lost, "the killed worker had streams: %r" % [s.ended for s in streams])
        to_error = max(s.t_end - t_kill for s in lost)
        check(to_error <= 4.0, "streams of the dead worker ended %.2fs after the kill" % to_error)
        time.sleep(0.3)
        new = _restart(stack, "worker0")
        t_restart = time.monotonic()
        stack.wait_ready(2, timeout=15)
        rejoin = time.monotonic() - t_restart
        tag = "%d@" % new.p.pid

        def new_worker_served():
            rows = pg.query("SELECT count(*) FROM \"LiteLLM_SpendLogs\" WHERE \"user\" LIKE "
                            "'wk9-%%' AND metadata->>'worker' LIKE '%s%%'" % tag)
            return int(rows[0][0]) > 0
        wait_for(new_worker_served, 15, what="the restarted worker to take traffic")
        results = load.stop()
        statuses = collections.Counter(r[1] for r in results)
        figure("worker_kill9", requests=len(results), errors=len(results) - statuses[200],
               max_latency_s=round(max(r[3] for r in results), 3),
               streams_cut=len(lost), stream_error_after_kill_s=round(to_error, 3),
               rejoin_s=round(rejoin, 3))
        check_eq(dict(statuses), {200: len(results)},
                 "non-stream calls re-dispatched to the live worker")
        check(max(r[3] for r in results) < 8.0, "a request took %.2fs" % max(r[3] for r in results))
        _check_rows_exact(pg, "wk9", load.answered(), "worker_kill9")
        _check_not_restarted(stack, others)
        # F-2: a cut stream is recorded as a failure that counts the tokens relayed.
        for s in lost:
            row = wait_for(lambda s=s: {r[0]: r for r in _rows(pg, "wk9s")}.get(s.call_id), 10,
                           what="the row of a cut stream")
            check_eq(row[1:4], ["failure", "502", "upstream_worker_lost"], "cut stream row")
            relayed = s.content_chunks()
            check(int(row[4]) >= relayed,
                  "F-2: a stream cut by a worker's death after %d content chunks is recorded "
                  "with completion_tokens=%s" % (relayed, row[4]))
    finally:
        if load:
            load.stop()
        stack.stop()


def test_router_kill9_under_load(ctx):
    """F-3: router SIGKILLed under load, restarted 2 s later; gateway and workers stay up."""
    env = ctx.env
    pg = env.pg
    cfg = config([deployment("w", "openai/x", env.mock.base + "/delay/20/v1",
                             api_key=UPSTREAM_KEY)], general={"proxy_batch_write_at": 0.2})
    stack = Stack(env, cfg, workers=2, db_url=pg.url, name="rel-router-kill")
    load = None
    try:
        load = Load(stack.port, "w", "rt9")
        wait_for(lambda: load.count(lambda r: r[1] == 200) >= 20, 10, what="load flowing")
        others = _pids(stack, "router")
        t_kill = _kill9(stack, "router")
        time.sleep(2.0)
        _restart(stack, "router")
        t_restart = time.monotonic()
        wait_for(lambda: load.count(lambda r: r[0] > t_restart and r[1] == 200) > 0, 15,
                 what="a request served after the router restarted")
        recovery = min(r[0] for r in load.results if r[0] > t_restart and r[1] == 200) - t_restart
        stack.wait_ready(2, timeout=10)
        time.sleep(1.0)
        results = load.stop()
        statuses = collections.Counter(r[1] for r in results)
        outage = [r for r in results if r[1] != 200]
        # Requests that arrived once the gateway knew the router was gone (> 1 s liveness).
        fast = [r[3] for r in outage if r[0] - r[3] > t_kill + 1.5]
        figure("router_kill9", requests=len(results), errors=len(outage),
               max_latency_s=round(max(r[3] for r in results), 3),
               max_503_latency_s=round(max(fast), 3) if fast else None,
               recovery_s=round(recovery, 3))
        check_eq([r[6] for r in results if r[6]], [], "client-side failures")
        check(outage, "the outage was seen by the clients")
        check_eq(set(statuses) - {200, 503}, set(), "statuses %r" % dict(statuses))
        check_eq({r[4] for r in outage}, {"router_unavailable"}, "error codes while down")
        check(max(r[3] for r in results) < 3.0,
              "a request waited %.2fs for a dead router" % max(r[3] for r in results))
        check(fast and max(fast) < 1.0, "503s while the router is down are immediate: %r"
              % (sorted(fast)[-3:],))
        check(recovery <= 5.0, "served again %.2fs after the router restarted" % recovery)
        _check_rows_exact(pg, "rt9", load.answered(), "router_kill9")
        _check_not_restarted(stack, others)
        check(all(r[5] for r in outage),
              "F-3: 503 router_unavailable answers carry no Retry-After (%d of %d without)"
              % (sum(1 for r in outage if not r[5]), len(outage)))
    finally:
        if load:
            load.stop()
        stack.stop()


def test_gateway_kill9_under_load(ctx):
    """F-4b: a gateway SIGKILLed under load and restarted; its in-flight upstream calls end."""
    env = ctx.env
    pg = env.pg
    mock = env.mock
    m = mock.base
    cfg = config([deployment("w", "openai/x", m + "/delay/20/v1", api_key=UPSTREAM_KEY),
                  deployment("hang", "openai/x", m + "/hang/v1", api_key=UPSTREAM_KEY,
                             timeout=20)], general={"proxy_batch_write_at": 0.2})
    stack = Stack(env, cfg, workers=2, db_url=pg.url, name="rel-gateway-kill")
    load = None
    hung = []
    orphans_left = True
    try:
        base_active = mock.stats()["active_requests"]
        for i in range(4):
            s = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
            body = json.dumps({"model": "hang", "user": "gk9h-%d" % i,
                               "messages": [{"role": "user", "content": "x"}]}).encode()
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      b"%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (MASTER_KEY.encode(), len(body), body))
            hung.append(s)
        wait_for(lambda: mock.stats()["active_requests"] >= base_active + 4, 10,
                 what="4 upstream calls hanging")
        load = Load(stack.port, "w", "gk9")
        wait_for(lambda: load.count(lambda r: r[1] == 200) >= 20, 10, what="load flowing")
        others = _pids(stack, "gateway")
        t_kill = _kill9(stack, "gateway")
        for s in hung:  # the clients see the connection go at once, not a hang
            s.settimeout(3)
            try:
                check_eq(s.recv(100), b"", "a hung request's connection after the kill")
            except ConnectionResetError:
                pass
        time.sleep(0.5)
        _restart(stack, "gateway")
        t_restart = time.monotonic()
        wait_for(lambda: Http(stack.port, timeout=2).json("GET", "/health/readiness")[0] == 200,
                 10, what="the restarted gateway ready")
        ready = time.monotonic() - t_restart
        wait_for(lambda: load.count(lambda r: r[0] > t_restart and r[1] == 200) >= 20, 10,
                 what="traffic through the restarted gateway")
        results = load.stop()
        served = [r for r in results if r[1]]
        figure("gateway_kill9", requests=len(results), refused_or_reset=len(results) - len(served),
               restart_ready_s=round(ready, 3))
        check(max(r[3] for r in results) < 8.0, "a request took %.2fs" % max(r[3] for r in results))
        bad = [(r[1], r[4]) for r in served
               if r[1] != 200 and not (r[1] == 503 and r[4] == "router_unavailable" and
                                        r[0] - r[3] < t_restart + 2.0)]
        check_eq(bad, [], "answers other than 200 (or 503 while the new gateway met its router)")
        check(ready <= 5.0, "the gateway was ready %.2fs after its restart" % ready)
        _check_rows_exact(pg, "gk9", load.answered(), "gateway_kill9")
        _check_not_restarted(stack, others)
        # F-4b: the upstream calls of the dead gateway's requests are cancelled (no orphans).
        try:
            wait_for(lambda: mock.stats()["active_requests"] <= base_active,
                     max(0.5, t_kill + 5.5 - time.monotonic()), what="orphans")
            orphans_left = False
        except AssertionError:
            pass
        left = mock.stats()["active_requests"] - base_active
        figure("gateway_kill9", orphan_upstream_calls_5s_after_kill=left)
        check(not orphans_left,
              "F-4b: %d upstream call(s) of the killed gateway's requests still open %.1fs "
              "after the kill (they run to the deployment timeout, and the router retries "
              "them)" % (left, time.monotonic() - t_kill))
    finally:
        if load:
            load.stop()
        for s in hung:
            s.close()
        if orphans_left:
            # Workers would drain those calls for up to 30 s on SIGTERM: end them now.
            for name in [n for n in stack.procs if n.startswith("worker")]:
                stack.procs.pop(name).kill()
        stack.stop()


def _freeze(proc, log_of, seconds):
    """SIGSTOP proc for seconds; returns (t_stop, t_cont, what log_of() gained meanwhile)."""
    mark = len(log_of())
    t_stop = time.monotonic()
    proc.send(signal.SIGSTOP)
    time.sleep(seconds)
    gained = log_of()[mark:]
    proc.send(signal.SIGCONT)
    return t_stop, time.monotonic(), gained


def test_redis_frozen_then_killed_under_load(ctx):
    """F-8: Redis SIGSTOPped 2.5 s, then killed and restarted, under load with a limited key."""
    env = ctx.env
    redis = env.redis
    if not redis.proc.alive():
        redis.start()
    cfg = config([deployment("m", "openai/m", mock_response="answer")],
                 general={"proxy_batch_write_at": 0.2})
    stack = Stack(env, cfg, db_url=env.pg.url, extra_env={"REDIS_URL": redis.url},
                  name="rel-redis")
    load = None
    try:
        gw = stack.procs["gateway"]
        wait_for(lambda: "connected: rate limits" in gw.text(), 10, what="gateway on Redis")
        st, _, body = stack.http.json("POST", "/key/generate",
                                      {"rpm_limit": 1000000, "tpm_limit": 1000000000},
                                      stack.auth())
        check_eq(st, 200, "key generate")
        key = body["key"]
        token = hashlib.sha256(key.encode()).hexdigest()
        load = Load(stack.port, "m", "rds", key=key)
        wait_for(lambda: redis.keys("lp:{%s}:rpm:*" % token), 10, what="counters in Redis")
        t_stop, t_cont, during_freeze = _freeze(redis.proc, gw.text, 2.5)
        time.sleep(0.5)
        redis.kill()
        t_dead = time.monotonic()
        time.sleep(1.5)
        redis.start()  # empty: no persistence
        t_back = time.monotonic()
        wait_for(lambda: redis.keys("lp:{%s}:rpm:*" % token), 15,
                 what="the key's counters back in Redis after its restart")
        back = time.monotonic() - t_back
        results = load.stop()
        statuses = collections.Counter(r[1] for r in results)
        froze = [r for r in results if t_stop < r[0] < t_cont]
        slow = [r for r in froze if r[3] > 0.15]
        figure("redis_freeze_kill", requests=len(results), errors=len(results) - statuses[200],
               requests_during_freeze=len(froze), paid_redis_timeout_during_freeze=len(slow),
               requests_while_dead=sum(1 for r in results if t_dead < r[0] < t_back),
               max_latency_s=round(max(r[3] for r in results), 3),
               counters_back_s=round(back, 3),
               unreachable_logged_during_freeze=during_freeze.count("unreachable"),
               connected_logged_during_freeze=during_freeze.count("connected: rate limits"))
        check_eq(dict(statuses), {200: len(results)}, "fail-open: every request served")
        check(max(r[3] for r in results) < 1.0,
              "no request blocked past the Redis deadline: %.3fs" % max(r[3] for r in results))
        check(during_freeze.count("connected: rate limits") == 0 and
              during_freeze.count("unreachable") <= 1,
              "F-8: while Redis was frozen (SIGSTOP, TCP still accepting) the gateway logged "
              "'unreachable' %d times and 'connected' %d times in 2.5 s: the breaker closes on a "
              "bare TCP connect, so every ~300 ms a new batch of requests waits 200 ms "
              "(%d of %d requests during the freeze)"
              % (during_freeze.count("unreachable"), during_freeze.count("connected: rate limits"),
                 len(slow), len(froze)))
    finally:
        if load:
            load.stop()
        if redis.proc.alive():
            redis.proc.send(signal.SIGCONT)
        else:
            redis.start()
        stack.stop()


# ---------------------------------------------------------------------------------------------
# Upstream misbehaviour (F-9..F-13): num_retries 0, so each client call is one upstream call


def test_upstream_529_and_connection_refused(ctx):
    """F-10 (529 overloaded) and connection refused, non-stream and stream."""
    stack = ctx.stack("upstream")
    st, h, body = stack.chat("anthropic-529")
    check_error(st, body, 503, "503", "service_unavailable_error")
    check_eq(h.get("retry-after"), "2", "the provider's retry-after kept")
    st, _, body = stack.stream("openai-529")
    check_error(st, body, 503, "503", "service_unavailable_error")
    st, _, body = stack.stream("refused")
    check_error(st, body, 502, "upstream_unreachable", "api_error")
    t0 = time.monotonic()
    st, _, body = stack.chat("refused")
    check_error(st, body, 502, "upstream_unreachable", "api_error")
    check(time.monotonic() - t0 < 1.0, "refused connection answered at once")


def test_upstream_reset_mid_body(ctx):
    """F-12: the provider resets the connection half-way through its answer."""
    stack = ctx.stack("upstream")
    rogue = ctx.rogue
    before = rogue.connections
    st, _, body = stack.chat("reset")
    check_error(st, body, 502, "upstream_error", "api_error")
    check_eq(rogue.connections - before, 1, "one upstream call (num_retries 0)")
    st, _, events = stack.stream("resetsse")
    check_eq(st, 200, "the stream had started")
    check(events and events[-1] != "[DONE]", "no success terminator after a reset")
    check_eq(json.loads(events[-1])["error"]["code"], "upstream_error", "terminal error event")
    check_eq(json.loads(events[0])["choices"][0]["delta"].get("content"), "hel",
             "the event before the reset was relayed")


def test_upstream_garbage_answers(ctx):
    """F-12: HTML 200, JSON cut in half, a redirect (never followed), a 10 MiB SSE line."""
    stack = ctx.stack("upstream")
    for group in ("html", "truncated", "redirect"):
        st, _, body = stack.chat(group)
        check_error(st, body, 502, "invalid_upstream_response", "api_error")
    check_eq(ctx.canary.connections, 0, "the redirect target was never contacted")
    wk = stack.workers[0].p.pid
    before = rss_kb(wk)
    st, _, body = stack.stream("hugeline")
    check_error(st, body, 502, "upstream_stream_too_large", "api_error")
    if not ctx.env.sanitized:
        grown = rss_kb(wk) - before
        check(grown < 16 * 1024, "worker kept %d KiB after a 10 MiB SSE line" % grown)


def test_upstream_100mb_body_bounded(ctx):
    """F-12 / issue 11: a 100 MB answer (declared and chunked) is cut at the 64 MiB cap."""
    rogue = ctx.rogue
    out = {}
    # A stack of its own: its worker's peak RSS is this test's alone.
    r = rogue.base
    cfg = config([deployment("big", "openai/x", r + "/big/v1", api_key=UPSTREAM_KEY, timeout=60),
                  deployment("bigchunked", "openai/x", r + "/bigchunked/v1",
                             api_key=UPSTREAM_KEY, timeout=60)], router={"num_retries": 0})
    big = Stack(ctx.env, cfg, workers=1, name="rel-bigbody")
    try:
        gw, wk = big.procs["gateway"].p.pid, big.workers[0].p.pid
        for group in ("big", "bigchunked"):
            base = {p: rss_kb(p) for p in (gw, wk)}
            peaks_ok = all(_reset_peak_rss(p) for p in (gw, wk))
            rogue.sent = 0
            t0 = time.monotonic()
            st, _, body = big.chat(group)
            elapsed = time.monotonic() - t0
            grown = {p: (_status_kb(p, "VmHWM") if peaks_ok else rss_kb(p)) - base[p]
                     for p in (gw, wk)}
            out[group] = {"status": st, "seconds": round(elapsed, 3),
                          "upstream_bytes_sent": rogue.sent,
                          "gateway_peak_growth_kib": grown[gw],
                          "worker_peak_growth_kib": grown[wk]}
            figure("upstream_100mb", **out)
            check_error(st, body, 502, "upstream_response_too_large", "api_error")
            check(rogue.sent < 100 * 1000 * 1000, "%s: the transfer was read to its end" % group)
            check(elapsed < 10.0, "%s answered in %.1fs" % (group, elapsed))
            if not ctx.env.sanitized:
                check(grown[wk] <= 80 * 1024, "%s: worker peak grew %d KiB (cap 64 MiB)"
                      % (group, grown[wk]))
                check(grown[gw] <= 8 * 1024, "%s: gateway peak grew %d KiB" % (group, grown[gw]))
    finally:
        big.stop()


def test_upstream_timeouts_honoured(ctx):
    """F-11: each deadline within +-10 % + 100 ms; the provider connection is closed."""
    stack = ctx.stack("upstream")
    mock = ctx.env.mock
    wk = stack.workers[0].p.pid
    check(ctx.blackhole.holes(), "test set-up: the black-hole port must drop SYNs")
    base_active = mock.stats()["active_requests"]
    base_fds = _fds(wk)
    measured = {}

    def timed(fn):
        t0 = time.monotonic()
        out = fn()
        return out, time.monotonic() - t0

    # (a) connect black-holed, (b) headers never come: timeout 2 s, non-stream -> 408.
    for group in ("blackhole", "hang"):
        (st, _, body), dt = timed(lambda g=group: stack.chat(g))
        measured[group] = round(dt, 3)
        check_error(st, body, 408, "timeout", "timeout_error")
        check(_within(dt, 2.0), "%s: 408 after %.3fs, configured 2 s" % (group, dt))
    # stream_timeout 1 s before the first byte -> JSON 408 (no HEAD yet).
    (st, _, body), dt = timed(lambda: stack.stream("hang-stream"))
    measured["first_byte"] = round(dt, 3)
    check_error(st, body, 408, "stream_timeout", "timeout_error")
    check(_within(dt, 1.0), "first byte: 408 after %.3fs, stream_timeout 1 s" % dt)
    # (c) headers and a first chunk, then silence: stream_timeout 1 s -> error event.
    (st, _, events), dt = timed(lambda: stack.stream("stall"))
    measured["idle_gap"] = round(dt, 3)
    check_eq(st, 200, "stall status")
    check_eq(json.loads(events[-1])["error"]["code"], "stream_timeout", "stall error event")
    check(_within(dt, 1.0), "stall: error event after %.3fs, stream_timeout 1 s" % dt)
    # (d) a drip that never ends: the total timeout (2 s) bounds streams too.
    (st, _, events), dt = timed(lambda: stack.stream("drip"))
    measured["total_drip"] = round(dt, 3)
    check_eq(st, 200, "drip status")
    check(len(events) > 5 and "[DONE]" not in events, "the drip was cut, not finished")
    check_eq(json.loads(events[-1])["error"]["code"], "timeout", "drip error event")
    check(_within(dt, 2.0), "drip: error event after %.3fs, timeout 2 s" % dt)
    figure("upstream_timeouts", **measured)
    wait_for(lambda: mock.stats()["active_requests"] <= base_active, 5,
             what="the mock to see every timed-out call closed")
    wait_for(lambda: abs(_fds(wk) - base_fds) <= 2, 5,
             what="worker fds back to %d (now %d)" % (base_fds, _fds(wk)))


# ---------------------------------------------------------------------------------------------
# Client misbehaviour (F-14, L-4)


def test_client_gone_mid_request_cancels_upstream(ctx):
    """F-14 (non-stream): the client leaves while the provider has not answered."""
    stack = ctx.stack("client")
    mock = ctx.env.mock
    base = mock.stats()["active_requests"]
    body = json.dumps({"model": "hang", "user": "gone-1",
                       "messages": [{"role": "user", "content": "x"}]}).encode()
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (MASTER_KEY.encode(), len(body), body))
    wait_for(lambda: mock.stats()["active_requests"] > base, 5, what="the upstream call")
    s.close()
    t0 = time.monotonic()
    wait_for(lambda: mock.stats()["active_requests"] <= base, 5,
             what="the upstream call cancelled")
    dt = time.monotonic() - t0
    figure("client_gone_nonstream", cancel_s=round(dt, 3))
    check(dt <= 1.1, "upstream cancelled %.2fs after the client left (budget 1 s)" % dt)
    rows = wait_for(lambda: _rows(ctx.env.pg, "gone"), 10, what="the client-gone row")
    check_eq(rows[0][1:4], ["failure", "499", "client_closed_request"], "row")


def test_slowloris_and_slow_bodies_do_not_block_others(ctx):
    """L-4 (b), (c): 100 connections trickling headers and 100 trickling bodies, while
    ordinary requests keep their latency; the bodies, slower than 1 KiB/s, are cut once their
    10 s of grace have passed (headers get 120 s in all: `make reliability` waits for them)."""
    stack = ctx.stack("client")
    gw = stack.procs["gateway"].p.pid
    base_fds = _fds(gw)
    base_cut = _metric(stack, "llmproxy_slow_connections_closed_total")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    heads, bodies = [], []
    t_start = time.monotonic()
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", stack.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            heads.append(s)
            s = socket.create_connection(("127.0.0.1", stack.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      b"%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (MASTER_KEY.encode(), len(body), body[:3]))
            bodies.append(s)
        http = Http(stack.port, timeout=10)
        lat = []
        for i in range(30):
            for s in heads:
                s.sendall(b"X-Slow-%d: 1\r\n" % i)
            for s in bodies:
                s.sendall(b" " if i % 2 else b"")
            t0 = time.monotonic()
            st, _, _ = http.json("POST", "/v1/chat/completions",
                                 {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                                 stack.auth())
            lat.append(time.monotonic() - t0)
            check_eq(st, 200, "an ordinary request during the trickle")
            time.sleep(0.05)
        http.close()
        open_heads = sum(1 for s in heads if _still_open(s))
        figure("slowloris", trickling_connections=200, legit_requests=len(lat),
               legit_max_latency_s=round(max(lat), 4),
               trickling_open_after_s=round(30 * 0.05, 1), trickling_still_open=open_heads)
        check(max(lat) < 1.0, "ordinary requests slowed to %.2fs by slow clients" % max(lat))

        def bodies_cut():
            for s in bodies:
                try:
                    s.sendall(b" ")
                except OSError:
                    pass
            return not any(_still_open(s) for s in bodies)
        wait_for(bodies_cut, 20, step=1.0, what="trickled bodies cut")
        cut_after = time.monotonic() - t_start
        figure("slowloris", bodies_cut_after_s=round(cut_after, 1))
        check(10 <= cut_after <= 15, "trickled bodies cut after %.1fs (grace 10 s)" % cut_after)
        check_eq(sum(1 for s in heads if _still_open(s)), 100, "trickled headers: within 120 s")
        check_eq(_metric(stack, "llmproxy_slow_connections_closed_total") - base_cut, 100,
                 "counted in /metrics")
    finally:
        for s in heads + bodies:
            s.close()
    wait_for(lambda: _fds(gw) <= base_fds + 5, 10,
             what="gateway fds back to %d (now %d)" % (base_fds, _fds(gw)))


def _metric(stack, name):
    """A gateway counter or gauge from /metrics."""
    st, _, text = stack.http.request("GET", "/metrics", None, stack.auth())
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("%s not in /metrics" % name)


def _still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def test_idle_keepalive_connections_bounded(ctx):
    """L-4 (a): LP_IDLE_CONNECTIONS (2,000 here; 10,000 in `make reliability`) idle
    keep-alive connections: fds and memory bounded, ordinary traffic served, all released."""
    n = IDLE_CONNECTIONS
    check(_raise_fd_limit(n) >= n + 256, "test set-up: RLIMIT_NOFILE too low for %d sockets" % n)
    stack = ctx.stack("client")
    gw = stack.procs["gateway"].p.pid
    base_fds, base_rss = _fds(gw), rss_kb(gw)
    idle = []
    try:
        t0 = time.monotonic()
        for _ in range(n):
            idle.append(socket.create_connection(("127.0.0.1", stack.port), timeout=10))
        for s in idle:
            s.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in idle:
            check(s.recv(4096).startswith(b"HTTP/1.1 200"), "an idle connection's first answer")
        opened = time.monotonic() - t0
        fds, grown = _fds(gw) - base_fds, rss_kb(gw) - base_rss
        t1 = time.monotonic()
        st = stack.chat("m")[0]
        legit = time.monotonic() - t1
        figure("idle_connections", connections=n, open_s=round(opened, 3), gateway_fds=fds,
               gateway_rss_growth_kib=grown, per_connection_kib=round(grown / n, 1),
               legit_latency_s=round(legit, 4))
        check_eq(st, 200, "an ordinary request with %d idle connections open" % n)
        check(n - 5 <= fds <= n + 50, "gateway fds grew by %d for %d connections" % (fds, n))
        if not ctx.env.sanitized:
            check(grown <= n * 64, "gateway RSS grew %d KiB for %d connections (> 64 KiB each)"
                  % (grown, n))
    finally:
        for s in idle:
            s.close()
    wait_for(lambda: _fds(gw) <= base_fds + 5, 15,
             what="gateway fds back to %d (now %d)" % (base_fds, _fds(gw)))


def test_overload_is_shed_with_503(ctx):
    """L-3, scaled: ten times the calls the workers can run at once, against a slow upstream.
    What fits runs; the rest waits in the router's bounded queue at most RT_QUEUE_WAIT_MS
    (5 s) and is answered 503 no_worker_available with retry-after; nothing hangs, and the
    stack serves normally once the wave has passed."""
    env = ctx.env
    models = [deployment("slow", "openai/gpt-4o-mini", env.mock.base + "/delay/6500/v1",
                         api_key=UPSTREAM_KEY, timeout=30),
              deployment("fast", "openai/gpt-4o-mini", env.mock.base + "/v1",
                         api_key=UPSTREAM_KEY)]
    stack = Stack(env, config(models, router={"num_retries": 0}),
                  extra_env={"WORKER_MAX_CALLS": "4"}, name="rel-overload")
    results = []
    lock = threading.Lock()

    def one():
        t0 = time.monotonic()
        st, h, b = Http(stack.port, timeout=20).json(
            "POST", "/v1/chat/completions",
            {"model": "slow", "messages": [{"role": "user", "content": "x"}]}, stack.auth())
        with lock:
            results.append((st, h, b, time.monotonic() - t0))
    try:
        rt_rss = rss_kb(stack.procs["router"].p.pid)
        threads = [threading.Thread(target=one) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        check(not any(t.is_alive() for t in threads), "a request hung under overload")
        statuses = collections.Counter(r[0] for r in results)
        check_eq(dict(statuses), {200: 4, 503: 36}, "4 run (the workers' capacity), 36 shed")
        for st, h, b, took in results:
            if st == 503:
                check_error(st, b, 503, "no_worker_available")
                check("retry-after" in h, "a shed request says when to retry")
                check(4.5 <= took <= 6.5, "shed after %.2fs in the queue (5 s)" % took)
        figure("overload", requests=len(results), served=statuses[200], shed=statuses[503],
               router_rss_growth_kib=rss_kb(stack.procs["router"].p.pid) - rt_rss)
        check_eq(stack.chat("fast")[0], 200, "served normally after the wave")
    finally:
        stack.stop()


def test_connections_per_address_limited_when_asked(ctx):
    """L-4: --max-connections-per-ip (off by default: behind a load balancer every client
    shares its address) closes one address's connections past the limit at once; the others'
    are served, and a slot freed is a slot served."""
    per_ip = 5
    models = [deployment("m", "openai/m", mock_response="ok")]
    stack = Stack(ctx.env, config(models), extra_env={"LP_MAX_CONNECTIONS_PER_IP": str(per_ip)},
                  name="rel-per-ip")
    ping = b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n"

    def served(s):
        try:
            s.sendall(ping)
            return s.recv(4096).startswith(b"HTTP/1.1 200")
        except OSError:
            return False
    held = []
    try:
        stack.http.close()
        for _ in range(per_ip + 3):
            held.append(socket.create_connection(("127.0.0.1", stack.port), timeout=2))
        outcomes = [served(s) for s in held]
        check(sum(outcomes) in (per_ip - 1, per_ip) and not any(outcomes[per_ip:]),
              "served per connection, in order: %s" % outcomes)
        for s in held:
            s.close()
        held = []

        def fresh():
            with socket.create_connection(("127.0.0.1", stack.port), timeout=2) as s:
                return served(s)
        wait_for(fresh, 5, what="slots freed and served")
    finally:
        for s in held:
            s.close()
        stack.stop()


def test_connections_past_the_cap_answered_503(ctx):
    """L-4 (a): past --max-connections a new connection is answered 503 too_many_connections
    and closed at once, never left waiting; a slot freed is a slot served."""
    cap = 20
    models = [deployment("m", "openai/m", mock_response="ok")]
    stack = Stack(ctx.env, config(models), extra_env={"LP_MAX_CONNECTIONS": str(cap)},
                  name="rel-cap")
    ping = b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n"
    held, refused = [], None
    try:
        stack.http.close()
        while len(held) < cap + 5:
            t0 = time.monotonic()
            s = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
            s.sendall(ping)
            answer = s.recv(65536)
            if answer.startswith(b"HTTP/1.1 503"):
                refused = (answer, time.monotonic() - t0, s.recv(4096) == b"")
                s.close()
                break
            check(answer.startswith(b"HTTP/1.1 200"), "served under the cap: %r" % answer[:40])
            held.append(s)
        check(refused is not None, "no 503 after %d connections" % len(held))
        check(cap - 3 <= len(held) <= cap, "refused after %d connections (cap %d)"
              % (len(held), cap))
        answer, took, closed = refused
        head, _, body = answer.partition(b"\r\n\r\n")
        check_eq(_error_code(body), "too_many_connections", "its error code")
        check(b"\r\nretry-after: 1" in head.lower(), "says when to come back: %r" % head)
        check(closed and took < 1.0, "closed at once (%.2fs, closed %s)" % (took, closed))
        held.pop().close()

        def served():
            with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as s:
                s.sendall(ping)
                return s.recv(4096).startswith(b"HTTP/1.1 200")
        wait_for(served, 5, what="a freed slot served")
    finally:
        for s in held:
            s.close()
        stack.stop()


# ---------------------------------------------------------------------------------------------
# Bad input (B-*): the universal rule -- the listed 4xx, OpenAI error JSON, nothing upstream


def _post_raw(stack, raw, content_type="application/json", path="/v1/chat/completions",
              key=MASTER_KEY):
    h = {"Authorization": "Bearer " + key}
    if content_type is not None:
        h["Content-Type"] = content_type
    return stack.http.json("POST", path, raw=raw, headers=h)


def _nothing_upstream(ctx, fn):
    mock = ctx.env.mock
    mock.clear()
    out = fn()
    check_eq(len(mock.requests()), 0, "requests that reached the provider")
    return out


def test_malformed_and_deep_json(ctx):
    """B-1, B-5: malformed JSON and nesting past the documented depth (64)."""
    stack = ctx.stack("input")
    msg = b'{"model":"up","messages":[{"role":"user","content":"x"}]'
    cases = {
        "trailing garbage": msg + b"} garbage",
        "BOM": b"\xef\xbb\xbf" + msg + b"}",
        "comment": b"/* c */" + msg + b"}",
        "empty body": b"",
        "NaN": b'{"model":"up","temperature":NaN,"messages":[{"role":"user","content":"x"}]}',
        "1e999999": b'{"model":"up","temperature":1e999999,"messages":[]}',
        "2^64": b'{"model":"up","max_tokens":18446744073709551616,"messages":[]}',
        "single quotes": b"{'model':'up'}",
        "content depth 1000": b'{"model":"up","messages":[{"role":"user","content":' +
                              b"[" * 1000 + b"]" * 1000 + b"}]}",
        "content depth 100000": b'{"model":"up","messages":[{"role":"user","content":' +
                                b"[" * 100000 + b"]" * 100000 + b"}]}",
        "metadata depth 65": b'{"model":"up","messages":[{"role":"user","content":"x"}],'
                             b'"metadata":' + b'{"a":' * 65 + b"1" + b"}" * 65 + b"}",
    }
    for name, raw in cases.items():
        st, _, body = _nothing_upstream(ctx, lambda raw=raw: _post_raw(stack, raw))
        try:
            check_error(st, body, 400, "invalid_json", "invalid_request_error")
        except AssertionError as e:
            raise AssertionError("%s: %s" % (name, e))
    # Under the limit is fine: 50 levels inside metadata.
    ok = (b'{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":' +
          b'{"a":' * 50 + b"1" + b"}" * 50 + b"}")
    check_eq(_post_raw(stack, ok)[0], 200, "50 levels of metadata")
    check(stack.procs["gateway"].alive(), "the gateway survived")


def test_huge_bodies(ctx):
    """B-2 with max_request_size_mb: 1 -- declared, received and chunked sizes."""
    stack = ctx.stack("input")
    gw = stack.procs["gateway"].p.pid
    auth = b"Authorization: Bearer " + MASTER_KEY.encode()
    # A declared 1 GiB body with one byte sent: refused before reading it, connection closed.
    t0 = time.monotonic()
    st, h, body = _raw(stack.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth +
                       b"\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{")
    dt = time.monotonic() - t0
    check_error(st, json.loads(body), 413, "request_too_large", "invalid_request_error")
    check_eq(h.get("connection", "").lower(), "close", "connection closed after a 413")
    check(dt < 1.0, "declared oversize refused in %.3fs" % dt)
    # A body just under the limit gets through whole; so do 5,000 messages.
    fits = {"model": "up", "messages": [{"role": "user", "content": "b" * 900000}]}
    ctx.env.mock.clear()
    check_eq(stack.http.json("POST", "/v1/chat/completions", fits, stack.auth())[0], 200,
             "900 kB body under the 1 MB limit")
    check_eq(len(ctx.env.mock.requests()[-1]["json"]["messages"][0]["content"]), 900000,
             "forwarded whole")
    many = {"model": "m", "messages": [{"role": "user", "content": "m"}] * 5000}
    check_eq(stack.http.json("POST", "/v1/chat/completions", many, stack.auth())[0], 200,
             "5,000 messages")
    # A chunked body growing past the limit: dropped as it comes (memory flat), 413 when it
    # ends. libmicrohttpd 0.9.75 cannot answer before the body ends (documented gap: one that
    # never ends meets the connection timeout).
    base = rss_kb(gw)
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    answer = b""
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth +
                  b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 65536
        s.settimeout(0.05)
        for _ in range(80):  # 5 MiB, 5 times the limit
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        s.sendall(b"0\r\n\r\n")
        s.settimeout(2)
        try:
            answer += s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    if not ctx.env.sanitized:
        check(rss_kb(gw) - base < 4 * 1024, "gateway RSS grew %d KiB" % (rss_kb(gw) - base))
    check(answer.startswith(b"HTTP/1.1 413"),
          "B-2: a chunked body past max_request_size_mb: got %r" % answer[:40])
    check(b"request_too_large" in answer and b"Connection: close" in answer,
          "B-2: the 413 closes the connection: %r" % answer)


def test_invalid_utf8(ctx):
    """B-6: invalid UTF-8 and NUL in content, model and metadata."""
    stack = ctx.stack("input")
    for where in ("content", "model", "metadata"):
        for name, bad in (("0xff", b"\xff"), ("overlong", b"\xc0\xaf"), ("continuation", b"\x80"),
                          ("surrogate", b"\\ud800"), ("NUL", b"a\\u0000b"),
                          ("CESU", b"\xed\xa0\x80")):
            content = bad if where == "content" else b"x"
            model = b"up" + bad if where == "model" else b"up"
            meta = b',"metadata":{"k":"' + bad + b'"}' if where == "metadata" else b""
            raw = (b'{"model":"' + model + b'","messages":[{"role":"user","content":"' + content +
                   b'"}]' + meta + b"}")
            st, _, body = _nothing_upstream(ctx, lambda raw=raw: _post_raw(stack, raw))
            try:
                check_error(st, body, 400, "invalid_json", "invalid_request_error")
            except AssertionError as e:
                raise AssertionError("%s in %s: %s" % (name, where, e))


def test_wrong_types_refused(ctx):
    """Issue 11 'wrong types for every field' (B universal rule): 400 naming the field,
    nothing sent upstream."""
    stack = ctx.stack("input")
    msgs = [{"role": "user", "content": "x"}]
    cases = [("model", 5), ("model", ["up"]), ("messages", "hi"), ("messages", {"a": 1}),
             ("messages", ["hi"]), ("messages", [{"role": 1, "content": "x"}]),
             ("messages", [{"role": "user", "content": 5}]), ("stream", "yes"),
             ("max_tokens", "10"), ("max_tokens", True), ("n", "2"), ("temperature", "hot"),
             ("top_p", [1]), ("stop", 5), ("tools", "x"), ("tools", [1]), ("tool_choice", 5),
             ("user", 5), ("metadata", "x"), ("stream_options", "x"), ("seed", "x"),
             ("response_format", "json"), ("logit_bias", [1]), ("presence_penalty", "x")]
    wrong = []
    mock = ctx.env.mock
    for field, value in cases:
        body = {"model": "up", "messages": msgs}
        body[field] = value
        mock.clear()
        st, _, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
        upstream = len(mock.requests())
        check(st < 500, "%s=%r: %d" % (field, value, st))
        e = (resp or {}).get("error") if isinstance(resp, dict) else None
        param_ok = e and (e.get("param") == field or field in (e.get("message") or ""))
        if st != 400 or not param_ok or upstream:
            wrong.append("%s=%s -> %d%s" % (field, json.dumps(value), st,
                                             " (sent upstream)" if upstream else ""))
    check(not wrong, "wrong types not refused with 400 naming the field (%d of %d): %s"
          % (len(wrong), len(cases), "; ".join(wrong)))


def test_numeric_bounds(ctx):
    """B-18: out-of-range max_tokens and n are refused (400) or clamped, never forwarded."""
    stack = ctx.stack("input")
    mock = ctx.env.mock
    msgs = [{"role": "user", "content": "x"}]
    bad = []
    for field, value, lo, hi in (("max_tokens", -1, 1, 2 ** 31 - 1), ("max_tokens", 0, 1, None),
                                 ("max_tokens", 2 ** 31, 1, 2 ** 31 - 1),
                                 ("max_tokens", 1.5, 1, None),
                                 ("max_completion_tokens", -5, 1, None),
                                 ("n", 10000, 1, 128), ("n", -1, 1, 128), ("n", 0, 1, 128),
                                 ("temperature", -3, 0, 2), ("temperature", 1e300, 0, 2)):
        mock.clear()
        st, _, resp = stack.http.json("POST", "/v1/chat/completions",
                                      {"model": "up", "messages": msgs, field: value},
                                      stack.auth())
        sent = [r["json"].get(field) for r in mock.requests()]
        if st == 400:
            check_error(st, resp, 400)
            continue
        ok = st == 200 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and
                               v >= lo and (hi is None or v <= hi) and
                               (field == "temperature" or float(v).is_integer())
                               for v in sent)
        if not ok:
            bad.append("%s=%r -> %d, forwarded %r" % (field, value, st, sent))
    check(not bad, "out-of-range values forwarded to the provider: %s" % "; ".join(bad))


def test_unknown_fields_and_content_type(ctx):
    """Unknown fields pass through unchanged (as LiteLLM does for new OpenAI parameters);
    B-7: a body that is not UTF-8 JSON is 415."""
    stack = ctx.stack("input")
    mock = ctx.env.mock
    mock.clear()
    st, _, _ = stack.http.json("POST", "/v1/chat/completions",
                               {"model": "up", "messages": [{"role": "user", "content": "x"}],
                                "some_future_param": {"a": [1, 2]}}, stack.auth())
    check_eq(st, 200, "unknown field")
    check_eq(mock.requests()[-1]["json"].get("some_future_param"), {"a": [1, 2]},
             "unknown field forwarded unchanged")
    raw = b'{"model":"up","messages":[{"role":"user","content":"x"}]}'
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx",
               "multipart/form-data; boundary=" + "b" * 5000, "application/json; charset=utf-16"):
        try:
            st, _, body = _nothing_upstream(ctx, lambda ct=ct: _post_raw(stack, raw, ct))
            check_error(st, body, 415, "unsupported_media_type", "invalid_request_error")
        except AssertionError as e:
            raise AssertionError("B-7: Content-Type %s: %s" % (ct[:60], e))
    for ct in ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON", None):
        check_eq(_post_raw(stack, raw, ct)[0], 200, "Content-Type %r" % ct)


def test_crlf_never_reaches_a_header(ctx):
    """B-10: CR/LF (and look-alikes) in model names, user and metadata never make a header,
    in the answer or upstream."""
    stack = ctx.stack("input")
    mock = ctx.env.mock
    allowed = {"host", "content-type", "accept", "authorization", "content-length"}
    for inj in ("\r\nX-Injected: 1", "\nX-Injected: 1", "%0d%0aX-Injected: 1",
                "\u2028X-Injected: 1", "\u0085X-Injected: 1"):
        st, h, body = stack.http.json("POST", "/v1/chat/completions",
                                      {"model": "up" + inj,
                                       "messages": [{"role": "user", "content": "x"}]},
                                      stack.auth())
        check_error(st, body, 400, "model_not_found")
        check("x-injected" not in h, "injected response header via model %r" % inj)
        mock.clear()
        st, h, body = stack.http.json("POST", "/v1/chat/completions",
                                      {"model": "up", "user": "u" + inj,
                                       "metadata": {"tags": ["t" + inj], "k": "v" + inj},
                                       "messages": [{"role": "user", "content": "x"}]},
                                      stack.auth())
        check_eq(st, 200, "CR/LF inside user and metadata (never copied into a header)")
        check("x-injected" not in h, "injected response header via metadata %r" % inj)
        sent = mock.requests()[-1]["headers"]
        check_eq(set(sent) - allowed, set(), "upstream headers beyond the allowlist")
        check(not any("\n" in v or "\r" in v for v in list(h.values()) + list(sent.values())),
              "a header value with CR/LF")


def test_model_names(ctx):
    """B-14: exact byte match, no wildcard or Unicode folding; bounded error messages."""
    stack = ctx.stack("input")
    msgs = [{"role": "user", "content": "x"}]
    st, _, body = stack.http.json("POST", "/v1/chat/completions",
                                  {"model": "modèle", "messages": msgs}, stack.auth())
    check_eq((st, body.get("model")), (200, "modèle"), "a configured non-ASCII group")
    for name in ("mоdèle",  # Cyrillic o
                 "mode\u0300le",  # NFD
                 "\u202emodèle", "mod\u200dèle", "modèle\u00a0", "*", "openai/*", "u*",
                 "../m", "M", "x" * 4096):
        st, _, body = _nothing_upstream(ctx, lambda n=name: stack.http.json(
            "POST", "/v1/chat/completions", {"model": n, "messages": msgs}, stack.auth()))
        check_error(st, body, 400, "model_not_found", "invalid_request_error")
        check(len(json.dumps(body)) < 1024, "error for a %d-byte model name is %d bytes"
              % (len(name), len(json.dumps(body))))


def test_per_request_upstream_override_refused(ctx):
    """B-12, B-16: a client cannot send the proxy (or its provider key) elsewhere."""
    stack = ctx.stack("input")
    mock = ctx.env.mock
    canary = ctx.canary.base
    msgs = [{"role": "user", "content": "x"}]
    accepted, forwarded = [], []
    for extra in ({"api_base": canary + "/v1"}, {"base_url": canary + "/v1"},
                  {"custom_host": canary}, {"api_key": "sk-client-chosen-key"},
                  {"extra_headers": {"X-Evil": "1", "Authorization": "Bearer sk-evil"}}):
        field = list(extra)[0]
        mock.clear()
        body = dict({"model": "up", "messages": msgs}, **extra)
        st, _, resp = stack.http.json("POST", "/v1/chat/completions", body, stack.auth())
        check(st < 500, "%s: %d" % (field, st))
        for r in mock.requests():
            check_eq(r["headers"].get("authorization"), "Bearer " + UPSTREAM_KEY,
                     "the configured key, and only it, went upstream")
            check("x-evil" not in r["headers"], "client extra_headers forwarded")
            if field in r["json"]:
                forwarded.append(field)
        if st != 400:
            accepted.append("%s -> %d" % (field, st))
    check_eq(ctx.canary.connections, 0, "connections to the client-chosen host")
    check(not accepted and not forwarded,
          "B-12/B-16: per-request upstream overrides are not refused with 400 (%s); forwarded "
          "in the provider body: %s" % (", ".join(accepted), forwarded or "none"))


def _external_ip():
    """This machine's address on its default route (no packet is sent), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_clientside_credentials_only_as_configured(ctx):
    """B-12: a request's api_base / api_key only as the config allows (LiteLLM's
    configurable_clientside_auth_params); the proxy's key never goes to a host the config does
    not name; a host the client chose is connected to only at a public address; a client's
    upstream failing never cools the deployment down."""
    env = ctx.env
    canary = ctx.canary
    ip = _external_ip()
    # Reachable at this machine's own address, which is not loopback (traffic stays local).
    ext = Mock(env.bindir, env.root, host="0.0.0.0", name="mock-ext") if ip else None
    ext_base = ext and "http://%s:%d" % (ip, ext.port)
    models = [deployment("byo", "openai/gpt-4o-mini", env.mock.base + "/v1", api_key=UPSTREAM_KEY,
                         configurable_clientside_auth_params=["api_base", "api_key"]),
              deployment("keyonly", "openai/gpt-4o-mini", env.mock.base + "/v1",
                         api_key=UPSTREAM_KEY, configurable_clientside_auth_params=["api_key"])]
    if ext:
        pattern = "%s/v1$" % ext_base.replace(".", "\\.")
        models.append(deployment("pinned", "openai/gpt-4o-mini", env.mock.base + "/v1",
                                 api_key=UPSTREAM_KEY,
                                 configurable_clientside_auth_params=[{"api_base": pattern}]))
    stack = Stack(env, config(models, router={"allowed_fails": 1, "num_retries": 2}),
                  name="rel-clientside")
    msgs = [{"role": "user", "content": "x"}]

    def call(group, **extra):
        body = dict({"model": group, "messages": msgs}, **extra)
        return stack.http.json("POST", "/v1/chat/completions", body, stack.auth())

    def auth_seen(mock):
        return [r["headers"].get("authorization") for r in mock.requests()]
    try:
        env.mock.clear()
        st, _, b = call("byo", api_base=canary.base + "/v1")
        check_error(st, b, 400, "parameter_not_allowed")
        check_eq(b["error"]["param"], "api_base", "the field named")
        check("api_key" in b["error"]["message"], "says the client's key must come along")
        st, _, b = call("keyonly", api_base=canary.base + "/v1", api_key="sk-client-own")
        check_error(st, b, 400, "parameter_not_allowed")
        for bad in ("ftp://example.com/v1", "https://u:p@example.com/v1", "example.com/v1"):
            check_error(*call("byo", api_base=bad, api_key="sk-client-own")[::2], 400,
                        "parameter_not_allowed")
        # Internal addresses however spelled: refused at connect time, never reached.
        port = canary.port
        for base in ("%s/v1" % canary.base, "http://localhost:%d/v1" % port,
                     "http://[::1]:%d/v1" % port, "http://0.0.0.0:%d/v1" % port,
                     "http://127.1:%d/v1" % port, "http://2130706433:%d/v1" % port,
                     "http://[::ffff:127.0.0.1]:%d/v1" % port, "http://169.254.169.254/v1"):
            st, _, b = call("byo", api_base=base, api_key="sk-client-own")
            check_error(st, b, 400, "parameter_not_allowed")
            check("loopback" in b["error"]["message"], "%s: %s" % (base, b["error"]["message"]))
        check_eq(canary.connections, 0, "connections to internal addresses a client named")
        check_eq(env.mock.requests(), [], "nothing went upstream")
        # The client's own key to the configured host.
        st, _, _ = call("keyonly", api_key="sk-client-own")
        check_eq(st, 200, "api_key allowed on keyonly")
        check_eq(auth_seen(env.mock), ["Bearer sk-client-own"], "the client's key, not ours")
        check_eq(call("byo")[0], 200, "the deployment was not cooled down by refusals")
        # The worker's easy handles are reused (reset) after those calls, which asked for a
        # fresh connection never kept: later calls still share one kept-alive connection.
        opened = env.mock.stats()["connections_opened"]
        for i in range(6):
            body = {"model": "byo", "messages": msgs, "stream": bool(i % 2)}
            st, _, raw = stack.http.request("POST", "/v1/chat/completions", body, stack.auth())
            check_eq(st, 200, "call %d after the refusals" % i)
            check(raw.rstrip().endswith(b"[DONE]") == bool(i % 2), "call %d: %r" % (i, raw[-40:]))
        check_eq(env.mock.stats()["connections_opened"] - opened, 0,
                 "connections opened for six calls after the refusals")
        check_eq(auth_seen(env.mock)[-6:], ["Bearer " + UPSTREAM_KEY] * 6,
                 "the deployment's key on each, not a client's from an earlier call")
        if not ext:
            figure("clientside", external_address=None)
            return
        # A public host the client chose, with its own key; a host the operator's pattern
        # names gets the deployment's key.
        env.mock.clear()
        st, _, _ = call("byo", api_base=ext_base + "/v1", api_key="sk-client-own")
        check_eq(st, 200, "a client-chosen public host")
        check_eq(auth_seen(ext), ["Bearer sk-client-own"], "the client's key went there")
        ext.clear()
        check_eq(call("pinned", api_base=ext_base + "/v1")[0], 200, "a host the pattern names")
        check_eq(auth_seen(ext), ["Bearer " + UPSTREAM_KEY], "the deployment's key, as allowed")
        ext.clear()
        for off in (ext_base + "/v1/x", ext_base + ".evil.test/v1", "https://%s:%d/v1"
                    % (ip, ext.port)):
            st, _, b = call("pinned", api_base=off)
            check_error(st, b, 400, "parameter_not_allowed")
        check_eq(ext.requests(), [], "nothing reached a host the pattern does not name")
        check_eq(env.mock.requests(), [], "nor the configured one")
        # A client's host that fails, again and again: its error, no retry, no cooldown.
        dead = "http://%s:%d/v1" % (ip, free_port())
        for _ in range(3):
            st, _, b = call("byo", api_base=dead, api_key="sk-client-own")
            check_error(st, b, 502, "upstream_unreachable")
        check_eq(call("byo")[0], 200, "the deployment still serves everyone else")
        check_eq(len(env.mock.requests()), 1, "one call, to the configured host")
        figure("clientside", external_address=ip)
    finally:
        stack.stop()
        if ext:
            ext.stop()


def test_authorization_variants(ctx):
    """B-8, S-4, S-5: every malformed credential is 401, and no answer tells whether a key
    exists (unknown, deleted, its sha256, one character off the master key)."""
    stack = ctx.stack("input")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}

    def call(headers, path="/v1/chat/completions", method="POST"):
        return stack.http.json(method, path, body if method == "POST" else None, headers)
    for headers, code in (({}, "missing_api_key"),
                          ({"Authorization": ""}, None),
                          ({"Authorization": "Bearer "}, "missing_api_key"),
                          ({"Authorization": "Bearer"}, "invalid_api_key"),
                          ({"Authorization": "Basic " + MASTER_KEY}, "invalid_api_key"),
                          ({"Authorization": "Token " + MASTER_KEY}, "invalid_api_key"),
                          ({"Authorization": MASTER_KEY}, "invalid_api_key"),
                          ({"Authorization": "Bearer %s,%s" % (MASTER_KEY, MASTER_KEY)},
                           "invalid_api_key"),
                          ({"Authorization": "Bearer sk-a sk-b"}, "invalid_api_key"),
                          ({"Authorization": "Bearer ' OR '1'='1"}, "invalid_api_key"),
                          ({"Authorization": "Bearer x' OR (SELECT pg_sleep(8)) IS NOT NULL --"},
                           "invalid_api_key"),
                          ({"Authorization": "Bearer " + "k" * 600}, "invalid_api_key"),
                          ({"x-api-key": ""}, "missing_api_key")):
        t0 = time.monotonic()
        st, _, resp = _nothing_upstream(ctx, lambda h=headers: call(h))
        check_error(st, resp, 401, code, "authentication_error")
        dt = time.monotonic() - t0
        check(dt < 1.0, "%r answered in %.2fs" % (headers, dt))
        check(MASTER_KEY not in json.dumps(resp), "the presented key echoed")
    # Oversize credentials: refused by the HTTP layer.
    st, h, _ = _raw(stack.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                    b"a" * MIB + b"\r\n\r\n")
    check_eq(st, 431, "1 MiB Authorization header")
    # Whether a key exists is never told.
    st, _, made = stack.http.json("POST", "/key/generate", {"key_alias": "rel-live"},
                                  stack.auth())
    check_eq(st, 200, "generate")
    live = made["key"]
    st, _, made = stack.http.json("POST", "/key/generate", {"key_alias": "rel-deleted"},
                                  stack.auth())
    deleted = made["key"]
    check_eq(stack.http.json("POST", "/key/delete", {"keys": [deleted]}, stack.auth())[0], 200,
             "delete")
    check_eq(call({"Authorization": "Bearer " + live})[0], 200, "the live key works")
    answers = {}
    for name, key in (("unknown", "sk-" + os.urandom(11).hex()), ("deleted", deleted),
                      ("digest of a live key", hashlib.sha256(live.encode()).hexdigest()),
                      ("master key one character off", MASTER_KEY[:-1] +
                       ("0" if MASTER_KEY[-1] != "0" else "1"))):
        st, h, raw = stack.http.request("POST", "/v1/chat/completions", body,
                                        {"Authorization": "Bearer " + key})
        check(key.encode() not in raw and key[:12].encode() not in raw, name + " echoed")
        answers[name] = (st, raw)
    check_eq(len(set(answers.values())), 1, "identical refusals: %r" % answers)
    st, raw = answers["unknown"]
    check_error(st, json.loads(raw), 401, "invalid_api_key", "authentication_error")
    # On an admin route a virtual key and an unknown key get the same 403, without a lookup.
    a = stack.http.request("GET", "/key/list", None, {"Authorization": "Bearer " + live})
    b = stack.http.request("GET", "/key/list", None,
                           {"Authorization": "Bearer sk-" + os.urandom(11).hex()})
    check_eq((a[0], a[2]), (b[0], b[2]), "admin route: virtual vs unknown key")
    check_error(a[0], json.loads(a[2]), 403, "admin_only")


def test_paths_and_host_headers_do_not_bypass_auth(ctx):
    """B-11, B-13: no path spelling or forwarding header reaches a protected route without a
    key; nothing is routed by anything but the exact path."""
    stack = ctx.stack("input")
    for path in ("/v1/../key/generate", "/v1/%2e%2e/key/generate", "//key/generate",
                 "/KEY/generate", "/key/generate;x", "/key/generate/", "/key%2Fgenerate",
                 "/health/../key/generate", "/key/generate%00", "/key/generate?/health/liveliness"):
        st, _, body = _raw(stack.port, ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                        "application/json\r\nContent-Length: 2\r\n\r\n{}"
                                        % path).encode())
        check(st in (400, 401, 404), "%s -> %d" % (path, st))
        if st != 400:
            check_error(st, json.loads(body), st)
    for hdr in ("Host: x/#", "Host: x/?", "Host: localhost\r\nX-Original-URL: /health/liveliness",
                "Host: localhost\r\nX-Rewrite-URL: /health/liveliness",
                "Host: localhost\r\nX-Forwarded-Host: localhost\r\nX-Forwarded-For: 127.0.0.1",
                "X-Absent-Host: 1"):
        for path in ("/key/list", "/v1/models", "/spend/logs", "/health"):
            st, _, body = _raw(stack.port, ("GET %s HTTP/1.1\r\n%s\r\n\r\n" % (path, hdr))
                               .encode())
            check(st in (400, 401), "%s with %r -> %d" % (path, hdr, st))
            if st == 401:
                check_error(st, json.loads(body), 401, "missing_api_key")


def _exchange(port, raw, wait=1.5):
    """Send raw bytes; read answers until the server closes or `wait` passes in silence.
    Returns ([(status, headers, body)], closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    buf, closed = b"", False
    try:
        s.sendall(raw)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            buf += d
    finally:
        s.close()
    answers = []
    while buf.startswith(b"HTTP/1."):
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in
                (ln.partition(":") for ln in lines[1:])}
        n = int(hdrs.get("content-length", "0") or 0)
        answers.append((int(lines[0].split()[1]), hdrs, rest[:n]))
        buf = rest[n:]
    return answers, closed


def test_request_smuggling_and_oversize_headers(ctx):
    """B-3 (smuggling corpus: 400 and close, never a second request under the first one's
    auth) and B-4 (oversize headers: 431/414/400, fast)."""
    stack = ctx.stack("input")
    mock = ctx.env.mock
    auth = b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
    body = json.dumps({"model": "up", "messages": [{"role": "user", "content": "x"}]}).encode()
    start = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth + \
        b"Content-Type: application/json\r\n"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    # The pipelined second request has no key: it must be judged on its own (401).
    mock.clear()
    answers, _ = _exchange(stack.port, start + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                           + b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    check_eq([a[0] for a in answers], [200, 401], "pipelined: the second request's own status")
    check_eq(_error_code(answers[1][2]), "missing_api_key", "second request's error")
    check_eq(len(mock.requests()), 1, "upstream calls for two pipelined requests, one with no key")
    # B-4: bounded header sizes, refused at once.
    for name, raw in (("64 KiB header", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " +
                       b"a" * 65536 + b"\r\n\r\n"),
                      ("1000 headers", b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" +
                       b"".join(b"X-H%d: v\r\n" % i for i in range(1000)) + b"\r\n")):
        t0 = time.monotonic()
        answers, closed = _exchange(stack.port, raw)
        check_eq([a[0] for a in answers], [431], name)
        check(closed and time.monotonic() - t0 < 1.0, "%s: refused and closed at once" % name)
    deviations = []
    cases = (
        ("two differing Content-Length", start +
         b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n%s" % (len(body), body)),
        ("Content-Length with Transfer-Encoding", start + b"Content-Length: %d\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(body) + 10, chunked)),
        ("Transfer-Encoding: xchunked", start + b"Transfer-Encoding: xchunked\r\n\r\n" + chunked),
        ("Transfer-Encoding: chunked, identity", start +
         b"Transfer-Encoding: chunked, identity\r\n\r\n" + chunked),
        ("16 KiB URL", b"GET /v1/models?" + b"a" * 16384 + b" HTTP/1.1\r\nHost: x\r\n" + auth +
         b"\r\n"),
    )
    for name, raw in cases:
        mock.clear()
        answers, closed = _exchange(stack.port, raw)
        statuses = [a[0] for a in answers]
        want = (414, 431, 400) if "URL" in name else (400,)
        if len(statuses) != 1 or statuses[0] not in want or not closed:
            deviations.append("%s -> %s%s%s" % (name, statuses or "no answer",
                                                "" if closed else ", connection kept open",
                                                ", sent upstream" if mock.requests() else ""))
    # Gaps of libmicrohttpd 0.9.75's parser, which has no option to refuse them (0.9.77's
    # MHD_OPTION_CLIENT_DISCIPLINE_LVL does): it unfolds obs-fold, accepts bare LF and cuts a
    # header value at a NUL. Each is still read as one request with one length, so nothing
    # is smuggled: one answer, one upstream call, never a second request.
    tolerated = (
        ("obs-fold continuation line", start + b"X-A: 1\r\n  folded\r\nContent-Length: %d\r\n\r\n%s"
         % (len(body), body)),
        ("bare LF line endings", (start + b"Content-Length: %d\r\n\r\n" % len(body))
         .replace(b"\r\n", b"\n") + body),
        ("NUL in a header value", start + b"X-A: a\x00b\r\nContent-Length: %d\r\n\r\n%s"
         % (len(body), body)),
    )
    for name, raw in tolerated:
        mock.clear()
        answers, _ = _exchange(stack.port, raw)
        check(len(answers) == 1 and len(mock.requests()) <= 1,
              "%s: one request read, got answers %s and %d upstream calls"
              % (name, [a[0] for a in answers], len(mock.requests())))
    figure("smuggling", deviations=deviations, tolerated=[n for n, _ in tolerated])
    check(not deviations, "B-3/B-4: not refused with %s and a close: %s"
          % ("400", "; ".join(deviations)))
