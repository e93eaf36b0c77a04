"""Tiers, quotas, priority and authentication: the real API, cluster and sandbox."""

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from executions.models import Execution
from quotas.enforcement import (
    next_utc_midnight,
    seconds_to_next_utc_midnight,
    usage_today,
)
from quotas.models import DailyUsage, Tier
from tests.factories import install_source, wait_for

SLEEPER = """
import time

def nap(params, ctx):
    time.sleep(params.get("seconds", 1))
    return {"slept": params.get("seconds", 1)}
"""


def simultaneously(count, call):
    """Run `call(i)` from `count` threads released together; return the results."""
    barrier = threading.Barrier(count)

    def one(index):
        barrier.wait()
        try:
            return call(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture(autouse=True)
def generous_auth_limiter(settings):
    settings.AUTH_FAILURES_PER_MINUTE = 10**6


@pytest.fixture
def sleeper(db):
    return install_source("sleeper", SLEEPER, {"nap": "nap"})


def test_next_midnight_is_utc_and_retry_after_counts_down_to_it():
    midnight = next_utc_midnight()
    assert midnight.tzinfo == dt.timezone.utc and midnight.hour == 0 and midnight.minute == 0
    assert 0 < seconds_to_next_utc_midnight() <= 86401


@pytest.mark.django_db
def test_organization_overrides_win_over_the_tier(make_org):
    org = make_org("big", tier="free", daily_limit_override=5000, concurrent_limit_override=7)
    assert org.daily_limit == 5000 and org.concurrent_limit == 7
    org.daily_limit_override = None
    assert org.daily_limit == 100


@pytest.mark.slow
def test_daily_limit_admits_exactly_n_of_simultaneous_requests(live, make_org, make_client, examples, settings):
    settings.QUEUE_LIMITS = {"high": 1000, "medium": 1000, "low": 1000}
    tier = Tier.objects.create(name="race", daily_limit=100, concurrent_limit=1000, priority="low")
    org = make_org("racer")
    org.tier = tier
    org.save()
    key = make_client(org).api_key
    body = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1, 2]}, "async": True}

    def post(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client.post("/execute", body, format="json")

    responses = simultaneously(150, post)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 100
    assert statuses.count(429) == 50
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["type"] == "QUOTA_EXCEEDED" for r in refused)
    assert all(0 < int(r["Retry-After"]) <= 86401 for r in refused)
    assert all(r["X-RateLimit-Remaining"] == "0" for r in refused)
    assert DailyUsage.objects.get(organization=org).count == 100
    assert Execution.objects.filter(organization=org).count() == 100
    assert AuditEvent.objects.filter(type="quota_exceeded", organization=org).count() == 50


@pytest.mark.slow
def test_concurrency_limit_admits_exactly_the_limit_and_frees_the_slots(live, make_org, make_client, sleeper):
    tier = Tier.objects.create(name="trio", daily_limit=None, concurrent_limit=3, priority="high")
    org = make_org("trio-org")
    org.tier = tier
    org.save()
    key = make_client(org).api_key
    body = {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 1}, "timeout": 10000}

    def post(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client.post("/execute", body, format="json")

    responses = simultaneously(10, post)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == 3 and len(refused) == 7
    assert all(r.json()["error"]["type"] == "CONCURRENCY_LIMIT" and r.json()["error"]["retryable"] for r in refused)
    assert all(int(r["Retry-After"]) >= 1 for r in refused)
    assert post(0).status_code == 200


@pytest.mark.slow
def test_slot_of_a_killed_worker_is_given_back_at_once(live, make_org, make_client, sleeper):
    import os
    import signal

    tier = Tier.objects.create(name="solo", daily_limit=None, concurrent_limit=1, priority="high")
    org = make_org("solo-org")
    org.tier = tier
    org.save()
    client = make_client(org)
    install_source("sleeper", SLEEPER, {"nap": {"handler": "nap", "idempotent": False}}, version="2.0.0")
    body = {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 30}, "timeout": 20000, "async": True}
    execution_id = client.post("/execute", body, format="json").json()["executionId"]
    running = wait_for(lambda: Execution.objects.filter(pk=execution_id, status="running").first(), timeout=15)
    os.kill(int(running.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    killed_at = time.monotonic()
    quick = {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 0}, "timeout": 2000}

    def admitted():
        response = client.post("/execute", quick, format="json")
        return response if response.status_code == 200 else None

    # The worker's sentinel notices the death and closes the run (not
    # idempotent: it must not run twice): the slot is free long before the
    # run's 20 s timeout or its lease.
    assert wait_for(admitted, timeout=10, interval=0.2)
    assert time.monotonic() - killed_at < 10
    crashed = Execution.objects.get(pk=execution_id)
    assert crashed.status == "error" and crashed.error_type == "WORKER_CRASHED"
    assert "worker process is gone" in crashed.error_message


@pytest.mark.slow
def test_enterprise_run_starts_before_a_free_backlog(live, make_org, make_client, sleeper, tiers):
    Tier.objects.filter(name="free").update(concurrent_limit=50)
    free_client = make_client(make_org("freebie", tier="free"))
    big_client = make_client(make_org("bigcorp", tier="enterprise"))
    backlog = [
        free_client.post("/execute", {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 0.5},
                                      "async": True}, format="json").json()["executionId"]
        for _ in range(8)
    ]
    urgent = big_client.post("/execute", {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 0},
                                          "async": True}, format="json").json()["executionId"]
    wait_for(lambda: Execution.objects.get(pk=urgent).status == "success", timeout=30)
    urgent_started = Execution.objects.get(pk=urgent).started_at
    still_waiting = [e for e in Execution.objects.filter(pk__in=backlog) if e.started_at is None or e.started_at > urgent_started]
    assert len(still_waiting) >= 3, "the enterprise run should not wait behind the free-tier backlog"


