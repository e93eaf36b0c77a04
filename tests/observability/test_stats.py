"""GET /stats: operators only; worker pool, queue and completed runs."""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from executions import breaker, cache
from observability import stats
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_clusters(monkeypatch):
    """Heartbeats of two clusters with 3 and 2 workers."""
    clusters = [SimpleNamespace(workers=[11, 12, 13]), SimpleNamespace(workers=[21, 22])]
    monkeypatch.setattr(stats, "live_clusters", lambda: clusters)


def test_stats_are_for_operators_only(org, make_client):
    unauthenticated = APIClient().get("/stats")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "AUTHENTICATION_FAILED"
    refused = make_client(org).get("/stats")
    assert refused.status_code == 403
    assert refused.json() == {
        "success": False,
        "error": {"type": "PERMISSION_DENIED", "retryable": False,
                  "message": "this endpoint is for operators: use a staff API key or a staff admin session"},
    }
    assert make_client(org, staff=True).get("/stats").status_code == 200


def test_a_staff_admin_session_reads_stats(db):
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("operator", password="x", is_staff=True))
    assert client.get("/stats").status_code == 200
    client.force_login(get_user_model().objects.create_user("visitor", password="x"))
    assert client.get("/stats").json()["error"]["type"] == "PERMISSION_DENIED"


def test_stats_figures(org, make_client, examples, two_clusters, settings):
    settings.QUEUE_LIMITS = {"high": 20, "medium": 10, "low": 10}
    version = examples["text-tools"]
    minute, now = dt.timedelta(minutes=1), timezone.now()
    # Twenty runs started in the last hour after waiting 1..20 s, one of them still running.
    for seconds in range(1, 21):
        make_execution(org, version, status="running" if seconds == 20 else "success", queued_at=now - 30 * minute,
                       wait=dt.timedelta(seconds=seconds), run_ms=100)
    # Started two hours ago: outside the queue-wait window, but completed.
    make_execution(org, version, status="error", error_type="PLUGIN_ERROR", queued_at=now - 120 * minute,
                   wait=dt.timedelta(seconds=500), run_ms=10)
    for _ in range(3):
        make_execution(org, version, status="queued")
    # The result cache: one stored result; one run answered from it, one that ran.
    cached_run = make_execution(org, version, queued_at=now - minute, wait=dt.timedelta(0), cache_key="k1")
    cache.store("k1", cached_run, {"slug": "a-b"})
    make_execution(org, version, queued_at=now, wait=dt.timedelta(0), cache_key="k1", cache_hit=True)
    # A plugin failing often enough to open its breaker.
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        breaker.record_outcome(version.plugin, succeeded=False)

    body = make_client(org, staff=True).get("/stats").json()
    assert body["workers"] == {"clusters": 2, "total": 5, "active": 1, "idle": 4, "utilization": 0.2}
    assert body["queue"]["size"] == 3 and body["queue"]["limit"] == 40
    assert body["queue"]["waitSeconds"] == {"p50": 9.0, "p95": 19.0, "samples": 22, "windowSeconds": 3600}
    assert body["completedTasks"] == 22
    assert body["cache"] | {"sizeBytes": None} == {
        "keys": 1, "entries": 1, "sizeBytes": None, "hits": 1, "misses": 1, "hitRate": 0.5,
        "maxEntries": settings.CACHE_MAX_ENTRIES, "ttlMs": settings.CACHE_TTL_MS, "enabled": True,
    }
    assert body["cache"]["sizeBytes"] > 0
    [open_breaker] = body["openCircuitBreakers"]
    assert open_breaker["pluginId"] == "text-tools" and open_breaker["state"] == "open"


def test_no_cluster_means_no_workers_and_no_utilization(org, make_client, monkeypatch):
    monkeypatch.setattr(stats, "live_clusters", lambda: [])
    body = make_client(org, staff=True).get("/stats").json()
    assert body["workers"] == {"clusters": 0, "total": 0, "active": 0, "idle": 0, "utilization": 0.0}
    assert body["queue"]["waitSeconds"]["p50"] is None and body["completedTasks"] == 0


def test_percentile_is_nearest_rank():
    assert stats.percentile([], 50) is None
    assert stats.percentile([5], 95) == 5
    assert stats.percentile(range(1, 101), 50) == 50
    assert stats.percentile(range(1, 101), 95) == 95
    assert stats.percentile([3, 1, 2], 100) == 3
