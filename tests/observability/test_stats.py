"""GET /stats: operators only; worker pool, queue, completed runs, the pools
by priority and the latest scaling decisions."""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from audit.events import record_event
from audit.models import AuditEvent
from executions import breaker, cache
from observability import stats
from tests.factories import make_execution, make_scaling_event

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
    operator = get_user_model().objects.create_user("operator", password="x", is_staff=True)
    # Staff status alone is not enough (tests/security/test_finding_10_staff_permissions.py).
    operator.user_permissions.add(Permission.objects.get(content_type__app_label="executions", codename="view_execution"))
    client.force_login(operator)
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
        breaker.record_outcome(version.plugin, org, succeeded=False)

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
    # One organization's failures: open for that organization only.
    assert open_breaker["scope"] == "organization" and open_breaker["organizationId"] == org.slug


def test_no_cluster_means_no_workers_and_no_utilization(org, make_client, monkeypatch):
    monkeypatch.setattr(stats, "live_clusters", lambda: [])
    body = make_client(org, staff=True).get("/stats").json()
    assert body["workers"] == {"clusters": 0, "total": 0, "active": 0, "idle": 0, "utilization": 0.0}
    assert body["queue"]["waitSeconds"]["p50"] is None and body["completedTasks"] == 0


def json_time(at):
    return at.isoformat().replace("+00:00", "Z")


def test_stats_report_each_priority_pool_and_the_latest_scaling_decisions(org, make_client, monkeypatch, settings):
    settings.PRIORITY_MIN_WORKERS = {"high": 2, "medium": 1, "low": 1}
    settings.PRIORITY_WORKERS = {"high": 8, "medium": 5, "low": 3}
    # Two nodes' high clusters, one medium cluster, no low one, and a stock heartbeat that names no priority.
    monkeypatch.setattr(stats, "live_clusters", lambda: [
        SimpleNamespace(priority="high", workers=[1, 2, 3, 4], busy=3),
        SimpleNamespace(priority="high", workers=[5, 6], busy=0),
        SimpleNamespace(priority="medium", workers=[7], busy=1),
        SimpleNamespace(workers=[8]),
    ])
    now = timezone.now().replace(microsecond=0)
    # 25 decisions a minute apart, the newest last; and an event of another type that is not one.
    for n in range(25):
        priority = ("high", "medium", "low")[n % 3]
        make_scaling_event(priority, n % 4 + 1, n % 4 + 2, f"{n} runs queued", now - dt.timedelta(minutes=25 - n))
    record_event(AuditEvent.Type.PROCESS_RESTARTED, actor_id="supervisord", target_id="high",
                 metadata={"from": 0, "to": 9})

    body = make_client(org, staff=True).get("/stats").json()
    assert body["workersByPriority"] == {
        "high": {"clusters": 2, "size": 6, "busy": 3, "minimum": 2, "maximum": 8},
        "medium": {"clusters": 1, "size": 1, "busy": 1, "minimum": 1, "maximum": 5},
        "low": {"clusters": 0, "size": 0, "busy": 0, "minimum": 1, "maximum": 3},
    }
    recent = body["recentScaling"]
    assert len(recent) == stats.RECENT_SCALING_LIMIT == 20
    assert recent[0] == {"timestamp": json_time(now - dt.timedelta(minutes=1)), "priority": "high", "from": 1,
                         "to": 2, "reason": "24 runs queued"}
    assert recent[1] == {"timestamp": json_time(now - dt.timedelta(minutes=2)), "priority": "low", "from": 4,
                         "to": 5, "reason": "23 runs queued"}
    assert [decision["reason"] for decision in recent] == [f"{n} runs queued" for n in range(24, 4, -1)]
    # The figures clients already read are all still there, unchanged.
    assert body["workers"] == {"clusters": 4, "total": 8, "active": 0, "idle": 8, "utilization": 0.0}
    assert {"queue", "completedTasks", "cache", "openCircuitBreakers"} <= set(body)


def test_the_latest_scaling_decisions_are_one_query(django_assert_num_queries):
    now = timezone.now()
    for n in range(3):
        make_scaling_event("medium", n, n + 1, "below its minimum", now - dt.timedelta(seconds=10 - n))
    with django_assert_num_queries(1):
        recent = stats.recent_scaling(limit=2)
    assert [(d["from"], d["to"]) for d in recent] == [(2, 3), (1, 2)]


def test_no_scaling_decision_yet(org, make_client, monkeypatch):
    monkeypatch.setattr(stats, "live_clusters", lambda: [])
    body = make_client(org, staff=True).get("/stats").json()
    assert body["recentScaling"] == []
    assert [pool["size"] for pool in body["workersByPriority"].values()] == [0, 0, 0]


def test_percentile_is_nearest_rank():
    assert stats.percentile([], 50) is None
    assert stats.percentile([5], 95) == 5
    assert stats.percentile(range(1, 101), 50) == 50
    assert stats.percentile(range(1, 101), 95) == 95
    assert stats.percentile([3, 1, 2], 100) == 3
