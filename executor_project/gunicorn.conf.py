"""gunicorn settings for the web process (`make run`)."""

import os

bind = f"{os.environ.get('BIND_ADDRESS', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"
# Synchronous /execute calls wait for their run, so each worker needs threads.
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 360
accesslog = "-"


def child_exit(server, worker):
    # A replaced worker's "live" gauges must not be reported any more; its
    # counters stay, since the requests it served did happen.
    from prometheus_client import multiprocess

    from executor_project.settings import PROMETHEUS_MULTIPROC_DIR

    multiprocess.mark_process_dead(worker.pid, path=PROMETHEUS_MULTIPROC_DIR)
