"""Deployment files, checked without Docker or a cluster: docker-compose.yml per profile (as
`docker-compose config` resolves it) and deploy/kubernetes/ (every document against its
kind's schema, with the npm package kubernetes-models installed once into build/deploy-node).
Options and variables the files hand to the daemons must be ones the daemons' --help lists.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn, UnixStreamServer

from harness import check, check_eq, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DAEMONS = ("gateway", "router", "worker", "logger")
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY",
                 "OPENROUTER_API_KEY", "CEREBRAS_API_KEY", "VOYAGE_API_KEY")


# --- the daemons' own options ------------------------------------------------------------------

_help_cache = {}


def _help(env, daemon):
    """(options, env names) from `llm-<daemon> --help`."""
    if daemon not in _help_cache:
        r = subprocess.run([os.path.join(env.bindir, "llm-" + daemon), "--help"],
                           capture_output=True, text=True, timeout=10)
        text = r.stdout + r.stderr
        _help_cache[daemon] = (set(re.findall(r"^\s+(--[a-z][a-z-]*)", text, re.M)),
                               set(re.findall(r"\[env ([A-Z_]+)\]", text)))
    return _help_cache[daemon]


def _check_daemon_args(env, where, daemon, argv, names):
    """argv's options and the LP_*/CONFIG/PORT/LITELLM_LOG variables exist in that daemon."""
    opts, envs = _help(env, daemon)
    check_eq(argv[0], "llm-" + daemon, "%s: command" % where)
    for a in argv[1:]:
        if a.startswith("--"):
            check(a.split("=")[0] in opts, "%s: llm-%s has no option %s" % (where, daemon, a))
    for n in names:
        if n.startswith("LP_") or n in ("CONFIG", "PORT", "LITELLM_LOG"):
            check(n in envs, "%s: llm-%s reads no variable %s" % (where, daemon, n))


# --- docker-compose.yml --------------------------------------------------------------------------

