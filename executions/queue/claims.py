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
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core import sql
from plugins.models import PluginVersion
from quotas.models import Organization

from ..lifecycle import EXECUTION_COLUMNS, lease_until
from ..models import Execution


def worker_id(pid=None):
    """How a running execution names the worker process that holds it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def claim_next(priority, look_first=True):
    """The oldest queued execution of `priority` that may start now, marked
    running on this worker; None when there is none.

    `look_first`: read before taking the database's write lock (SQLite has
    one), so that an idle worker looking every QUEUE_IDLE_POLL_SECONDS never
    takes it to find nothing; a worker that has just finished a run skips it.

    Every run is claimed here: hand-written SQL (core.sql), on the
    execution_queue index."""
    now = timezone.now()
    claimable = "status = 'queued' AND priority = %s AND start_deadline > %s"
    params = [priority, sql.db_value(Execution, "start_deadline", now)]
    if look_first and sql.fetch_one(f"SELECT 1 FROM executions_execution WHERE {claimable} LIMIT 1", params) is None:
        return None
    with transaction.atomic():
        passed_over = {}
        while True:
            row = sql.fetch_one(
                f"SELECT {CANDIDATE_COLUMNS.sql} FROM executions_execution e WHERE {claimable}"
                + "".join(condition for condition, _ in passed_over.values())
                + " ORDER BY queued_at LIMIT 1" + sql.for_update_skip_locked(),
                params + [value for _, value in passed_over.values() if value is not None],
            )
            if row is None:
                return None
            candidate = CANDIDATE_COLUMNS.instance(row)
            rule = pass_over(candidate, priority, passed_over)
            if not rule:
                break
            passed_over.update(rule)
        claimed = sql.execute(
            "UPDATE executions_execution SET status = 'running', started_at = %s, worker = %s, lease_expires_at = %s"
            " WHERE id = %s AND status = 'queued'",
            [
                # A run given back after its worker died keeps its first
                # start: its timeout is the budget of the whole execution.
                sql.db_value(Execution, "started_at", candidate.started_at or now),
                worker_id(),
                sql.db_value(Execution, "lease_expires_at", lease_until(now, candidate.timeout_ms)),
                sql.db_value(Execution, "id", candidate.pk),
            ],
        )
    return for_run(candidate.pk) if claimed else None


CANDIDATE_COLUMNS = sql.Columns(
    Execution, "e", only=("id", "timeout_ms", "started_at", "long_running", "memory_limit_mb"))


def for_run(execution_id):
    """The claimed execution with its plugin version and organization, these
    two from this process's memory when it has them: a plugin version never
    changes once uploaded (a new version is a new row; only which one is
    active changes, and the run is bound to its own), and what a run reads
    of its organization — its id, its owner to notify, its limits for the
    event's quota figures — may be ORGANIZATION_CACHE_SECONDS old."""
    execution = EXECUTION_COLUMNS.get(execution_id)
    execution.plugin_version = _plugin_version(execution.plugin_version_id)
    execution.organization = _organization(execution.organization_id)
    return execution


ORGANIZATION_CACHE_SECONDS = 5
_plugin_versions = {}
_organizations = {}


def _plugin_version(version_id):
    version = _plugin_versions.get(version_id)
    if version is None:
        if len(_plugin_versions) >= 256:
            _plugin_versions.clear()
        version = PluginVersion.objects.select_related("plugin").defer("archive").get(pk=version_id)
        _plugin_versions[version_id] = version
    return version


def _organization(organization_id):
    cached = _organizations.get(organization_id)
    if cached is None or time.monotonic() - cached[0] > ORGANIZATION_CACHE_SECONDS:
        if len(_organizations) >= 256:
            _organizations.clear()
        cached = (time.monotonic(), Organization.objects.select_related("tier").get(pk=organization_id))
        _organizations[organization_id] = cached
    return cached[1]


def pass_over(candidate, priority, passed_over):
    """The condition (SQL, and its parameter or None) that excludes
    `candidate` and runs like it when a rule says it may not start now, by
    the rule's name; {} when it may start."""
    if candidate.long_running and "long" not in passed_over:
        if long_runs_in_progress(priority) >= long_run_workers(priority):
            return {"long": (" AND NOT long_running", None)}
    memory_mb = candidate.memory_limit_mb
    if memory_mb > always_fitting_memory_mb() and "memory" not in passed_over:
        room = settings.SANDBOX_MEMORY_BUDGET_MB - memory_in_use_on_this_node()
        if memory_mb > room:
            return {"memory": (" AND memory_limit_mb <= %s", room)}
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
