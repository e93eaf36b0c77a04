"""The reaper: nothing stays queued or running past its deadline unobserved,
and a lost run is run again only when that is safe."""

import datetime as dt
import socket

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from executions import reaper
from executions.models import Execution, ExecutionAttempt
from tests.factories import install_source

pytestmark = pytest.mark.django_db

SOURCE = "def work(params, ctx):\n    return params\n"


@pytest.fixture
def versions(db):
    return {
        "idempotent": install_source("safe", SOURCE, {"work": "work"}),
        "not idempotent": install_source("charge", SOURCE, {"work": {"handler": "work", "idempotent": False}}),
    }


def running(org, version, *, worker, started_ago=1, timeout_ms=30000, retry_count=0, lease_expired=False):
    """A run claimed `started_ago` seconds ago, its lease running from then
    (or already over)."""
    from django.conf import settings

    now = timezone.now()
    claimed = now - dt.timedelta(seconds=started_ago)
    lease = claimed + dt.timedelta(milliseconds=timeout_ms, seconds=settings.EXECUTION_LEASE_GRACE_SECONDS)
    return Execution.objects.create(
        organization=org, plugin_version=version, action="work", params={}, timeout_ms=timeout_ms,
        memory_limit_mb=128, priority="medium", status="running", worker=worker, retry_count=retry_count,
        started_at=now - dt.timedelta(seconds=started_ago), start_deadline=now + dt.timedelta(seconds=60),
        lease_expires_at=now - dt.timedelta(seconds=1) if lease_expired else lease,
    )


def dead_worker():
    return f"{socket.gethostname()}:{2 ** 22 + 7}"  # above pid_max: no such process


def test_a_dead_local_workers_idempotent_run_goes_back_to_the_queue_as_a_retry(org, versions):
    run = running(org, versions["idempotent"], worker=dead_worker())
    assert reaper.reap("medium")["deadWorkers"] == 1
    run.refresh_from_db()
    assert (run.status, run.retry_count, run.worker, run.lease_expires_at) == ("queued", 1, "", None)
    attempt = ExecutionAttempt.objects.get(execution=run)
    assert attempt.error_type == "WORKER_CRASHED" and attempt.number == 1
    event = AuditEvent.objects.get(type="execution_recovered")
    assert event.metadata["outcome"] == "requeued" and event.metadata["executionId"] == str(run.pk)


def test_a_lost_run_that_is_not_idempotent_ends_as_worker_crashed(org, versions):
    run = running(org, versions["not idempotent"], worker=dead_worker())
    reaper.reap("medium")
    run.refresh_from_db()
    assert run.status == "error" and run.error_type == "WORKER_CRASHED" and "gone" in run.error_message
    assert AuditEvent.objects.get(type="execution_recovered").metadata["outcome"] == "crashed"
    assert AuditEvent.objects.filter(type="plugin_action_executed", target_id="charge").exists()


def test_a_lost_run_with_no_budget_left_is_not_run_again(org, versions):
    run = running(org, versions["idempotent"], worker=dead_worker(), started_ago=30, timeout_ms=30000)
    reaper.reap("medium")
    run.refresh_from_db()
    assert run.status == "error" and run.error_type == "WORKER_CRASHED"


def test_a_lost_run_out_of_retries_is_not_run_again(org, versions, settings):
    run = running(org, versions["idempotent"], worker=dead_worker(), retry_count=settings.RETRY_MAX_RETRIES)
    reaper.reap("medium")
    run.refresh_from_db()
    assert run.status == "error" and run.error_type == "WORKER_CRASHED"


def test_a_live_workers_run_is_left_alone(org, versions):
    # This very process claimed it just now: alive, and started before the claim.
    run = running(org, versions["idempotent"], worker=f"{socket.gethostname()}:{__import__('os').getpid()}")
    assert reaper.reap("medium") == {"deadWorkers": 0, "expiredLeases": 0, "expiredUnstarted": 0}
    run.refresh_from_db()
    assert run.status == "running"


def test_a_run_of_another_node_is_given_back_when_its_lease_expires(org, versions):
    run = running(org, versions["idempotent"], worker="another-node:1234", lease_expired=True)
    assert reaper.reap("medium")["expiredLeases"] == 1
    run.refresh_from_db()
    assert run.status == "queued" and run.retry_count == 1


def test_a_queued_run_past_its_start_deadline_ends_as_timeout(org, versions):
    late = Execution.objects.create(
        organization=org, plugin_version=versions["idempotent"], action="work", params={}, timeout_ms=1000,
        memory_limit_mb=128, priority="medium", start_deadline=timezone.now() - dt.timedelta(seconds=1),
    )
    other_priority = Execution.objects.create(
        organization=org, plugin_version=versions["idempotent"], action="work", params={}, timeout_ms=1000,
        memory_limit_mb=128, priority="high", start_deadline=timezone.now() - dt.timedelta(seconds=1),
    )
    assert reaper.reap("medium")["expiredUnstarted"] == 1
    late.refresh_from_db()
    other_priority.refresh_from_db()
    assert late.status == "timeout" and late.error_type == "TIMEOUT" and "queue" in late.error_message
    assert other_priority.status == "queued"  # the high cluster's reaper's to close