def _yaml_to_json(text):
    """Parse YAML with the interpreter docker-compose runs on (it needs PyYAML itself)."""
    exe = shutil.which("docker-compose")
    python = "python3"
    with open(exe, "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    if first.startswith("#!") and "python" in first:
        python = first[2:].strip().split()[0]
    r = subprocess.run([python, "-c", "import json, sys, yaml; "
                        "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                       input=text, capture_output=True, text=True, timeout=30)
    check_eq(r.returncode, 0, "YAML parse (%s)" % r.stderr[-300:])
    return json.loads(r.stdout)


def _compose(env, profiles, extra=None):
    """`docker-compose --profile ... config` with only the given variables (no .env, none of
    the caller's DATABASE_URL and the like); returns (config, enabled service names)."""
    check(shutil.which("docker-compose"),
          "docker-compose is not installed (scripts/deps.sh test installs Debian's)")
    empty = os.path.join(env.root, "empty.env")
    open(empty, "w").close()
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
         "LANG": "C.UTF-8"}
    e.update(extra or {})
    argv = ["docker-compose", "--env-file", empty, "--project-directory", ROOT,
            "-f", os.path.join(ROOT, "docker-compose.yml"), "-p", "llmproxytest"]
    for p in profiles:
        argv += ["--profile", p]
    r = subprocess.run(argv + ["config"], cwd=ROOT, env=e, capture_output=True, text=True,
                       timeout=60)
    check_eq(r.returncode, 0, "docker-compose %s config (%s)" % (
        " ".join("--profile " + p for p in profiles), r.stderr.strip()[-800:]))
    cfg = _yaml_to_json(r.stdout)
    enabled = {n for n, s in cfg["services"].items()
               if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
    return cfg, enabled


def _mounts(svc):
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out[v["target"]] = (v.get("source"), bool(v.get("read_only")))
        else:
            parts = v.split(":")
            out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
    return out


def _check_stack(env, cfg, enabled, profiles):
    """What every profile must satisfy; returns the services."""
    svcs = cfg["services"]
    where = "profile %s" % "+".join(profiles)
    for d in DAEMONS:
        check(d in enabled, "%s: %s is not started" % (where, d))
    for name in enabled:
        s = svcs[name]
        check("container_name" not in s, "%s: %s has a fixed container_name" % (where, name))
        check(s.get("restart"), "%s: %s has no restart policy" % (where, name))
        lim = s.get("deploy", {}).get("resources", {}).get("limits", {})
        check(lim.get("cpus") and lim.get("memory"),
              "%s: %s has no cpu and memory limits" % (where, name))
        if s["restart"] != "no" and name != "config-watcher":
            check(s.get("healthcheck", {}).get("test"), "%s: %s has no healthcheck" % (where, name))
        for dep, how in (s.get("depends_on") or {}).items():
            # `docker-compose up` refuses a dependency whose profile is off; config does not.
            check(dep in enabled, "%s: %s depends on %s, which this profile does not start"
                  % (where, name, dep))
            cond = how.get("condition") if isinstance(how, dict) else None
            check(cond in ("service_started", "service_healthy",
                           "service_completed_successfully"),
                  "%s: %s -> %s has no condition" % (where, name, dep))
            if cond == "service_healthy":
                check(svcs[dep].get("healthcheck"), "%s: %s waits for %s to be healthy, "
                      "which has no healthcheck" % (where, name, dep))
    # --scale worker=N: no fixed name, no host port.
    check(not svcs["worker"].get("ports"), "%s: worker publishes a port" % where)
    ports = svcs["gateway"].get("ports", [])
    check(any(str(p.get("target") if isinstance(p, dict) else p).endswith("4000")
              for p in ports), "%s: gateway does not publish 4000" % where)
    check("/health/readiness" in " ".join(svcs["gateway"]["healthcheck"]["test"]),
          "%s: gateway healthcheck is not its readiness endpoint" % where)
    # Secrets: nothing in the file itself; mounted read-only; files named by *_FILE.
    for d in DAEMONS:
        s = svcs[d]
        e = s.get("environment") or {}
        check(e.get("LITELLM_MASTER_KEY") in (None, ""),
              "%s: %s has a master key in the file" % (where, d))
        check(e.get("LITELLM_MASTER_KEY_FILE", "").startswith("/run/secrets/"),
              "%s: %s has no LITELLM_MASTER_KEY_FILE" % (where, d))
        m = _mounts(s)
        check(m.get("/run/secrets", (None, False))[1] and
              m["/run/secrets"][0].endswith("/.keys"),
              "%s: %s does not mount .keys read-only at /run/secrets" % (where, d))
        check(m.get("/etc/llm-proxy", (None, False))[1] and
              m["/etc/llm-proxy"][0].endswith("/configs"),
              "%s: %s does not mount configs/ read-only" % (where, d))
        check_eq(e.get("CONFIG"), "/etc/llm-proxy/litellm-config.yaml",
                 "%s: %s CONFIG" % (where, d))
        _check_daemon_args(env, "%s: %s" % (where, d), d, s["command"], e)
    wenv = svcs["worker"].get("environment") or {}
    for k in PROVIDER_KEYS:
        check(k in wenv and wenv[k] in (None, ""), "%s: worker %s not passed through" % (where, k))
        check_eq(wenv.get(k + "_FILE"), "", "%s: worker %s_FILE default" % (where, k))
    for d in ("gateway", "router", "logger"):
        check(not set(PROVIDER_KEYS) & set(svcs[d].get("environment") or {}),
              "%s: provider keys reach %s (workers only)" % (where, d))
    # The logger's spool on a named volume.
    lenv = svcs["logger"]["environment"]
    spool_dir = os.path.dirname(lenv.get("LP_SPOOL", ""))
    src = _mounts(svcs["logger"]).get(spool_dir, (None, False))[0]
    check(src in (cfg.get("volumes") or {}), "%s: the logger's spool %r is not on a named "
          "volume" % (where, lenv.get("LP_SPOOL")))
    return svcs


def test_compose_self_hosted_db(env):
    """--profile self-hosted-db: PostgreSQL and Redis with volumes and healthchecks, wired in."""
    cfg, enabled = _compose(env, ["self-hosted-db"])
    svcs = _check_stack(env, cfg, enabled, ["self-hosted-db"])
    check({"postgres", "redis"} <= enabled, "postgres and redis started")
    check("config-watcher" not in enabled and "managed-db-check" not in enabled,
          "no other profile's services")
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        src = _mounts(svcs[name]).get(path, (None, False))[0]
        check(src in (cfg.get("volumes") or {}), "%s data on a named volume" % name)
        check(svcs[name].get("healthcheck", {}).get("test"), "%s healthcheck" % name)
    pg = svcs["postgres"]["environment"]
    for d in ("gateway", "logger"):
        u = urllib.parse.urlsplit(svcs[d]["environment"]["DATABASE_URL"])
        check_eq((u.hostname, u.username, u.password, u.path.lstrip("/")),
                 ("postgres", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]),
                 "%s DATABASE_URL matches the postgres service" % d)
    check_eq(urllib.parse.urlsplit(svcs["gateway"]["environment"]["REDIS_URL"]).hostname, "redis",
             "gateway REDIS_URL host")


def test_compose_managed_db(env):
    """--profile managed-db: DATABASE_URL and REDIS_URL from the environment, no local
    database; the check service refuses to pass without them."""
    db, redis = "postgresql://u:p@db.example.com:5432/litellm", "redis://cache.example.com:6379/0"
    cfg, enabled = _compose(env, ["managed-db"], {"DATABASE_URL": db, "REDIS_URL": redis})
    svcs = _check_stack(env, cfg, enabled, ["managed-db"])
    check(not {"postgres", "redis", "config-watcher"} & enabled, "no local database or watcher")
    for d in ("gateway", "logger"):
        check_eq(svcs[d]["environment"]["DATABASE_URL"], db, "%s DATABASE_URL" % d)
    check_eq(svcs["gateway"]["environment"]["REDIS_URL"], redis, "gateway REDIS_URL")
    # The check service's own command, run here: exit 1 with a message unless both are given.
    check("managed-db-check" in enabled, "managed-db-check runs")
    for extra, want in (({"DATABASE_URL": db, "REDIS_URL": redis}, 0), ({"DATABASE_URL": db}, 1),
                        ({}, 1)):
        cfg2, _ = _compose(env, ["managed-db"], extra)
        s = cfg2["services"]["managed-db-check"]
        argv = [a.replace("$$", "$") for a in s["command"]]
        r = subprocess.run(argv, env=dict(s["environment"]), capture_output=True, text=True,
                           timeout=10)
        check_eq(r.returncode, want, "managed-db-check with %s" % sorted(extra))
        if want:
            check("DATABASE_URL and REDIS_URL" in r.stderr, "says what is missing: %r" % r.stderr)


class _FakeDocker(ThreadingMixIn, UnixStreamServer):
    """The three Docker Engine API calls the config watcher makes, on a unix socket."""
    daemon_threads = True

    def __init__(self, path, project, containers):
        self.project = project
        self.containers = containers  # service -> [container ids]
        self.kills = []
        super().__init__(path, _FakeDockerHandler)

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("local", 0)

    def handle_error(self, request, client_address):
        pass  # a client gone early (curl after a 204) is no failure of the test


class _FakeDockerHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        srv = self.server
        if u.path == "/containers/json":
            labels = json.loads(urllib.parse.parse_qs(u.query)["filters"][0])["label"]
            svc = [lb.split("=", 1)[1] for lb in labels
                   if lb.startswith("com.docker.compose.service=")]
            mine = "com.docker.compose.project=%s" % srv.project in labels
            ids = srv.containers.get(svc[0], []) if svc and mine else []
            self._send(200, [{"Id": i, "ImageID": "sha256:00", "Labels": {}} for i in ids])
        elif u.path.startswith("/containers/") and u.path.endswith("/json"):
            self._send(200, {"Id": "self", "Config": {"Labels": {
                "com.docker.compose.project.working_dir": "/x",
                "com.docker.compose.project": srv.project}}})
        else:
            self._send(404, {"message": "no such path"})

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        m = re.match(r"^/containers/([0-9a-f]+)/kill$", u.path)
        if m:
            self.server.kills.append((m.group(1), urllib.parse.parse_qs(u.query)["signal"][0]))
            self._send(204)
        else:
            self._send(404, {"message": "no such path"})


def test_compose_dev(env):
    """--profile dev (with a database profile): a watcher of configs/ that sends SIGHUP to every
    daemon container; its script run here against a stand-in Docker API."""
    profiles = ["self-hosted-db", "dev"]
    cfg, enabled = _compose(env, profiles)
    svcs = _check_stack(env, cfg, enabled, profiles)
    check("config-watcher" in enabled, "config-watcher runs")
    w = svcs["config-watcher"]
    m = _mounts(w)
    check(m.get("/etc/llm-proxy", (None, False))[0] ==
          _mounts(svcs["gateway"])["/etc/llm-proxy"][0],
          "the watcher sees the configs/ the daemons read")
    check("/var/run/docker.sock" in m, "the watcher reaches the Docker API")
    check_eq(set(w["environment"]["SERVICES"].split()), {"gateway", "router", "worker"},
             "signalled services (the logger has nothing to reload)")
    ctx = w["build"]["context"]
    dockerfile = os.path.join(ctx, w["build"].get("dockerfile", "Dockerfile"))
    check(os.path.isfile(dockerfile), "watcher Dockerfile %s" % dockerfile)
    with open(dockerfile) as f:
        copied = re.findall(r"^COPY\s+(\S+)", f.read(), re.M)
    for c in copied:
        check(os.path.isfile(os.path.join(ctx, c)), "COPY source %s exists" % c)
    script = os.path.join(ROOT, "deploy", "compose", "reload-on-change.sh")
    check_eq(subprocess.run(["bash", "-n", script]).returncode, 0, "watcher script syntax")

    # Run it: a change under the watched directory -> one SIGHUP per container of this
    # project's gateway, router and workers (two here), none to the logger.
    check(shutil.which("inotifywait"), "inotifywait missing (scripts/deps.sh test installs "
          "inotify-tools)")
    d = os.path.join(env.root, "watch")
    os.makedirs(os.path.join(d, "configs"))
    sock = os.path.join(d, "docker.sock")
    ids = {s: [("%s%d" % (s, i)).encode().hex().ljust(64, "0") for i in range(n)]
           for s, n in (("gateway", 1), ("router", 1), ("worker", 2), ("logger", 1))}
    srv = _FakeDocker(sock, "proj", ids)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log = open(os.path.join(d, "watcher.log"), "wb")
    p = subprocess.Popen(["bash", script], stdout=log, stderr=log, start_new_session=True,
                         env=dict(os.environ, DOCKER_SOCK=sock,
                                  WATCH_DIR=os.path.join(d, "configs"),
                                  SERVICES=w["environment"]["SERVICES"]))
    try:
        def logged(what):
            with open(log.name, "rb") as f:
                return what in f.read().decode("utf-8", "replace")
        wait_for(lambda: logged("Watches established"), 10, what="the watcher to start")
        path = os.path.join(d, "configs", "litellm-config.yaml")
        with open(path + ".tmp", "w") as f:
            f.write("model_list: []\n")
        os.replace(path + ".tmp", path)  # as editors save
        want = sorted((i, "HUP") for s, v in ids.items() if s != "logger" for i in v)
        wait_for(lambda: sorted(srv.kills) == want, 10, what="one SIGHUP per daemon container")
        time.sleep(1.5)
        check_eq(sorted(srv.kills), want, "no second round for one save")
        p.send_signal(signal.SIGTERM)
        check_eq(p.wait(10), 0, "the watcher stops on SIGTERM")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its inotifywait, if it outlived it
        except ProcessLookupError:
            pass
        srv.shutdown()
        srv.server_close()
        log.close()


# --- deploy/kubernetes -------------------------------------------------------------------------

def _node_dir():
    """tests/deploy/ installed once into build/deploy-node (npm install when package.json
    changed)."""
    src = os.path.join(ROOT, "tests", "deploy")
    target = os.path.join(ROOT, "build", "deploy-node")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(src, "package.json"), "rb") as f:
        pkg = f.read()
    stamp = os.path.join(target, "node_modules", ".llm-proxy-package.json")
    fresh = os.path.isfile(stamp) and open(stamp, "rb").read() == pkg
    for name in ("package.json", "validate-manifests.mjs"):
        shutil.copyfile(os.path.join(src, name), os.path.join(target, name))
    if not fresh:
        check(shutil.which("npm"), "npm is not installed (scripts/deps.sh test)")
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=target,
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "npm install of kubernetes-models failed: %s" % r.stderr[-500:])
        with open(stamp, "wb") as f:
            f.write(pkg)
    return target


