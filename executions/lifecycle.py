"""The state changes of an execution, each one atomic with its audit event.

queued -> running -> success | error | timeout, or queued -> timeout when the
run waited too long, or running -> error(WORKER_CRASHED) when the worker that
held it died. Every transition is a conditional UPDATE on the current status,
so two processes can never both move the same execution.
"""

import datetime as dt
import os
import socket

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from quotas.enforcement import usage_today

from . import metrics
from .models import Execution, ExecutionAttempt
from .queue.wakeups import wake

WORKER_LOST_MESSAGE = "the worker running this execution stopped before it finished"


def lease_until(now, timeout_ms):
    """When a run started at `now` is presumed to have lost its worker."""
    return now + dt.timedelta(milliseconds=timeout_ms, seconds=settings.EXECUTION_LEASE_GRACE_SECONDS)


def start_execution(execution_id):
    """Claim a queued execution for this worker; None if it is not ours to run.

    A task delivered again for a run still marked running means the worker
    that had it died (django-q2 redelivers only then): that run is closed as
    WORKER_CRASHED instead of being run twice.
    """
    now = timezone.now()
    timeout_ms = Execution.objects.filter(pk=execution_id).values_list("timeout_ms", flat=True).first()
    if timeout_ms is None:
        return None
    if Execution.objects.filter(pk=execution_id, status=Execution.Status.QUEUED).update(
        status=Execution.Status.RUNNING, started_at=now, worker=f"{socket.gethostname()}:{os.getpid()}",
        lease_expires_at=lease_until(now, timeout_ms),
    ):
        return Execution.objects.with_plugin().get(pk=execution_id)
    orphan = Execution.objects.filter(pk=execution_id, status=Execution.Status.RUNNING).first()
    if orphan is not None:
        finish_execution(orphan, status=Execution.Status.ERROR, error_type="WORKER_CRASHED", error_message=WORKER_LOST_MESSAGE)
    return None


def finish_execution(
    execution,
    *,
    status,
    result=None,
    error_type="",
    error_message="",
    error_traceback="",
    logs=(),
    logs_truncated=False,
    execution_time_ms=None,
    peak_memory_bytes=None,
    cpu_time_ms=None,
    retry_count=0,
    fallback="",
    from_statuses=(Execution.Status.QUEUED, Execution.Status.RUNNING),
):
    """Record how a run ended, once; returns False if it had already ended."""
    now = timezone.now()
    fields = dict(
        retry_count=retry_count,
        fallback=fallback,
        status=status,
        result=result,
        error_type=error_type,
        error_message=error_message,
        error_traceback=error_traceback,
        logs=list(logs),
        logs_truncated=logs_truncated,
        finished_at=now,
        execution_time_ms=execution_time_ms,
        peak_memory_bytes=peak_memory_bytes,
        cpu_time_ms=cpu_time_ms,
    )
    with transaction.atomic():
        changed = Execution.objects.filter(
            pk=execution.pk, status__in=from_statuses
        ).update(**fields)
        if not changed:
            return False
        for name, value in fields.items():
            setattr(execution, name, value)
        record_execution_event(execution)
        # Counted once the end is committed, so a rolled-back end is never counted.
        transaction.on_commit(lambda: metrics.observe_execution(execution))
        transaction.on_commit(lambda: wake(execution_topic(execution.pk)))
    return True


def execution_topic(execution_id):
    """What a caller waiting for this execution to end is woken through."""
    return f"run-{execution_id}"


def record_answered_execution(quota, **fields):
    """Record an execution answered without a run (a cache hit, or a fallback
    while the plugin's breaker is open): created already ended, with its
    event, in the caller's transaction."""
    now = timezone.now()
    execution = Execution.objects.create(started_at=now, finished_at=now, **fields)
    record_execution_event(execution, quota)
    transaction.on_commit(lambda: metrics.observe_execution(execution))
    return execution


def record_execution_event(execution, quota=None):
    quota = quota or usage_today(execution.organization)
    record_event(
        AuditEvent.Type.PLUGIN_ACTION_EXECUTED,
        organization=execution.organization,
        actor_id=execution.actor_id,
        target_id=execution.plugin_version.plugin.slug,
        metadata={
            "executionId": str(execution.id),
            "pluginId": execution.plugin_version.plugin.slug,
            "version": execution.plugin_version.version,
            "actionName": execution.action,
            "status": execution.status,
            "errorType": execution.error_type or None,
            "executionTime": execution.execution_time_ms,
            "memoryUsed": execution.peak_memory_bytes,
            "retryCount": execution.retry_count,
            "cacheHit": execution.cache_hit,
            "fallback": execution.fallback or None,
            "quotaUsed": quota.used,
            "quotaRemaining": quota.remaining,
        },
    )


def record_attempt(execution, number, outcome, started_at):
    """One run in the sandbox; the execution keeps every attempt."""
    ExecutionAttempt.objects.create(
        execution=execution,
        number=number,
        status=outcome.status,
        error_type=outcome.error_type,
        error_message=outcome.message[:2000],
        execution_time_ms=round(outcome.wall_ms),
        started_at=started_at,
        finished_at=timezone.now(),
    )


def renew_lease(execution, retries):
    """A retry is a new run: give it a full lease of its own."""
    Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
        lease_expires_at=lease_until(timezone.now(), execution.timeout_ms), retry_count=retries
    )


def reclaim_expired_leases(organization=None):
    """Close runs whose worker died: still `running` past their lease.

    This is what frees the concurrent slot such a run holds; the queue would
    only redeliver its task minutes later.
    """
    expired = Execution.objects.filter(status=Execution.Status.RUNNING, lease_expires_at__lt=timezone.now())
    if organization is not None:
        expired = expired.filter(organization=organization)
    if not expired.exists():
        return 0  # the common case, answered by the index alone
    reclaimed = 0
    for execution in expired.with_plugin():
        reclaimed += finish_execution(
            execution,
            status=Execution.Status.ERROR,
            error_type="WORKER_CRASHED",
            error_message=f"{WORKER_LOST_MESSAGE} (its lease expired)",
            from_statuses=(Execution.Status.RUNNING,),
        )
    return reclaimed


def expire_queued_execution(execution, waited_seconds):
    """Close a run that never left the queue within its caller's patience."""
    return finish_execution(
        execution,
        status=Execution.Status.TIMEOUT,
        error_type="TIMEOUT",
        error_message=f"the execution waited {waited_seconds:.0f} s in the queue without starting",
        from_statuses=(Execution.Status.QUEUED,),
    )
