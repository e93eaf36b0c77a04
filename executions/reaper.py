"""Nothing stays queued or running past its deadline unobserved.

Every cluster's sentinel calls `reap(priority)` every REAPER_INTERVAL_SECONDS
(and at once when one of its workers dies), whether or not anyone waits for
the runs it finds:

- a run held by a worker process of this host that no longer exists is
  given back at once (run again if safe, else WORKER_CRASHED);
- a run whose lease expired (its worker died on a node nobody watches) is
  given back the same way;
- a queued run past its start deadline ends as TIMEOUT.

Every change is a conditional UPDATE, so the clusters of several priorities
and nodes can all reap at once.
"""

import datetime as dt
import socket

import psutil
from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import lifecycle
from .models import Execution


def reap(priority):
    """One sweep for `priority`; returns what it did, by kind."""
    checkpoint_wal()
    return {
        "deadWorkers": give_back_runs_of_dead_workers(priority),
        "expiredLeases": lifecycle.reclaim_expired_leases(priority=priority),
        "expiredUnstarted": expire_unstarted_runs(priority),
    }


def give_back_runs_of_dead_workers(priority, dead_pids=None):
    """Runs of `priority` held by worker processes of this host that are gone
    (all of them, or just `dead_pids`)."""
    prefix = f"{socket.gethostname()}:"
    running = Execution.objects.filter(status=Execution.Status.RUNNING, priority=priority, worker__startswith=prefix)
    lost = []
    for pk, worker, timeout_ms, lease_expires_at in running.values_list("pk", "worker", "timeout_ms", "lease_expires_at"):
        pid = int(worker[len(prefix):] or 0)
        claimed_at = lease_expires_at - dt.timedelta(milliseconds=timeout_ms, seconds=settings.EXECUTION_LEASE_GRACE_SECONDS)
        if (pid in dead_pids) if dead_pids is not None else not worker_alive(pid, claimed_at):
            lost.append(pk)
    given_back = 0
    for execution in Execution.objects.filter(pk__in=lost).with_plugin():
        given_back += lifecycle.give_back_lost_run(execution, "its worker process is gone") is not None
    return given_back


def worker_alive(pid, claimed_at):
    """Whether the process that claimed a run at `claimed_at` still runs: a
    process with its pid started after the claim is another one."""
    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, ValueError):
        return False
    return created <= claimed_at.timestamp() + 1


def expire_unstarted_runs(priority):
    late = Execution.objects.filter(status=Execution.Status.QUEUED, priority=priority, start_deadline__lt=timezone.now())
    return sum(lifecycle.expire_unstarted(execution) for execution in late.with_plugin())


def checkpoint_wal():
    """Copy SQLite's write-ahead log into the database, as far as no reader
    needs it (PASSIVE: it never waits). Web processes leave this to the
    clusters (SQLITE_WAL_AUTOCHECKPOINT=0 under gunicorn): a checkpoint's
    writes and fsync would hold a gevent process's every request."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            # Read its answer: a statement left unfinished would hold a read
            # snapshot, and every later read of this connection would see
            # the database as it was then.
            cursor.fetchall()
