"""Integration harness: start the real daemons, the mock provider, a throwaway PostgreSQL
and Redis on loopback, and talk to them. Python standard library only.

A test module defines functions named test_*; each takes the shared `env` (an Env) and
raises AssertionError (or any exception) to fail. tests/integration/run.py runs them and
prints one PASS/FAIL line per test.
"""

import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

MASTER_KEY = "sk-test-" + os.urandom(12).hex()
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Segmentation fault", "AddressSanitizer:DEADLYSIGNAL")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A free loopback port for a daemon to bind, below the kernel's ephemeral range: a port
    from bind(0) is an ephemeral one, which any outgoing connection (a client's, libcurl's,
    ZeroMQ's) may take between this check and the daemon's bind."""
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    for _ in range(200 if high - low >= 1000 else 0):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no room below the ephemeral range on this machine
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Proc:
    """A daemon with its output in a log file; stop() fails on a crash or sanitizer report."""

    def __init__(self, name, argv, logdir, env=None, stdout_file=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.out_path = stdout_file or self.log_path
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "ab")
        self.out = open(self.out_path, "ab") if stdout_file else self.log
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.log, env=e,
                                  start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def send(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout_text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop and return the exit status; raise if it crashed or a sanitizer spoke."""
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("%s did not stop within %.0fs" % (self.name, timeout))
        self.log.close()
        if self.out is not self.log:
            self.out.close()
        text = self.text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                raise AssertionError("%s: %s" % (self.name, text[max(0, i - 200):i + 1500]))
        rc = self.p.returncode
        if sig in (signal.SIGTERM, signal.SIGINT) and rc not in (0, -sig):
            raise AssertionError("%s exited with %s; log tail:\n%s" % (self.name, rc, text[-2000:]))
        return rc

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()
        self.log.close()
        if self.out is not self.log:
            self.out.close()


class Http:
    """HTTP/1.1 client with keep-alive; returns (status, headers dict lower-case, body)."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, raw=None):
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                payload = r.read()
                h = {k.lower(): v for k, v in r.getheaders()}
                if h.get("connection", "").lower() == "close":
                    self.close()
                return r.status, h, payload
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, body=None, headers=None, raw=None):
        status, h, payload = self.request(method, path, body, headers, raw)
        try:
            value = json.loads(payload) if payload else None
        except ValueError:
            raise AssertionError("not JSON (%d): %r" % (status, payload[:300]))
        return status, h, value

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sse_events(raw):
    """The data fields of an SSE body, in order (bytes in, list of str out)."""
    out = []
    for block in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].lstrip(" ") if ln.startswith("data:") else None
                for ln in block.split("\n")]
        data = [d for d in data if d is not None]
        if data:
            out.append("\n".join(data))
    return out


def http_raw(port, method, path, body=None, headers=None):
    """A request on a fresh socket; returns the socket after sending (caller reads)."""
    data = json.dumps(body).encode() if body is not None else b""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port,
             "Content-Length: %d" % len(data), "Content-Type: application/json"]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    return s


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Mock:
    """The C mock provider (tests/mock/mock_upstream.c)."""

    def __init__(self, bindir, logdir, host="127.0.0.1", name="mock"):
        """Listening on host (0.0.0.0: every address, `base` on loopback unless `advertise`)."""
        self.proc = Proc(name, [os.path.join(bindir, "mock_upstream"), "--port", "0",
                                "--host", host], logdir,
                         stdout_file=os.path.join(logdir, name + ".out"))
        self.port = int(wait_for(self._port, what="mock port"))
        self.http = Http(self.port)
        self.base = "http://127.0.0.1:%d" % self.port

    def _port(self):
        m = re.search(r"listening on (\d+)", self.proc.stdout_text())
        return m and m.group(1)

    def requests(self):
        return self.http.json("GET", "/_mock/requests")[2]

    def clear(self):
        self.http.request("DELETE", "/_mock/requests")

    def stats(self):
        return self.http.json("GET", "/_mock/stats")[2]

    def stop(self):
        self.http.close()
        return self.proc.stop()


class Postgres:
    """A throwaway PostgreSQL cluster: initdb in a temp dir, random port, trust auth."""

    def __init__(self, root):
        self.dir = os.path.join(root, "pg")
        self.port = free_port()
        bindirs = sorted(d for d in os.listdir("/usr/lib/postgresql") if d.isdigit())
        if not bindirs:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = "/usr/lib/postgresql/%s/bin" % bindirs[-1]
        os.makedirs(self.dir)
        self.as_user = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: use the postgres system user.
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        self._run([self.bin + "/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                   "--no-sync", "-E", "UTF8"])
        self.data = data
        self.start()
        self.url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.port

    def _run(self, argv):
        subprocess.run(self.as_user + argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def query(self, sql):
        """Rows as lists of strings (psql unaligned, tab-separated)."""
        out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url, "-c", sql], check=True, capture_output=True,
                             text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self):
        subprocess.run(self.as_user + [self.bin + "/pg_ctl", "-D", self.data, "-m", "fast",
                                       "-w", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self):
        self._run([self.bin + "/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
                   "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" %
                   (self.port, self.dir), "-w", "start"])


class Redis:
    """A throwaway redis-server on a random loopback port, no persistence."""

    def __init__(self, root):
        self.dir = os.path.join(root, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = None
        self.start()

    def start(self):
        self.proc = Proc("redis", ["redis-server", "--port", str(self.port), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no",
                                   "--dir", self.dir], self.dir)
        wait_for(lambda: self._ping(), 10, what="redis-server to answer")

    def _ping(self):
        try:
            return self.cli("PING") == "PONG"
        except subprocess.CalledProcessError:
            return False

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def keys(self, pattern="*"):
        return [k for k in self.cli("--scan", "--pattern", pattern).splitlines() if k]

    def kill(self):
        self.proc.kill()

    def stop(self):
        if self.proc.alive():
            self.proc.stop()


class Stack:
    """router + workers + logger + gateway on fresh loopback ports with a given config."""

    def __init__(self, env, config, workers=1, db_url=None, extra_env=None, name="stack"):
        self.env = env
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=env.root)
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(config)
        p = [free_port() for _ in range(4)]
        self.port = p[0]
        self.front = "tcp://127.0.0.1:%d" % p[1]
        self.back = "tcp://127.0.0.1:%d" % p[2]
        self.logger_ep = "tcp://127.0.0.1:%d" % p[3]
        self.base_env = {"LITELLM_MASTER_KEY": MASTER_KEY}
        if db_url:
            self.base_env["DATABASE_URL"] = db_url
        else:
            self.base_env["DATABASE_URL"] = ""
        self.base_env.update(extra_env or {})
        self.procs = {}
        self.workers = []
        self.start("router", ["llm-router", "--frontend", self.front, "--backend", self.back])
        self.spool = os.path.join(self.dir, "logger.spool")
        self.start("logger", ["llm-logger", "--bind", self.logger_ep, "--spool", self.spool],
                   stdout=os.path.join(self.dir, "logger.out"))
        for _ in range(workers):
            self.add_worker()
        self.start("gateway", ["llm-gateway", "--port", str(self.port), "--router", self.front,
                               "--logger", self.logger_ep])
        self.http = Http(self.port)
        try:
            self.wait_ready(workers)
        except AssertionError:
            for p in self.procs.values():  # a stack nobody will stop leaves nothing running
                p.kill()
            raise

    def start(self, name, argv, stdout=None):
        argv = [os.path.join(self.env.bindir, argv[0])] + argv[1:] + \
            ["--config", self.config_path]
        proc = Proc(name, argv, self.dir, env=self.base_env, stdout_file=stdout)
        self.procs[name] = proc
        return proc

    def add_gateway(self, name="gateway2"):
        """Another gateway on the same router and logger (shares Redis if the stack does)."""
        port = free_port()
        self.start(name, ["llm-gateway", "--port", str(port), "--router", self.front,
                          "--logger", self.logger_ep])
        wait_for(lambda: self._ready(port), 10, what="second gateway ready")
        return port

    def add_worker(self):
        name = "worker%d" % len(self.workers)
        w = self.start(name, ["llm-worker", "--router", self.back])
        self.workers.append(w)
        return w

    def _ready(self, port, workers=1):
        """Ready, with the logger on its database and the gateway on Redis when the stack
        has them (else the first key call would be a 503 and the first limits would count
        in the process)."""
        st, _, body = Http(port, timeout=2).json("GET", "/health/readiness")
        return (st == 200 and body["workers"] >= workers and body["logger"] == "connected"
                and (not self.base_env.get("DATABASE_URL") or body["db"] == "connected")
                and (not self.base_env.get("REDIS_URL") or body["redis"] == "connected"))

    def wait_ready(self, workers=1, timeout=10):
        try:
            wait_for(lambda: self._ready(self.port, workers), timeout,
                     what="readiness with %d worker(s)" % workers)
        except AssertionError as e:  # say which daemon is missing, and why
            why = ["%s %s; log tail:\n%s" % (n, "running" if p.alive() else
                                              "exited with %s" % p.p.returncode, p.text()[-600:])
                   for n, p in self.procs.items()]
            raise AssertionError("%s\n%s" % (e, "\n".join(why))) from None

    def auth(self, key=MASTER_KEY):
        return {"Authorization": "Bearer " + key}

    def stream(self, model, content="hello", extra=None, headers=None):
        """A streamed chat: (status, headers, [data strings]); JSON errors come back as is."""
        body = {"model": model, "stream": True,
                "messages": [{"role": "user", "content": content}]}
        body.update(extra or {})
        h = self.auth()
        h.update(headers or {})
        st, hdrs, raw = self.http.request("POST", "/v1/chat/completions", body, h)
        if not hdrs.get("content-type", "").startswith("text/event-stream"):
            return st, hdrs, json.loads(raw)
        return st, hdrs, sse_events(raw)

    def chat(self, model, content="hello", extra=None, headers=None):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        body.update(extra or {})
        h = self.auth()
        h.update(headers or {})
        return self.http.json("POST", "/v1/chat/completions", body, h)

    def logger_lines(self):
        with open(os.path.join(self.dir, "logger.out"), "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()

    def logs(self):
        return {n: p.text() for n, p in self.procs.items()}

    def stop(self):
        self.http.close()
        errors = []
        # Gateways first (they flush records), loggers last (they write them); every
        # process a test started is stopped.
        first = [n for n in self.procs if n.startswith("gateway")] + \
            [n for n in self.procs if n.startswith("worker")] + ["router"]
        order = first + [n for n in self.procs if n not in first]
        for name in order:
            proc = self.procs.get(name)
            if not proc:
                continue
            try:
                proc.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))


class Env:
    """What every test shares: build dir, temp root, the mock, PostgreSQL (lazily)."""

    def __init__(self, bindir):
        self.bindir = bindir
        # ASan keeps freed memory in quarantine (up to 256 MB) and adds shadow memory, so
        # RSS says nothing about our own bounds there: memory bounds are checked in the
        # plain build only.
        self.sanitized = "asan" in bindir
        self.root = tempfile.mkdtemp(prefix="llm-proxy-test-")
        os.chmod(self.root, 0o755)
        self.mock = Mock(bindir, self.root)
        self._pg = None
        self._redis = None

    @property
    def redis(self):
        if self._redis is None:
            self._redis = Redis(self.root)
        return self._redis

    @property
    def pg(self):
        if self._pg is None:
            self._pg = Postgres(os.path.join(self.root, "pgroot"))
        return self._pg

    def close(self):
        errors = []
        try:
            self.mock.stop()
        except AssertionError as e:
            errors.append(str(e))
        if self._pg:
            self._pg.stop()
        if self._redis:
            self._redis.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def config(models, general=None, router=None, litellm=None):
    """A litellm-config.yaml text from Python values (JSON is valid YAML)."""
    doc = {"model_list": models,
           "general_settings": dict({"proxy_batch_write_at": 0.1}, **(general or {}))}
    if router:
        doc["router_settings"] = router
    if litellm:
        doc["litellm_settings"] = litellm
    return json.dumps(doc, indent=1)


def deployment(name, model, api_base=None, **params):
    lp = {"model": model}
    if api_base:
        lp["api_base"] = api_base
    info = params.pop("model_info", None)
    lp.update(params)
    d = {"model_name": name, "litellm_params": lp}
    if info:
        d["model_info"] = info
    return d


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def check_eq(a, b, what="value"):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (what, b, a))


def check_error(status, body, want_status, want_code=None, want_type=None):
    """The OpenAI error shape with the expected status (and code/type when given)."""
    check_eq(status, want_status, "status")
    check(isinstance(body, dict) and isinstance(body.get("error"), dict),
          "error body shape: %r" % (body,))
    e = body["error"]
    for k in ("message", "type", "param", "code"):
        check(k in e, "error.%s missing in %r" % (k, e))
    check(isinstance(e["message"], str) and e["message"], "empty error message")
    if want_code is not None:
        check_eq(e["code"], want_code, "error.code")
    if want_type is not None:
        check_eq(e["type"], want_type, "error.type")
    return e
