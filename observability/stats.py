"""Operator figures about the worker pool, the queue and the host, read by
GET /stats, the metrics' state gauges, /health and the admin dashboard
(the result cache and the circuit breakers report their own).

Each figure is one indexed query, a heartbeat read or a psutil call, so they
can be computed on every scrape.
"""

import datetime as dt
import math

import psutil
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.status import Stat

from audit.models import AuditEvent
from executions import breaker, cache
from executions.models import Execution
from executions.queue import claims

QUEUE_WAIT_WINDOW = dt.timedelta(hours=1)
# The latest runs are enough for a percentile; this bounds the query.
QUEUE_WAIT_SAMPLE_LIMIT = 5000
# How many of the latest scaling decisions GET /stats lists.
RECENT_SCALING_LIMIT = 20


def percentile(values, q):
    """The nearest-rank q-th percentile (0 < q <= 100) of `values`, or None."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def live_clusters():
    """The django-q2 clusters whose heartbeat (refreshed every 0.5 s, kept 3 s) is present."""
    return [stat for stat in Stat.get_all() if stat.status != Conf.STOPPED]


def worker_pool(clusters=None):
    """Workers of every live cluster; `active` are the runs in progress, which
    each hold one worker."""
    clusters = live_clusters() if clusters is None else clusters
    total = sum(len(stat.workers) for stat in clusters)
    active = Execution.objects.filter(status=Execution.Status.RUNNING).count()
    busy = min(active, total)
    return {
        "clusters": len(clusters),
        "total": total,
        "active": active,
        "idle": total - busy,
        "utilization": round(busy / total, 3) if total else 0.0,
    }


def pool_by_priority(clusters=None):
    """{priority: its pool now}: `clusters` its live clusters (one per node),
    `size` their workers, `busy` those running a run, and the bounds the
    elastic pool keeps each cluster in (PRIORITY_MIN_WORKERS, PRIORITY_WORKERS)."""
    clusters = live_clusters() if clusters is None else clusters
    pools = {
        priority: {
            "clusters": 0,
            "size": 0,
            "busy": 0,
            "minimum": settings.PRIORITY_MIN_WORKERS[priority],
            "maximum": settings.PRIORITY_WORKERS[priority],
        }
        for priority in settings.PRIORITY_CLUSTERS
    }
    for stat in clusters:
        pool = pools.get(getattr(stat, "priority", None))
        if pool is not None:  # a heartbeat that names no priority is counted in worker_pool() only
            pool["clusters"] += 1
            pool["size"] += len(stat.workers)
            pool["busy"] += getattr(stat, "busy", 0)
    return pools


def scaling_events():
    """The `worker_pool_scaled` events, newest first."""
    return AuditEvent.objects.filter(type=AuditEvent.Type.WORKER_POOL_SCALED).order_by("-timestamp", "-pk")


def scaling_decision(timestamp, priority, metadata):
    """One `worker_pool_scaled` event as /stats and the dashboard show it."""
    metadata = metadata if isinstance(metadata, dict) else {}
    return {
        "timestamp": timestamp,
        "priority": priority,
        "from": metadata.get("from"),
        "to": metadata.get("to"),
        "reason": metadata.get("reason", ""),
    }


def recent_scaling(limit=RECENT_SCALING_LIMIT):
    """The latest `limit` decisions of the clusters' sentinels to grow or
    shrink their pools, newest first (one query)."""
    rows = scaling_events().values_list("timestamp", "target_id", "metadata")[:limit]
    return [scaling_decision(*row) for row in rows]


def queue_size():
    return Execution.objects.filter(status=Execution.Status.QUEUED).count()


def oldest_queued_seconds(now=None, startable_only=False):
    """{priority: how long its oldest queued run has waited}, for each
    priority with a run queued (one indexed query each). `startable_only`:
    leave out the long runs while the priority's long runs hold all the
    workers they may (executions.queue.claims): those wait by rule."""
    now = now or timezone.now()
    ages = {}
    for priority in settings.PRIORITY_CLUSTERS:
        queued = Execution.objects.filter(status=Execution.Status.QUEUED, priority=priority)
        if startable_only and claims.long_runs_in_progress(priority) >= claims.long_run_workers(priority):
            queued = queued.filter(long_running=False)
        oldest = (
            queued
            .order_by("queued_at")
            .values_list("queued_at", flat=True)
            .first()
        )
        if oldest is not None:
            ages[priority] = max(0.0, (now - oldest).total_seconds())
    return ages


def queue_wait_seconds(now=None):
    """p50/p95 of the time runs queued in the last hour, and started, spent
    queued: the newest QUEUE_WAIT_SAMPLE_LIMIT of them, read along the
    queued_at index (ordered by started_at, /stats scanned and sorted the
    whole table: 215 ms at 18,000 runs, holding the web's CPU from the
    requests beside it)."""
    since = (now or timezone.now()) - QUEUE_WAIT_WINDOW
    rows = (
        Execution.objects.filter(queued_at__gte=since, started_at__isnull=False)
        .order_by("-queued_at")
        .values_list("queued_at", "started_at")[:QUEUE_WAIT_SAMPLE_LIMIT]
    )
    waits = [max(0.0, (started - queued).total_seconds()) for queued, started in rows]
    return {
        "p50": _rounded(percentile(waits, 50)),
        "p95": _rounded(percentile(waits, 95)),
        "samples": len(waits),
        "windowSeconds": int(QUEUE_WAIT_WINDOW.total_seconds()),
    }


def completed_tasks():
    return Execution.objects.filter(status__in=Execution.TERMINAL).count()


def host_resources():
    memory = psutil.virtual_memory()
    return {
        "memory": {"total": memory.total, "used": memory.total - memory.available, "available": memory.available},
        # Non-blocking: the load since the previous call in this process.
        "cpuPercent": psutil.cpu_percent(interval=None),
    }


def operator_stats():
    """The body of GET /stats."""
    clusters = live_clusters()
    return {
        "workers": worker_pool(clusters),
        "queue": {"size": queue_size(), "limit": sum(settings.QUEUE_LIMITS.values()), "waitSeconds": queue_wait_seconds()},
        "completedTasks": completed_tasks(),
        "cache": cache.stats(),
        "openCircuitBreakers": breaker.open_breakers(),
        "workersByPriority": pool_by_priority(clusters),
        "recentScaling": recent_scaling(),
    }


def _rounded(value):
    return None if value is None else round(value, 4)
