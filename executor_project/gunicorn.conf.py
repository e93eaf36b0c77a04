"""gunicorn settings for the web process (`make run`)."""

import os

bind = f"{os.environ.get('BIND_ADDRESS', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"
# Synchronous /execute calls wait for their run, so each worker needs threads.
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 360
accesslog = "-"
