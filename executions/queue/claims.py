"""The queue is the executions table itself: a queued execution is taken by
one worker of its priority's cluster, oldest first.

Taking one is a conditional UPDATE (queued -> running) inside a transaction
that first picks the oldest candidate: SQLite's IMMEDIATE transactions let
one writer at a time do both, PostgreSQL's `FOR UPDATE SKIP LOCKED` lets
workers pick different rows at once. Nothing is handed between processes:
a worker killed at any instant holds no lock and no task but the one row it
marked running, which the reaper gives back (executions.reaper).

Two rules can pass over the oldest run for a younger one:
- a long run (its action declares a timeout above LONG_RUN_MS) is not taken
  while long runs hold all but SHORT_RUN_WORKERS of the priority's workers,
  so trivial calls always have a worker;
- a run whose memory limit would take the limits of the runs on this node
  past SANDBOX_MEMORY_BUDGET_MB waits for room, instead of inviting the
  kernel's OOM killer. Limits small enough that every worker of the node
  could run one at once are never checked, which costs nothing.
"""

import os
import socket

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from ..lifecycle import lease_until
from ..models import Execution


def worker_id(pid=None):
    """How a running execution names the worker process that holds it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def claim_next(priority, look_first=True):
    """The oldest queued execution of `priority` that may start now, marked
    running on this worker; None when there is none.

    `look_first`: read before taking the database's write lock (SQLite has
    one), so that an idle worker looking every QUEUE_IDLE_POLL_SECONDS never
    takes it to find nothing; a worker that has just finished a run skips it."""
    now = timezone.now()
    if look_first and not Execution.objects.claimable(priority, now).exists():
        return None
    with transaction.atomic():
        # Only the execution's row is locked (PostgreSQL), not the joined ones.
        candidates = Execution.objects.claimable(priority, now).with_plugin().select_for_update(
            skip_locked=True, of=("self",)
        )
        passed_over = {}
        while True:
            execution = candidates.filter(**passed_over).first()
            if execution is None:
                return None
            rule = pass_over(execution, priority, passed_over)
            if not rule:
                break
            passed_over.update(rule)
        execution.status = Execution.Status.RUNNING
        # A run given back after its worker died keeps its first start: its
        # timeout is the budget of the whole execution.
        execution.started_at = execution.started_at or now
        execution.worker = worker_id()
        execution.lease_expires_at = lease_until(now, execution.timeout_ms)
        claimed = Execution.objects.filter(pk=execution.pk, status=Execution.Status.QUEUED).update(
            status=execution.status, started_at=execution.started_at, worker=execution.worker,
            lease_expires_at=execution.lease_expires_at,
        )
    return execution if claimed else None


def pass_over(execution, priority, passed_over):
    """The filter that excludes `execution` (and runs like it) when a rule
    says it may not start now; {} when it may."""
    if execution.long_running and "long_running" not in passed_over:
        if long_runs_in_progress(priority) >= long_run_workers(priority):
            return {"long_running": False}
    if execution.memory_limit_mb > always_fitting_memory_mb() and "memory_limit_mb__lte" not in passed_over:
        room = settings.SANDBOX_MEMORY_BUDGET_MB - memory_in_use_on_this_node()
        if execution.memory_limit_mb > room:
            return {"memory_limit_mb__lte": room}
    return {}


def long_run_workers(priority):
    """How many of a priority's workers long runs may hold at once."""
    return max(1, settings.PRIORITY_WORKERS[priority] - settings.SHORT_RUN_WORKERS)


def long_runs_in_progress(priority):
    return Execution.objects.filter(status=Execution.Status.RUNNING, priority=priority, long_running=True).count()


def always_fitting_memory_mb():
    """A memory limit at most this fits whatever else runs on the node: every
    worker of every priority could run one at once within the budget."""
    return settings.SANDBOX_MEMORY_BUDGET_MB // max(1, sum(settings.PRIORITY_WORKERS.values()))


def memory_in_use_on_this_node():
    """The memory limits of the runs this node's workers hold."""
    running_here = Execution.objects.filter(
        status=Execution.Status.RUNNING, worker__startswith=f"{socket.gethostname()}:"
    )
    return running_here.aggregate(total=Sum("memory_limit_mb"))["total"] or 0
