"""Cross-node wake-ups, the two ways the issue weighed, side by side: Redis
pub/sub (what executions.queue.wakeups does with REDIS_URL) and PostgreSQL
LISTEN/NOTIFY (not used: measured for the choice). For each, a process of
"another node" (its own wake-up folder) sends N wake-ups 20 ms apart and
this process times each from its sending to its arrival here.

Needs DATABASE_URL (PostgreSQL) and REDIS_URL; private ones:

    deploy/ci/with-private-servers.sh .venv/bin/python bench/wakeups.py
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = 200

REDIS_SENDER = """
import django, sys, time; django.setup()
from executions.queue.wakeups import wake
for _ in range(int(sys.argv[1])):
    time.sleep(0.02); print(time.time(), flush=True); wake("run-bench")
"""

POSTGRES_SENDER = """
import os, sys, time, psycopg
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
    for _ in range(int(sys.argv[1])):
        time.sleep(0.02); print(time.time(), flush=True); connection.execute("SELECT pg_notify('wakeup', 'run-bench')")
"""


def timed(sender, env, arrived):
    """Latencies (ms) of the sender's wake-ups; `arrived(timeout)` is True when one came."""
    process = subprocess.Popen([sys.executable, "-c", sender, str(COUNT)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    latencies = []
    for line in process.stdout:
        sent = float(line)
        if arrived(2.0):
            latencies.append((time.time() - sent) * 1000)
    process.wait()
    return latencies


def report(name, latencies):
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{name:28} {len(latencies):>4}/{COUNT} delivered  p50 {cuts[49]:6.2f} ms  p99 {cuts[98]:6.2f} ms  max {max(latencies):6.2f} ms")


def main():
    if not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("needs REDIS_URL and a PostgreSQL DATABASE_URL (deploy/ci/with-private-servers.sh)")
    os.environ["DJANGO_SETTINGS_MODULE"] = "executor_project.settings"
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    import django

    django.setup()
    import psycopg
    from django.conf import settings

    from executions.queue.wakeups import Waiter

    folders = tempfile.mkdtemp(prefix="wakeups-bench-")
    settings.WAKEUP_DIR = os.path.join(folders, "this-node")
    env = {**os.environ, "WAKEUP_DIR": os.path.join(folders, "other-node")}

    with Waiter("run-bench") as waiter:
        time.sleep(0.5)  # the relay subscribes
        report("Redis pub/sub (in use)", timed(REDIS_SENDER, env, waiter.wait))

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as listener:
        listener.execute("LISTEN wakeup")

        def notified(timeout):
            return next(listener.notifies(timeout=timeout, stop_after=1), None) is not None

        report("PostgreSQL LISTEN/NOTIFY", timed(POSTGRES_SENDER, env, notified))


if __name__ == "__main__":
    main()
