"""Shared by reliability.py and soak.py: the integration harness, /proc sampling, figures.

Python standard library only. The daemons, mock, PostgreSQL and Redis come from
tests/integration/harness.py; load generators and fault helpers from
tests/integration/test_reliability.py.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
import test_reliability as tr  # noqa: E402

MIB = 1024 * 1024


def status_field(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def close_wait(pid):
    """TCP sockets of pid in CLOSE-WAIT (the peer closed, the process never did)."""
    inodes = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "08" and cols[9] in inodes:
                        n += 1
        except OSError:
            pass
    return n


def sample(pid):
    return {"rss_kib": status_field(pid, "VmRSS"), "fds": fds(pid),
            "threads": status_field(pid, "Threads"), "close_wait": close_wait(pid)}


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def slope_per_min(points):
    """Least-squares slope of [(seconds, value)] in value units per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return 0.0
    return 60.0 * sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


def pg_pids(pg):
    """The postmaster and its children (backends, background workers)."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        master = int(f.readline())
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == master:
                kids.append(int(stat.split("/")[2]))
        except (OSError, ValueError, IndexError):
            pass
    return master, kids


def signal_pg(pg, sig):
    master, kids = pg_pids(pg)
    order = kids + [master] if sig == signal.SIGSTOP else [master] + kids
    for pid in order:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def machine():
    try:
        kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    except OSError:
        kernel = "?"
    return {"cores": os.cpu_count(), "kernel": kernel,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def save_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
