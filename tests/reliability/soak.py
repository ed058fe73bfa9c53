#!/usr/bin/env python3
"""`make soak` (L-2): minutes of load with RSS, fds, threads and CLOSE-WAIT sampled per daemon.

    python3 tests/reliability/soak.py [--build build] [--seconds 60]

Two modes, each as LiteLLM's release gate does it (a warm batch, then a measured batch):
  healthy  70 % chat, 20 % streamed chat, 10 % embeddings against the mock
  failing  chat to a group whose deployment always answers 500 (2 retries, then a fallback
           to a healthy group) -- error paths leak where happy paths do not
Each batch lasts SOAK_SECONDS (default 60, --seconds). After both modes the stack idles
30 s. Pass (catalogue L-2, scaled): per daemon, RSS(end of measured batch) - RSS(end of warm
batch) <= 16 MiB and the least-squares RSS slope over the measured batch <= 0.5 MiB/min, in
both modes; after the idle, fds = baseline +- 2, threads = baseline, CLOSE-WAIT = 0, and
PostgreSQL connections <= 2 (the logger holds one). Samples every 2 s go to
build/reliability/soak.json (docs/RELIABILITY.md quotes the result).
"""

import argparse
import collections
import os
import random
import sys
import threading
import time

import lib
from lib import harness

KEY = "sk-upstream-" + os.urandom(8).hex()


