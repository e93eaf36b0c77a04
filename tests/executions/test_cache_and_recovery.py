"""Result cache, retries, circuit breakers, fallbacks and idempotency, through
the real API, cluster and sandbox."""

import datetime as dt
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from executions import cache
from executions.models import CachedResult, CircuitBreaker, Execution, ExecutionAttempt
from tests.factories import install_source, wait_for

ECHO = """
def echo(params, ctx):
    return {"echo": params, "big": "x" * params.get("pad", 0)}
"""

FLAKY = """
import os, signal

def maybe(params, ctx):
    if params.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}

def crash_until(params, ctx):
    # Dies (WORKER_CRASHED, a transient failure) until the given attempt.
    if ctx.attempt < params["succeed_on"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempt": ctx.attempt}
"""


def echo_plugin(version="1.0.0", **action_extra):
    return install_source(
        "echo", ECHO, {"echo": {"handler": "echo", "params": {"type": "object"}, "cacheable": True, **action_extra}},
        version=version,
    )


def flaky_plugin(**extra):
    actions = {
        "maybe": {"handler": "maybe", "params": {"type": "object"}, **extra},
        "crashUntil": {"handler": "crash_until", "params": {"type": "object"}, **extra},
    }
    return install_source("flaky", FLAKY, actions)


def run(client, plugin, action, params=None, **body):
    return client.post("/execute", {"pluginId": plugin, "actionName": action, "params": params or {}, **body}, format="json")


def test_cache_key_ignores_key_order_and_nesting_but_not_secrets(org, make_org):
    version = echo_plugin()
    one = cache.cache_key(org, version, "echo", {"a": 1, "b": {"x": [1, 2], "y": 2}}, {})
    two = cache.cache_key(org, version, "echo", {"b": {"y": 2, "x": [1, 2]}, "a": 1}, {})
    assert one == two
    assert one != cache.cache_key(org, version, "echo", {"a": 1, "b": {"x": [2, 1], "y": 2}}, {})
    assert one != cache.cache_key(org, version, "echo", {"a": 1, "b": {"x": [1, 2], "y": 2}}, {"TOKEN": "t"})
    assert one != cache.cache_key(make_org("other"), version, "echo", {"a": 1, "b": {"x": [1, 2], "y": 2}}, {})
    assert "t" not in cache.secrets_fingerprint({"TOKEN": "t"})


@pytest.mark.django_db
def test_large_results_are_stored_compressed(org, settings):
    settings.CACHE_COMPRESS_THRESHOLD_BYTES = 1000
    version = echo_plugin()
    execution = Execution.objects.create(organization=org, plugin_version=version, action="echo", timeout_ms=1000,
                                         memory_limit_mb=64)
    result = {"text": "abc" * 10000}
    cache.store("k" * 64, execution, result)
    entry = CachedResult.objects.get(key="k" * 64)
    assert entry.compressed and entry.size_bytes < 2000
    assert cache.lookup("k" * 64) == result


@pytest.mark.django_db
def test_max_entries_drop_the_oldest(org, settings):
    settings.CACHE_MAX_ENTRIES = 3
    version = echo_plugin()
    execution = Execution.objects.create(organization=org, plugin_version=version, action="echo", timeout_ms=1000,
                                         memory_limit_mb=64)
    for index in range(5):
        cache.store(f"{index}" * 64, execution, {"n": index})
    assert sorted(CachedResult.objects.values_list("key", flat=True)) == ["2" * 64, "3" * 64, "4" * 64]


@pytest.mark.slow
def test_miss_then_hit_without_running(live, api):
    echo_plugin()
    first = run(api, "echo", "echo", {"a": 1, "b": {"c": [1, 2]}})
    assert first.status_code == 200 and first.json()["cacheHit"] is False
    second = run(api, "echo", "echo", {"b": {"c": [1, 2]}, "a": 1})
    assert second.status_code == 200, second.json()
    assert second.json()["cacheHit"] is True and second.json()["result"] == first.json()["result"]
    hit = Execution.objects.get(pk=second.json()["executionId"])
    assert hit.cache_hit and not ExecutionAttempt.objects.filter(execution=hit).exists()
    assert ExecutionAttempt.objects.filter(execution_id=first.json()["executionId"]).count() == 1
    # A hit still counts toward the daily quota.
    assert second.json()["quota"]["used"] == 2


