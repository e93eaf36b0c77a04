"""Execution records made directly, at chosen times, for the tests of what
reads them (stats, dashboard); runs through the real cluster are in the
integration tests."""

import datetime as dt

from django.utils import timezone

from executions.models import Execution


def make_execution(organization, plugin_version, *, status="success", queued_at=None, wait=None, run_ms=None,
                   error_type="", cache_hit=False, cache_key="", memory=None, action="slugify"):
    """An execution queued at `queued_at` (default now) that waited `wait` in
    the queue (None: never started) and then ran `run_ms` ms."""
    queued_at = queued_at or timezone.now()
    started_at = queued_at + wait if wait is not None else None
    finished_at = None
    if status in Execution.TERMINAL:
        finished_at = (started_at or queued_at) + dt.timedelta(milliseconds=run_ms or 0)
    execution = Execution.objects.create(
        organization=organization, plugin_version=plugin_version, action=action, params={}, timeout_ms=30000,
        memory_limit_mb=256, status=status, error_type=error_type, cache_hit=cache_hit, cache_key=cache_key,
        started_at=started_at,
        finished_at=finished_at, execution_time_ms=run_ms, peak_memory_bytes=memory,
    )
    # queued_at is auto_now_add: set the chosen time afterwards.
    Execution.objects.filter(pk=execution.pk).update(queued_at=queued_at)
    execution.queued_at = queued_at
    return execution