@pytest.mark.django_db
def test_tier_in_body_is_ignored(api, examples, make_org, make_client):
    free_client = make_client(make_org("cheap", tier="free"))
    response = free_client.post("/execute", {"pluginId": "stats", "actionName": "nope", "tier": "enterprise"}, format="json")
    assert response.status_code == 404  # validated normally, the tier field changed nothing
    assert response["X-RateLimit-Limit"] == "100"


@pytest.mark.django_db
def test_rate_limit_headers_on_authenticated_responses(api, examples):
    response = api.get("/executions/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response["X-RateLimit-Limit"] == "10000"
    assert response["X-RateLimit-Remaining"] == "10000"
    assert int(response["X-RateLimit-Reset"]) == int(next_utc_midnight().timestamp())


@pytest.mark.django_db
def test_reset_quotas_command_resets_and_records_an_event(org, capsys):
    from quotas.enforcement import consume_daily

    consume_daily(org)
    consume_daily(org)
    call_command("reset_quotas", "--org", org.slug)
    assert usage_today(org).used == 0
    assert AuditEvent.objects.filter(type="quota_reset", target_id=org.slug, metadata__usedBefore=2).exists()
    assert '"hadUsage": 1' in capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.django_db
def test_failed_authentication_is_rate_limited(settings, examples):
    settings.AUTH_FAILURES_PER_MINUTE = 3
    from django.core.cache import cache

    cache.clear()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer pex_aaaaaaaaaaaa_guess")
    codes = [client.post("/execute", {}, format="json").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3] == 429
    cache.clear()


@pytest.mark.django_db
class TestJwt:
    @pytest.fixture(autouse=True)
    def jwt_settings(self, settings):
        settings.JWT_KEY = "test-secret-" + "x" * 32
        settings.JWT_ISSUER = "https://idp.example"
        settings.JWT_AUDIENCE = "plugin-engine"
        self.settings = settings

    def token(self, **claims):
        now = int(time.time())
        payload = {"iss": "https://idp.example", "aud": "plugin-engine", "iat": now, "exp": now + 300,
                   "org": "acme", "sub": "person_7", **claims}
        return jwt.encode(payload, self.settings.JWT_KEY, algorithm="HS256")

    def client(self, token):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    def test_valid_token_acts_for_its_organization_and_actor(self, org, examples):
        response = self.client(self.token()).post(
            "/execute",
            {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}, "async": True,
             "actorId": "someone-claimed"},
            format="json",
        )
        assert response.status_code == 202
        execution = Execution.objects.get(pk=response.json()["executionId"])
        assert execution.organization == org and execution.actor_id == "person_7"

    @pytest.mark.parametrize(
        "claims",
        [{"exp": int(time.time()) - 3600}, {"aud": "someone-else"}, {"iss": "https://evil.example"}, {"org": "nobody"}],
    )
    def test_bad_tokens_are_refused(self, org, claims):
        response = self.client(self.token(**claims)).get("/executions/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "AUTHENTICATION_FAILED"

    def test_token_signed_with_another_key_is_refused(self, org):
        forged = jwt.encode({"org": "acme", "exp": int(time.time()) + 60, "iat": int(time.time()),
                             "iss": "https://idp.example", "aud": "plugin-engine"}, "another-key-" + "y" * 32, algorithm="HS256")
        assert self.client(forged).get("/executions/00000000-0000-0000-0000-000000000000").status_code == 401

    def test_alg_none_is_refused(self, org):
        unsigned = jwt.encode({"org": "acme", "exp": int(time.time()) + 60}, None, algorithm="none")
        assert self.client(unsigned).get("/executions/00000000-0000-0000-0000-000000000000").status_code == 401
