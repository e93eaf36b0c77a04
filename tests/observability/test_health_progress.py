"""/health tells a stuck cluster from a busy one, and reports recent restarts."""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from executions.supervision import record_process_restart
from observability import health
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


def heartbeats(monkeypatch, **busy_by_priority):
    """Live clusters of every priority, two workers each, `busy` of them running."""
    clusters = [
        SimpleNamespace(priority=priority, workers=[1, 2], busy=busy_by_priority.get(priority, 0), status="Idle")
        for priority in ("high", "medium", "low")
    ]
    monkeypatch.setattr(health, "live_clusters", lambda: clusters)


@pytest.fixture
def waiting_run(org, examples):
    run = make_execution(org, examples["stats"], status="queued", queued_at=timezone.now() - dt.timedelta(seconds=30))
    run.__class__.objects.filter(pk=run.pk).update(priority="medium")
    return run


def test_a_queue_waiting_while_its_cluster_has_idle_workers_is_unhealthy(monkeypatch, waiting_run):
    heartbeats(monkeypatch)
    response = APIClient().get("/health")
    assert response.status_code == 503
    progress = response.json()["checks"]["progress"]
    assert progress["status"] == "unhealthy" and set(progress["stalled"]) == {"medium"}
    assert "2 worker(s) are idle" in progress["message"]


def test_a_queue_waiting_behind_busy_workers_is_not_a_stall(monkeypatch, waiting_run):
    heartbeats(monkeypatch, medium=2)
    progress = APIClient().get("/health").json()["checks"]["progress"]
    assert progress["status"] == "healthy" and progress["oldestQueuedSeconds"]["medium"] >= 30


def test_long_runs_held_back_while_long_runs_fill_their_share_are_not_a_stall(monkeypatch, settings, waiting_run):
    settings.PRIORITY_WORKERS = {**settings.PRIORITY_WORKERS, "medium": 2}
    heartbeats(monkeypatch, medium=1)  # one long run busy, one worker kept for short runs
    Execution = waiting_run.__class__
    Execution.objects.filter(pk=waiting_run.pk).update(long_running=True)
    running = make_execution(waiting_run.organization, waiting_run.plugin_version, status="running")
    Execution.objects.filter(pk=running.pk).update(priority="medium", long_running=True)
    progress = APIClient().get("/health").json()["checks"]["progress"]
    assert progress["status"] == "healthy" and progress["oldestQueuedSeconds"]["medium"] >= 30

    # The same wait for a short run, with that worker idle, is a stall.
    Execution.objects.filter(pk=waiting_run.pk).update(long_running=False)
    progress = APIClient().get("/health").json()["checks"]["progress"]
    assert progress["status"] == "unhealthy" and set(progress["stalled"]) == {"medium"}


def test_a_priority_no_cluster_serves_is_unhealthy(monkeypatch):
    clusters = [SimpleNamespace(priority="high", workers=[1], busy=0, status="Idle")]
    monkeypatch.setattr(health, "live_clusters", lambda: clusters)
    cluster = APIClient().get("/health").json()["checks"]["cluster"]
    assert cluster["status"] == "unhealthy" and cluster["unservedPriorities"] == ["medium", "low"]


def test_a_recent_restart_makes_health_degraded(monkeypatch):
    heartbeats(monkeypatch)
    assert APIClient().get("/health").json()["checks"]["restarts"]["status"] == "healthy"
    record_process_restart("cluster-medium", supervisor="supervisord", pid=4242, detail="exited unexpectedly")
    restarts = APIClient().get("/health").json()["checks"]["restarts"]
    assert restarts["status"] == "degraded" and restarts["processes"] == ["cluster-medium"]
