"""The state changes of an execution, each one atomic with its audit event.

queued -> running (executions.queue.claims) -> success | error | timeout;
queued -> timeout when the run could not start before its deadline; and when
the worker that held a run died, running -> queued again (a safe re-run) or
running -> error (WORKER_CRASHED). Every transition is a conditional UPDATE
on the current status, so two processes can never both move the same
execution.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from core import sql
from quotas.enforcement import usage_today

from . import callbacks, metrics, recovery
from .models import Execution, ExecutionAttempt
from .queue.wakeups import wake

# Every run inserts its execution and its attempt, and reads the execution
# whole (its claim, its waiting caller): hand-written SQL (core.sql).
insert_execution = sql.Insert(Execution)
EXECUTION_COLUMNS = sql.Columns(Execution, "e")
_insert_attempt = sql.Insert(ExecutionAttempt)

WORKER_LOST_MESSAGE = "the worker running this execution stopped before it finished"


def lease_until(now, timeout_ms):
    """When a run started at `now` is presumed to have lost its worker."""
    return now + dt.timedelta(milliseconds=timeout_ms, seconds=settings.EXECUTION_LEASE_GRACE_SECONDS)


def finish_execution(
    execution,
    *,
    status,
    result=None,
    error_type="",
    error_message="",
    error_traceback="",
    error_details=None,
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
        error_details=error_details,
        logs=list(logs),
        logs_truncated=logs_truncated,
        finished_at=now,
        execution_time_ms=execution_time_ms,
        peak_memory_bytes=peak_memory_bytes,
        cpu_time_ms=cpu_time_ms,
        sealed_secrets="",
    )
    # No savepoint inside a caller's transaction: nothing here is caught.
    with transaction.atomic(savepoint=False):
        changed = sql.update(
            Execution, fields, f"id = %s AND status IN ({', '.join(['%s'] * len(from_statuses))})",
            [sql.db_value(Execution, "id", execution.pk), *from_statuses],
        )
        if not changed:
            return False
        for name, value in fields.items():
            setattr(execution, name, value)
        record_execution_event(execution)
        callbacks.schedule_delivery(execution)
        # Counted once the end is committed, so a rolled-back end is never counted.
        transaction.on_commit(lambda: metrics.observe_execution(execution))
        transaction.on_commit(lambda: wake(execution_topic(execution.pk)))
    return True


def execution_topic(execution_id):
    """What a caller waiting for this execution to end is woken through."""
    return f"run-{execution_id}"


def queue_topic(priority):
    """What the workers of a priority are woken through when a run is queued."""
    return f"queue-{priority}"


def record_answered_execution(quota, **fields):
    """Record an execution answered without a run (a cache hit, or a fallback
    while the plugin's breaker is open): created already ended, with its
    event, in the caller's transaction."""
    now = timezone.now()
    execution = insert_execution(Execution(started_at=now, finished_at=now, **fields))
    record_execution_event(execution, quota)
    callbacks.schedule_delivery(execution)
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
    _insert_attempt(ExecutionAttempt(
        execution=execution,
        number=number,
        status=outcome.status,
        error_type=outcome.error_type,
        error_message=outcome.message[:2000],
        execution_time_ms=round(outcome.wall_ms),
        started_at=started_at,
        finished_at=timezone.now(),
    ))


def renew_lease(execution, retries):
    """A retry is a new run: give it a full lease of its own."""
    Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
        lease_expires_at=lease_until(timezone.now(), execution.timeout_ms), retry_count=retries
    )


def give_back_lost_run(execution, reason):
    """The worker holding `execution` died. Run it again when that is safe
    (an idempotent action, retries and time left in its budget: counted as a
    retry, with the lost attempt recorded), else close it as WORKER_CRASHED.
    Returns "requeued", "crashed", or None if it was no longer running."""
    action = execution.plugin_version.manifest["actions"][execution.action]
    now = timezone.now()
    spent_ms = (now - (execution.started_at or now)).total_seconds() * 1000
    left_ms = execution.timeout_ms - spent_ms
    message = f"{WORKER_LOST_MESSAGE} ({reason})"
    if recovery.should_retry("WORKER_CRASHED", action, execution.retry_count) and left_ms >= recovery.MIN_ATTEMPT_MS:
        with transaction.atomic():
            requeued = Execution.objects.filter(
                pk=execution.pk, status=Execution.Status.RUNNING, worker=execution.worker
            ).update(
                status=Execution.Status.QUEUED, worker="", lease_expires_at=None, retry_count=F("retry_count") + 1,
                # It may start as long as its budget lasts.
                start_deadline=now + dt.timedelta(milliseconds=left_ms),
            )
            if requeued:
                # The attempt in flight is recorded as lost, unless the worker
                # recorded it itself and died after (recording the run's end):
                # the next attempt must not take its number.
                ExecutionAttempt.objects.get_or_create(
                    execution=execution, number=execution.retry_count + 1,
                    defaults=dict(status=Execution.Status.ERROR, error_type="WORKER_CRASHED", error_message=message,
                                  started_at=execution.started_at or now, finished_at=now),
                )
                record_lost_run(execution, reason, "requeued")
                transaction.on_commit(lambda: wake(queue_topic(execution.priority)))
        return "requeued" if requeued else None
    with transaction.atomic():
        closed = finish_execution(
            execution,
            status=Execution.Status.ERROR,
            error_type="WORKER_CRASHED",
            error_message=message,
            retry_count=execution.retry_count,
            from_statuses=(Execution.Status.RUNNING,),
        )
        if closed:
            record_lost_run(execution, reason, "crashed")
    return "crashed" if closed else None


def record_lost_run(execution, reason, outcome):
    record_event(
        AuditEvent.Type.EXECUTION_RECOVERED,
        organization=execution.organization,
        actor_id="reaper",
        target_id=str(execution.pk),
        metadata={"executionId": str(execution.pk), "worker": execution.worker, "reason": reason, "outcome": outcome,
                  "retryCount": execution.retry_count},
    )
    transaction.on_commit(lambda: metrics.LOST_RUNS.labels(outcome).inc())


def reclaim_expired_leases(organization=None, priority=None):
    """Give back or close runs whose worker died elsewhere: still running past their lease.

    This is what frees the concurrent slot such a run holds when no cluster
    of its node is left to notice the death at once.
    """
    expired = Execution.objects.filter(status=Execution.Status.RUNNING, lease_expires_at__lt=timezone.now())
    if organization is not None:
        expired = expired.filter(organization=organization)
    if priority is not None:
        expired = expired.filter(priority=priority)
    if not expired.exists():
        return 0  # the common case, answered by the index alone
    return sum(give_back_lost_run(execution, "its lease expired") is not None for execution in expired.with_plugin())


def expire_unstarted(execution):
    """Close a run that could not start before its start deadline."""
    waited = (timezone.now() - execution.queued_at).total_seconds()
    return finish_execution(
        execution,
        status=Execution.Status.TIMEOUT,
        error_type="TIMEOUT",
        error_message=f"the execution waited {waited:.0f} s in the queue without starting",
        from_statuses=(Execution.Status.QUEUED,),
    )
