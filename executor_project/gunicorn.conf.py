"""gunicorn settings for the web process (`make run`)."""

import os
import signal

bind = f"{os.environ.get('BIND_ADDRESS', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"
# gevent: a synchronous /execute waits for its run in a greenlet blocked on
# its wake-up socket, so hundreds of waiting callers cost no thread each
# (docs/architecture.md, "The web process").
worker_class = "gevent"
# A WAL checkpoint (writes and an fsync) run by a web process would hold all
# its greenlets: the clusters' processes checkpoint instead (executions.reaper).
os.environ.setdefault("SQLITE_WAL_AUTOCHECKPOINT", "0")
# Each request's greenlet has a database connection of its own: closed when
# the request ends (executor_project/settings.py).
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
# …and goes back to a pool of the process (executor_project.pooled_sqlite3;
# on PostgreSQL, psycopg's pool, which also bounds what a process holds:
# the requests it works on, WEB_ACTIVE_REQUEST_LIMIT, and a few it answers
# beside them).
for name, size in (("SQLITE_CONNECTION_POOL", "32"), ("POSTGRES_CONNECTION_POOL", "40")):
    os.environ[name] = os.environ.get(name) or size
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
timeout = 360
# One line per request on stdout with WEB_ACCESS_LOG=-; off by default, since
# at a hundred requests a second the lines cost ~3 % of the service's CPU
# (per-request figures are in /metrics either way).
accesslog = os.environ.get("WEB_ACCESS_LOG") or None


def post_worker_init(worker):
    from core.load_shedding import start_lag_monitor
    from core.middleware import ShedExcessRequests

    # Refusals under overload are answered before Django (core/middleware.py).
    worker.wsgi = ShedExcessRequests(worker.wsgi)
    start_lag_monitor()

    # SIGTERM (a stop, or a graceful restart) makes a worker finish the
    # requests it holds; from then on it admits no new run (SHUTTING_DOWN).
    def drain_then_exit(signum, frame):
        from core.draining import start_draining

        start_draining()
        worker.handle_exit(signum, frame)

    signal.signal(signal.SIGTERM, drain_then_exit)


# Imported here, once, in the master: child_exit runs in its SIGCHLD
# handler, where a first import of the settings could be interrupted by the
# next worker's exit and found half done. The settings first: they set
# PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when imported.
from executor_project.settings import PROMETHEUS_MULTIPROC_DIR  # noqa: E402, I001
from core.metrics_files import fold_dead_process  # noqa: E402, I001


def child_exit(server, worker):
    # A replaced worker's counts stay in the totals, folded into the
    # master's archive files; its gauges and its own files go.
    fold_dead_process(worker.pid, f"archive-web-{os.getpid()}", PROMETHEUS_MULTIPROC_DIR)
