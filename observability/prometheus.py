"""The /metrics exposition, and the state metrics no worker owns.

Event metrics (counters, histograms) are written where things happen
(`executions.metrics`). State metrics (pool, queue, cache size, host) are
computed from the database, the cluster heartbeats and psutil by the process
that answers the scrape, right before it renders (`refresh_state_gauges`).
"mostrecent" makes the value of the latest scrape win over the values that
other web processes wrote at earlier scrapes.
"""

import hmac

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from executions import cache

from . import stats

CACHE_SIZE = Gauge("cache_size_bytes", "Bytes held by the result cache.", multiprocess_mode="mostrecent")

POOL_SIZE = Gauge(
    "worker_pool_size", "qcluster workers with a live heartbeat: total, active (running a plugin) and idle.",
    ["state"], multiprocess_mode="mostrecent",
)
QUEUE_SIZE = Gauge("worker_pool_queue_size", "Executions admitted and not yet started.", multiprocess_mode="mostrecent")
OLDEST_QUEUED = Gauge(
    "worker_pool_oldest_queued_seconds", "How long the oldest queued run of each priority has waited (0: none queued).",
    ["priority"], multiprocess_mode="mostrecent",
)
SYSTEM_MEMORY = Gauge(
    "system_memory_usage_bytes", "Host memory: total, used and available.", ["type"], multiprocess_mode="mostrecent"
)
SYSTEM_CPU = Gauge("system_cpu_usage_percent", "Host CPU use since the previous scrape.", multiprocess_mode="mostrecent")


def refresh_state_gauges():
    pool = stats.worker_pool()
    for state in ("total", "active", "idle"):
        POOL_SIZE.labels(state).set(pool[state])
    QUEUE_SIZE.set(stats.queue_size())
    oldest = stats.oldest_queued_seconds()
    for priority in settings.PRIORITY_CLUSTERS:
        OLDEST_QUEUED.labels(priority).set(oldest.get(priority, 0.0))
    host = stats.host_resources()
    for kind in ("total", "used", "available"):
        SYSTEM_MEMORY.labels(kind).set(host["memory"][kind])
    SYSTEM_CPU.set(host["cpuPercent"])
    CACHE_SIZE.set(cache.size_bytes())


def render():
    """The exposition text of every process's samples: (body, content type)."""
    refresh_state_gauges()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def token_accepted(authorization):
    """True when the Authorization header presents METRICS_TOKEN. Without a
    token the exposition is open only under DEBUG: its labels name every
    organization's plugins, private ones included."""
    token = settings.METRICS_TOKEN
    if not token:
        return settings.DEBUG
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
