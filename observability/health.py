"""What /health checks. Each check is cheap (no run, no scan) so that the
endpoint can be polled every second."""

import datetime as dt
import time

import psutil
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditEvent
from executions.models import Execution
from executions.runner import host_layers, missing_host_layers, required_layers

from . import stats
from .stats import live_clusters

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
RESOURCE_THRESHOLD_PERCENT = 90


def check_database():
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HEALTHY, {"latencyMs": round((time.perf_counter() - started) * 1000, 2)}


def check_cache():
    cache.set("health:probe", 1, 10)
    ok = cache.get("health:probe") == 1
    return (HEALTHY if ok else DEGRADED), {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def check_broker():
    """The run queue: degraded while a priority's queue is at its limit (new
    runs of that priority are refused with QUEUE_FULL)."""
    queued = dict(
        Execution.objects.filter(status=Execution.Status.QUEUED)
        .values_list("priority").annotate(count=Count("pk")).values_list("priority", "count")
    )
    full = [priority for priority, limit in settings.QUEUE_LIMITS.items() if queued.get(priority, 0) >= limit]
    detail = {"queued": sum(queued.values()), "limit": sum(settings.QUEUE_LIMITS.values())}
    if full:
        detail["fullPriorities"] = full
        return DEGRADED, detail
    return HEALTHY, detail


def check_cluster():
    clusters = live_clusters()
    if not clusters:
        return UNHEALTHY, {"clusters": 0, "message": "no qcluster heartbeat in the last 3 s"}
    workers = sum(len(stat.workers) for stat in clusters)
    detail = {"clusters": len(clusters), "workers": workers, "states": sorted({s.status for s in clusters})}
    served = {getattr(stat, "priority", None) for stat in clusters}
    unserved = [priority for priority in settings.PRIORITY_CLUSTERS if priority not in served]
    if unserved:
        detail["unservedPriorities"] = unserved
        detail["message"] = f"no live cluster serves the {', '.join(unserved)} queue(s)"
        return UNHEALTHY, detail
    return HEALTHY, detail


def check_progress():
    """Unhealthy when a queue makes no progress: its oldest run that may
    start has waited longer than HEALTH_STALL_SECONDS although its clusters
    have idle workers (a stuck cluster, not a busy one)."""
    idle = {}
    for stat in live_clusters():
        priority = getattr(stat, "priority", None)
        idle[priority] = idle.get(priority, 0) + len(stat.workers) - getattr(stat, "busy", 0)
    now = timezone.now()
    oldest = stats.oldest_queued_seconds(now)
    suspects = {
        priority for priority, age in oldest.items()
        if age > settings.HEALTH_STALL_SECONDS and idle.get(priority, 0) > 0
    }
    # A suspect is stalled only if a run that may start has waited that long:
    # long runs held back while long runs fill their share wait by rule.
    startable = stats.oldest_queued_seconds(now, startable_only=True) if suspects else {}
    stalled = {
        priority: round(age, 1)
        for priority, age in startable.items()
        if priority in suspects and age > settings.HEALTH_STALL_SECONDS
    }
    detail = {"oldestQueuedSeconds": {priority: round(age, 1) for priority, age in oldest.items()}}
    if stalled:
        detail["stalled"] = stalled
        detail["message"] = "; ".join(
            f"{priority}: a run has waited {age} s while {idle[priority]} worker(s) are idle"
            for priority, age in stalled.items()
        )
        return UNHEALTHY, detail
    return HEALTHY, detail


def check_restarts():
    """Degraded while a process restart (by supervisord or a cluster's
    sentinel) is more recent than HEALTH_RESTART_WINDOW_SECONDS."""
    since = timezone.now() - dt.timedelta(seconds=settings.HEALTH_RESTART_WINDOW_SECONDS)
    recent = list(
        AuditEvent.objects.filter(type=AuditEvent.Type.PROCESS_RESTARTED, timestamp__gte=since)
        .values_list("target_id", flat=True)[:100]
    )
    detail = {"recent": len(recent), "windowSeconds": settings.HEALTH_RESTART_WINDOW_SECONDS}
    if recent:
        detail["processes"] = sorted(set(recent))
        return DEGRADED, detail
    return HEALTHY, detail


def check_sandbox():
    layers = host_layers()
    missing = missing_host_layers()
    detail = {
        "layers": {name: ("active" if ok else f"missing: {why}") for name, (ok, why) in layers.items()},
        "required": required_layers(),
    }
    if missing:
        detail["missing"] = missing
        return UNHEALTHY, detail
    return HEALTHY, detail


def check_memory():
    memory = psutil.virtual_memory()
    return (DEGRADED if memory.percent >= RESOURCE_THRESHOLD_PERCENT else HEALTHY), {"usedPercent": memory.percent}


def check_cpu():
    # Non-blocking: the load since the previous call in this process.
    percent = psutil.cpu_percent(interval=None)
    return (DEGRADED if percent >= RESOURCE_THRESHOLD_PERCENT else HEALTHY), {"usedPercent": percent}


CHECKS = {
    "database": (check_database, UNHEALTHY),
    "cache": (check_cache, DEGRADED),
    "broker": (check_broker, UNHEALTHY),
    "cluster": (check_cluster, UNHEALTHY),
    "progress": (check_progress, UNHEALTHY),
    "restarts": (check_restarts, DEGRADED),
    "sandbox": (check_sandbox, UNHEALTHY),
    "memory": (check_memory, DEGRADED),
    "cpu": (check_cpu, DEGRADED),
}
RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


def run_checks():
    """Returns (overall status, {check: {"status", ...detail}})."""
    results = {}
    for name, (check, severity_on_error) in CHECKS.items():
        try:
            state, detail = check()
        except Exception as error:  # a failing dependency is a finding, not a crash
            state, detail = severity_on_error, {"error": f"{type(error).__name__}: {error}"[:300]}
        results[name] = {"status": state, **detail}
    overall = max((r["status"] for r in results.values()), key=RANK.__getitem__)
    return overall, results