@pytest.mark.slow
def test_other_organization_and_new_version_miss(live, api, make_org, make_client):
    echo_plugin()
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    assert run(make_client(make_org("other")), "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    echo_plugin(version="2.0.0")
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is True


@pytest.mark.slow
def test_invalidate_and_clear_from_api_and_commands(live, api, org, make_client):
    echo_plugin()
    operator = make_client(org, staff=True)
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    assert api.post("/cache/invalidate/echo").status_code == 403
    response = operator.post("/cache/invalidate/echo")
    assert response.status_code == 200 and response.json()["entriesRemoved"] == 1
    assert operator.post("/cache/invalidate/nope").json()["error"]["type"] == "PLUGIN_NOT_FOUND"
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    call_command("invalidate_cache", "echo")
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    call_command("clear_cache")
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    assert operator.post("/cache/clear").json()["entriesRemoved"] == 1
    assert run(api, "echo", "echo", {"a": 1}).json()["cacheHit"] is False
    types = list(AuditEvent.objects.filter(type__in=["cache_invalidated", "cache_cleared"]).values_list("type", flat=True))
    assert types.count("cache_invalidated") == 2 and types.count("cache_cleared") == 2


@pytest.mark.slow
def test_breaker_opens_after_five_failures_and_closes_after_probes(live, api, org, settings):
    # One organization's failures open its own breaker of the public plugin
    # (tests/tenancy/test_breaker_scope.py: the others are not refused).
    flaky_plugin()
    for _ in range(5):
        failed = run(api, "flaky", "maybe", {"fail": True})
        assert failed.json()["error"]["type"] == "PLUGIN_ERROR"
    assert CircuitBreaker.objects.get(plugin__slug="flaky", organization=org).state == "open"
    before = Execution.objects.count()
    refused = run(api, "flaky", "maybe", {"fail": False})
    assert refused.status_code == 503
    assert refused.json()["error"] == {"type": "CIRCUIT_OPEN", "message": refused.json()["error"]["message"], "retryable": True,
                                       "details": {"scope": "organization"}}
    assert "for this organization only" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Execution.objects.count() == before  # nothing ran, nothing queued
    settings.BREAKER_OPEN_SECONDS = 1
    time.sleep(1.1)
    for _ in range(3):
        assert run(api, "flaky", "maybe", {"fail": False}).status_code == 200
    assert CircuitBreaker.objects.get(plugin__slug="flaky", organization=org).state == "closed"
    changes = AuditEvent.objects.filter(type="circuit_breaker_state_changed", target_id="flaky")
    assert [e.metadata["to"] for e in changes.order_by("timestamp")] == ["open", "half_open", "closed"]
    assert {(e.organization_id, e.metadata["scope"], e.metadata["organizationId"]) for e in changes} == {
        (org.id, "organization", org.slug)}


@pytest.mark.slow
def test_failed_probe_reopens_the_breaker(live, api, org, settings):
    flaky_plugin()
    for _ in range(5):
        run(api, "flaky", "maybe", {"fail": True})
    settings.BREAKER_OPEN_SECONDS = 1
    time.sleep(1.1)
    assert run(api, "flaky", "maybe", {"fail": True}).json()["error"]["type"] == "PLUGIN_ERROR"
    assert CircuitBreaker.objects.get(plugin__slug="flaky", organization=org).state == "open"


@pytest.mark.slow
def test_transient_failure_is_retried_with_backoff_and_succeeds(live, api):
    flaky_plugin()
    started = time.monotonic()
    response = run(api, "flaky", "crashUntil", {"succeed_on": 3})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"attempt": 3} and response.json()["retryCount"] == 2
    attempts = ExecutionAttempt.objects.filter(execution_id=response.json()["executionId"]).order_by("number")
    assert [a.error_type for a in attempts] == ["WORKER_CRASHED", "WORKER_CRASHED", ""]
    assert elapsed >= 0.9 + 1.8  # 1 s then 2 s, each less 10 % jitter at most
    assert attempts[1].started_at - attempts[0].finished_at >= dt.timedelta(seconds=0.9)


