"""Execution records made directly, at chosen times, for the tests of what
reads them (stats, dashboard); runs through the real cluster are in the
integration tests."""

import datetime as dt

from django.utils import timezone

from executions.models import Execution


def make_execution(organization, plugin_version, *, status="success", queued_ago=None, wait=None, run_ms=None,
                   error_type="", cache_hit=False, memory=None, action="slugify"):
    """An execution queued `queued_ago` before now that waited `wait` in the
    queue and ran `run_ms` ms (None: not started / not finished)."""
    now = timezone.now()
    queued_at = now - (queued_ago or dt.timedelta(0))
    started_at = queued_at + wait if wait is not None else None
    finished_at = None
    if status in Execution.TERMINAL:
        finished_at = (started_at or queued_at) + dt.timedelta(milliseconds=run_ms or 0)
    execution = Execution.objects.create(
        organization=organization, plugin_version=plugin_version, action=action, params={}, timeout_ms=30000,
        memory_limit_mb=256, status=status, error_type=error_type, cache_hit=cache_hit, started_at=started_at,
        finished_at=finished_at, execution_time_ms=run_ms, peak_memory_bytes=memory,
    )
    # queued_at is auto_now_add: set the chosen time afterwards.
    Execution.objects.filter(pk=execution.pk).update(queued_at=queued_at)
    execution.queued_at = queued_at
    return execution
