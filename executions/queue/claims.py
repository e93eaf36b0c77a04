"""The queue is the executions table itself: a queued execution is taken by
one worker of its priority's cluster, oldest first.

Taking one is a conditional UPDATE (queued -> running) inside a transaction
that first picks the oldest candidate: SQLite's IMMEDIATE transactions let
one writer at a time do both, PostgreSQL's `FOR UPDATE SKIP LOCKED` lets
workers pick different rows at once. Nothing is handed between processes:
a worker killed at any instant holds no lock and no task but the one row it
marked running, which the reaper gives back (executions.reaper).
"""

import os
import socket

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..lifecycle import lease_until
from ..models import Execution


def worker_id(pid=None):
    """How a running execution names the worker process that holds it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def claim_next(priority):
    """The oldest queued execution of `priority` that may still start, now
    marked running on this worker; None when there is none."""
    now = timezone.now()
    # A read first: an idle worker looking every QUEUE_IDLE_POLL_SECONDS must
    # not take the database's write lock (SQLite has one) to find nothing.
    if not Execution.objects.claimable(priority, now).exists():
        return None
    with transaction.atomic():
        candidate = (
            Execution.objects.claimable(priority, now)
            .select_for_update(skip_locked=True)
            .values_list("pk", "timeout_ms")
            .first()
        )
        if candidate is None:
            return None
        execution_id, timeout_ms = candidate
        claimed = Execution.objects.filter(pk=execution_id, status=Execution.Status.QUEUED).update(
            status=Execution.Status.RUNNING,
            # A run given back after its worker died keeps its first start:
            # its timeout is the budget of the whole execution.
            started_at=Coalesce("started_at", Value(now)),
            worker=worker_id(),
            lease_expires_at=lease_until(now, timeout_ms),
        )
    if not claimed:
        return None
    return Execution.objects.with_plugin().get(pk=execution_id)
