#!/usr/bin/env python3
"""Run the integration tests against one build: run.py <bindir> [name-filter].

Each tests/integration/test_*.py module may define setup(env) -> ctx and teardown(ctx);
its test_* functions receive ctx (or env when there is no setup). One line per test:
"PASS integration/<module>:<test>" or "FAIL ...: reason"; the exit status is 1 on failure.
"""

import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    bindir = os.path.abspath(sys.argv[1])
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    here = os.path.dirname(os.path.abspath(__file__))
    modules = sorted(f[:-3] for f in os.listdir(here)
                     if f.startswith("test_") and f.endswith(".py"))
    failed = 0
    env = harness.Env(bindir)
    try:
        for name in modules:
            mod = importlib.import_module(name)
            tests = [(n, getattr(mod, n)) for n in sorted(dir(mod))
                     if n.startswith("test_") and callable(getattr(mod, n))]
            tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
            tests = [t for t in tests if only in "%s:%s" % (name, t[0])]
            if not tests:
                continue
            ctx = env
            label = "integration/%s" % name
            if hasattr(mod, "setup"):
                try:
                    ctx = mod.setup(env)
                except Exception:
                    failed += 1
                    print("FAIL %s:setup: %s" % (label, traceback.format_exc(limit=4)),
                          flush=True)
                    continue
            for tname, fn in tests:
                t0 = time.monotonic()
                try:
                    fn(ctx)
                    print("PASS %s:%s (%.2fs)" % (label, tname, time.monotonic() - t0), flush=True)
                except Exception:
                    failed += 1
                    print("FAIL %s:%s: %s" % (label, tname, traceback.format_exc(limit=4)),
                          flush=True)
            if hasattr(mod, "teardown"):
                try:
                    mod.teardown(ctx)
                except Exception:
                    failed += 1
                    print("FAIL %s:teardown: %s" % (label, traceback.format_exc(limit=4)),
                          flush=True)
    finally:
        try:
            env.close()
        except Exception:
            failed += 1
            print("FAIL integration/env:close: %s" % traceback.format_exc(limit=2), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
