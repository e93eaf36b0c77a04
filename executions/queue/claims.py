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

from plugins.models import PluginVersion
from quotas.models import Organization

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
        candidates = Execution.objects.claimable(priority, now).select_for_update(skip_locked=True)
        passed_over = {}
        while True:
            candidate = candidates.filter(**passed_over).values(*CANDIDATE_FIELDS).first()
            if candidate is None:
                return None
            rule = pass_over(candidate, priority, passed_over)
            if not rule:
                break
            passed_over.update(rule)
        claimed = Execution.objects.filter(pk=candidate["pk"], status=Execution.Status.QUEUED).update(
            status=Execution.Status.RUNNING,
            # A run given back after its worker died keeps its first start:
            # its timeout is the budget of the whole execution.
            started_at=candidate["started_at"] or now,
            worker=worker_id(),
            lease_expires_at=lease_until(now, candidate["timeout_ms"]),
        )
    return for_run(candidate["pk"]) if claimed else None


CANDIDATE_FIELDS = ("pk", "timeout_ms", "started_at", "long_running", "memory_limit_mb")


def for_run(execution_id):
    """The claimed execution with its plugin version and organization, these
    two from this process's memory when it has them: a plugin version never
    changes once uploaded (a new version is a new row; only which one is
    active changes, and the run is bound to its own), and what a run reads
    of its organization — its id, its owner to notify, its limits for the
    event's quota figures — may be ORGANIZATION_CACHE_SECONDS old."""
    execution = Execution.objects.get(pk=execution_id)
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
    """The filter that excludes `candidate` (and runs like it) when a rule
    says it may not start now; {} when it may."""
    if candidate["long_running"] and "long_running" not in passed_over:
        if long_runs_in_progress(priority) >= long_run_workers(priority):
            return {"long_running": False}
    memory_mb = candidate["memory_limit_mb"]
    if memory_mb > always_fitting_memory_mb() and "memory_limit_mb__lte" not in passed_over:
        room = settings.SANDBOX_MEMORY_BUDGET_MB - memory_in_use_on_this_node()
        if memory_mb > room:
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