def _containers(doc):
    return doc["spec"]["template"]["spec"]["containers"]


def _env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_kubernetes_manifests(env):
    """deploy/kubernetes/*.yaml: every document valid for its kind (no unknown kind or field),
    and the pieces fit: services, endpoints, probes, limits, non-root, one router."""
    d = _node_dir()
    r = subprocess.run(["node", "validate-manifests.mjs",
                        os.path.join(ROOT, "deploy", "kubernetes")],
                       cwd=d, capture_output=True, text=True, timeout=120)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("validator output (%d): %s %s" % (r.returncode, r.stdout[-300:],
                                                              r.stderr[-800:]))
    check_eq(out["errors"], [], "schema errors")
    check_eq(r.returncode, 0, "validator status")
    docs = {(x["kind"], x["name"]): x for x in out["documents"]}

    deps = {}
    for c in DAEMONS:
        x = docs.get(("Deployment", "llm-" + c))
        check(x, "a Deployment llm-%s" % c)
        deps[c] = x["doc"]
        pod = deps[c]["spec"]["template"]["spec"]
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
              "%s runs as non-root" % c)
        for k in _containers(deps[c]):
            sc = k.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True and
                  sc.get("allowPrivilegeEscalation") is False,
                  "%s: read-only root, no privilege escalation" % c)
            for part in ("requests", "limits"):
                res = k.get("resources", {}).get(part, {})
                check(res.get("cpu") and res.get("memory"), "%s: %s cpu and memory" % (c, part))
            _check_daemon_args(env, "deployment llm-%s" % c, c, k["command"] + k.get("args", []),
                               _env(k))
            e = _env(k)
            check(e.get("LITELLM_MASTER_KEY_FILE") or any(
                v.get("name") == "LITELLM_MASTER_KEY" for v in k.get("env", [])),
                "%s gets the master key" % c)
            cm = [v for v in pod.get("volumes", []) if v.get("configMap")]
            check(cm and cm[0]["configMap"]["name"] == "llm-proxy-config",
                  "%s mounts the config" % c)
            mount = [m["mountPath"] for m in k["volumeMounts"] if m["name"] == cm[0]["name"]]
            check(mount and e.get("CONFIG") == mount[0] + "/litellm-config.yaml",
                  "%s: CONFIG points into the ConfigMap" % c)

    # One router, never two (see router.yaml); its Service carries both ports.
    check_eq(deps["router"]["spec"].get("replicas"), 1, "router replicas")
    check_eq(deps["router"]["spec"].get("strategy", {}).get("type"), "Recreate", "router strategy")

    def service_ports(name):
        s = docs.get(("Service", name))
        check(s, "a Service %s" % name)
        return {p["port"] for p in s["doc"]["spec"]["ports"]}
    check({5555, 5556} <= service_ports("llm-router"), "router Service ports")
    check(5557 in service_ports("llm-logger"), "logger Service port")
    check(4000 in service_ports("llm-gateway"), "gateway Service port")
    # Endpoints the daemons connect to are those Services.
    gw = _env(_containers(deps["gateway"])[0])
    check_eq(gw.get("LP_ROUTER_FRONTEND"), "tcp://llm-router:5555", "gateway -> router")
    check_eq(gw.get("LP_LOGGER"), "tcp://llm-logger:5557", "gateway -> logger")
    check_eq(_env(_containers(deps["worker"])[0]).get("LP_ROUTER_BACKEND"),
             "tcp://llm-router:5556", "worker -> router")

    # Probes on the real health endpoints.
    g = _containers(deps["gateway"])[0]
    check_eq(g["livenessProbe"]["httpGet"]["path"], "/health/liveliness", "gateway liveness")
    check_eq(g["readinessProbe"]["httpGet"]["path"], "/health/readiness", "gateway readiness")

    # Workers scale on CPU.
    hpa = [x["doc"] for x in out["documents"] if x["kind"] == "HorizontalPodAutoscaler"]
    check(hpa and hpa[0]["spec"]["scaleTargetRef"]["name"] == "llm-worker", "an HPA on workers")
    check_eq([m["resource"]["name"] for m in hpa[0]["spec"]["metrics"]], ["cpu"], "HPA metric")
    check("replicas" not in deps["worker"]["spec"], "the HPA alone sets the worker count")

    # The logger's spool on its claim, where LP_SPOOL points.
    lg = _containers(deps["logger"])[0]
    pvc = [v for v in deps["logger"]["spec"]["template"]["spec"]["volumes"]
           if v.get("persistentVolumeClaim")]
    check(pvc and ("PersistentVolumeClaim", pvc[0]["persistentVolumeClaim"]["claimName"]) in docs,
          "logger spool claim")
    spool_mount = [m["mountPath"] for m in lg["volumeMounts"] if m["name"] == pvc[0]["name"]][0]
    check_eq(os.path.dirname(_env(lg)["LP_SPOOL"]), spool_mount, "LP_SPOOL on the claim")

    # The ConfigMap is configs/litellm-config.yaml, unchanged.
    cm = docs.get(("ConfigMap", "llm-proxy-config"))
    with open(os.path.join(ROOT, "configs", "litellm-config.yaml")) as f:
        check(cm and cm["doc"]["data"]["litellm-config.yaml"] == f.read(),
              "deploy/kubernetes/configmap.yaml differs from configs/litellm-config.yaml")
    # Secrets: placeholders only, never in a file kubectl apply -k applies.
    for x in out["documents"]:
        if x["kind"] == "Secret":
            check(x["file"].endswith(".example.yaml"), "Secret %s in %s" % (x["name"], x["file"]))
            for k, v in (x["doc"].get("stringData") or {}).items():
                check("REPLACE" in v or "PASSWORD" in v, "Secret %s %s is a placeholder" % (
                    x["name"], k))