@pytest.mark.slow
def test_non_idempotent_action_is_not_retried(live, api):
    flaky_plugin(idempotent=False)
    response = run(api, "flaky", "crashUntil", {"succeed_on": 2})
    assert response.json()["error"]["type"] == "WORKER_CRASHED" and response.json()["retryCount"] == 0
    assert ExecutionAttempt.objects.filter(execution_id=response.json()["executionId"]).count() == 1


@pytest.mark.slow
def test_retries_never_outlast_the_request_timeout(live, api):
    flaky_plugin()
    started = time.monotonic()
    response = run(api, "flaky", "crashUntil", {"succeed_on": 4}, timeout=1500)
    assert time.monotonic() - started < 3
    assert response.json()["error"]["type"] == "WORKER_CRASHED" and response.json()["retryCount"] == 1


@pytest.mark.slow
def test_open_breaker_falls_back_to_a_stale_cached_result(live, api, org):
    echo_plugin()
    fresh = run(api, "echo", "echo", {"a": 1})
    CachedResult.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    CircuitBreaker.objects.update_or_create(plugin=fresh_plugin(), organization=None,
                                            defaults={"state": "open", "opened_at": timezone.now()})
    response = run(api, "echo", "echo", {"a": 1})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["stale"] is True and body["fallback"] == "stale_cache" and body["result"] == fresh.json()["result"]
    assert body["error"]["type"] == "CIRCUIT_OPEN"
    assert AuditEvent.objects.filter(type="owner_notified", organization=org, target_id="echo").exists()


def fresh_plugin():
    from plugins.models import Plugin

    return Plugin.objects.get(slug="echo")


@pytest.mark.slow
def test_failed_run_falls_back_to_the_action_default(live, api, org):
    flaky_plugin(idempotent=False, default={"ok": "unknown"})
    response = run(api, "flaky", "crashUntil", {"succeed_on": 2})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["fallback"] == "default" and body["stale"] is False and body["result"] == {"ok": "unknown"}
    assert body["error"]["type"] == "WORKER_CRASHED"
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.status == "error" and execution.fallback == "default"
    # The owner is told after the end is recorded (and the caller woken).
    assert wait_for(lambda: AuditEvent.objects.filter(type="owner_notified", organization=org, target_id="flaky").exists())


@pytest.mark.slow
def test_idempotency_key_replays_and_conflicts(live, api):
    echo_plugin(cacheable=False)
    body = {"pluginId": "echo", "actionName": "echo", "params": {"a": 1}}
    first = api.post("/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    second = api.post("/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == second.status_code == 200
    assert first.json()["executionId"] == second.json()["executionId"]
    assert Execution.objects.filter(idempotency_key="order-42").count() == 1
    other = api.post("/execute", {**body, "params": {"a": 2}}, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert other.status_code == 409 and other.json()["error"]["type"] == "IDEMPOTENCY_CONFLICT"
    assert other.json()["executionId"] == first.json()["executionId"]


@pytest.mark.django_db
def test_admin_actions_invalidate_the_cache_and_reset_the_breaker(org, admin_client):
    version = echo_plugin()
    execution = Execution.objects.create(organization=org, plugin_version=version, action="echo", timeout_ms=1000,
                                         memory_limit_mb=64)
    cache.store("a" * 64, execution, {"n": 1})
    circuit = CircuitBreaker.objects.create(plugin=version.plugin, organization=org, state="open", opened_at=timezone.now(),
                                            consecutive_failures=5)
    changelist = "/admin/plugins/plugin/"
    response = admin_client.post(changelist, {"action": "invalidate_cache", "_selected_action": [version.plugin.pk]})
    assert response.status_code == 302 and not CachedResult.objects.exists()
    assert AuditEvent.objects.filter(type="cache_invalidated", target_id="echo", actor_id="admin:admin").exists()
    response = admin_client.post("/admin/executions/circuitbreaker/",
                                 {"action": "reset", "_selected_action": [circuit.pk]})
    assert response.status_code == 302
    assert CircuitBreaker.objects.get(pk=circuit.pk).state == "closed"
    assert admin_client.get("/admin/executions/circuitbreaker/").status_code == 200