class Mix:
    """Clients on keep-alive connections sending the mode's mix until stopped."""

    def __init__(self, port, mode, threads=4):
        self.port, self.mode = port, mode
        self.counts = collections.Counter()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        http = harness.Http(self.port, timeout=60)
        rnd = random.Random()
        h = {"Authorization": "Bearer " + harness.MASTER_KEY}
        while not self.stop_flag.is_set():
            x = rnd.random()
            msgs = [{"role": "user", "content": "soak %d" % rnd.randrange(1 << 30)}]
            if self.mode == "failing":
                kind, path, body = "chat", "/v1/chat/completions", {"model": "failing",
                                                                     "messages": msgs}
            elif x < 0.7:
                kind, path, body = "chat", "/v1/chat/completions", {"model": "chat",
                                                                     "messages": msgs}
            elif x < 0.9:
                kind, path, body = "stream", "/v1/chat/completions", {"model": "chat",
                                                                       "stream": True,
                                                                       "messages": msgs}
            else:
                kind, path, body = "embed", "/v1/embeddings", {"model": "embed",
                                                               "input": ["a", "b"]}
            try:
                st, _, _ = http.request("POST", path, body, h)
            except OSError:
                st = 0
                http.close()
            self.counts["%s %d" % (kind, st)] += 1
        http.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(70)
        return dict(self.counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 60)))
    args = ap.parse_args()
    batch = args.seconds
    env = harness.Env(os.path.join(lib.ROOT, args.build, "bin"))
    t_all = time.monotonic()
    samples = collections.defaultdict(list)  # daemon -> [(t, rss, fds, threads, close_wait)]
    marks = {}
    counts = {}
    stop_sampling = threading.Event()
    try:
        m = env.mock.base
        models = [
            harness.deployment("chat", "openai/gpt-4o-mini", m + "/v1", api_key=KEY),
            harness.deployment("embed", "openai/text-embedding-3-small", m + "/v1", api_key=KEY,
                               model_info={"mode": "embedding"}),
            harness.deployment("failing", "openai/x", m + "/status/500/v1", api_key=KEY),
        ]
        cfg = harness.config(models, general={"proxy_batch_write_at": 1},
                             router={"num_retries": 2, "fallbacks": [{"failing": ["chat"]}],
                                     "allowed_fails": 1000000})
        stack = harness.Stack(env, cfg, workers=2, db_url=env.pg.url, name="soak")
        procs = {n: p.p.pid for n, p in stack.procs.items()}

        def sampler():
            while not stop_sampling.is_set():
                t = time.monotonic() - t_all
                for n, pid in procs.items():
                    s = lib.sample(pid)
                    samples[n].append((t, s["rss_kib"], s["fds"], s["threads"], s["close_wait"]))
                stop_sampling.wait(2.0)
        th = threading.Thread(target=sampler, daemon=True)
        time.sleep(2)
        base = {n: lib.sample(pid) for n, pid in procs.items()}
        th.start()
        for mode in ("healthy", "failing"):
            for phase in ("warm", "measure"):
                print("soak: %s %s (%ds)" % (mode, phase, batch), flush=True)
                marks["%s_%s_start" % (mode, phase)] = time.monotonic() - t_all
                mix = Mix(stack.port, mode)
                time.sleep(batch)
                counts["%s_%s" % (mode, phase)] = mix.stop()
                marks["%s_%s_end" % (mode, phase)] = time.monotonic() - t_all
        print("soak: idle 30 s", flush=True)
        time.sleep(30)
        stop_sampling.set()
        th.join()
        idle = {n: lib.sample(pid) for n, pid in procs.items()}
        pg_conns = int(env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE "
                                    "backend_type = 'client backend' AND "
                                    "pid <> pg_backend_pid()")[0][0])
        alive = {n: stack.procs[n].alive() for n in procs}
        stack.stop()
    finally:
        stop_sampling.set()
        env.close()

    def rss_at(name, t):
        best = min(samples[name], key=lambda s: abs(s[0] - t))
        return best[1]
    daemons = {}
    ok = pg_conns <= 2 and all(alive.values())
    for n in procs:
        d = {"baseline": base[n], "after_idle": idle[n], "alive": alive[n]}
        for mode in ("healthy", "failing"):
            w_end = marks["%s_warm_end" % mode]
            m0, m1 = marks["%s_measure_start" % mode], marks["%s_measure_end" % mode]
            delta = (rss_at(n, m1) - rss_at(n, w_end)) / 1024.0
            pts = [(s[0], s[1] / 1024.0) for s in samples[n] if m0 <= s[0] <= m1]
            slope = lib.slope_per_min(pts)
            d[mode] = {"rss_phase_delta_mib": round(delta, 2),
                       "rss_slope_mib_per_min": round(slope, 3),
                       "rss_end_mib": round(rss_at(n, m1) / 1024.0, 1)}
            ok = ok and delta <= 16 and slope <= 0.5
        d["fds_delta"] = idle[n]["fds"] - base[n]["fds"]
        d["threads_delta"] = idle[n]["threads"] - base[n]["threads"]
        ok = ok and abs(d["fds_delta"]) <= 2 and d["threads_delta"] == 0 and \
            idle[n]["close_wait"] == 0
        daemons[n] = d
    worst = max(daemons, key=lambda n: max(daemons[n][m]["rss_phase_delta_mib"]
                                           for m in ("healthy", "failing")))
    summary = ("%ds batches; requests %s; worst RSS phase delta %s (%s MiB healthy, %s MiB "
               "failing); fds after idle %s; CLOSE-WAIT %s; PostgreSQL connections %d"
               % (batch, {k: sum(v.values()) for k, v in counts.items()}, worst,
                  daemons[worst]["healthy"]["rss_phase_delta_mib"],
                  daemons[worst]["failing"]["rss_phase_delta_mib"],
                  {n: d["fds_delta"] for n, d in daemons.items()},
                  sum(idle[n]["close_wait"] for n in procs), pg_conns))
    result = {"pass": ok, "summary": summary, "seconds": round(time.monotonic() - t_all),
              "daemons": daemons, "counts": counts, "marks": marks, "pg_connections": pg_conns,
              "samples": {n: s for n, s in samples.items()}, "machine": lib.machine()}
    lib.save_json(os.path.join(lib.ROOT, "build/reliability/soak.json"), result)
    print("%s soak: %s" % ("PASS" if ok else "FAIL", summary))
    for n, d in daemons.items():
        print("  %-8s healthy %+6.2f MiB (%+.3f MiB/min)  failing %+6.2f MiB (%+.3f MiB/min)  "
              "fds %+d threads %+d close-wait %d" % (
                  n, d["healthy"]["rss_phase_delta_mib"], d["healthy"]["rss_slope_mib_per_min"],
                  d["failing"]["rss_phase_delta_mib"], d["failing"]["rss_slope_mib_per_min"],
                  d["fds_delta"], d["threads_delta"], idle[n]["close_wait"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
