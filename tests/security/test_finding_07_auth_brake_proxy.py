"""Finding 7: the failed-authentication brake counted by REMOTE_ADDR alone,
so behind a reverse proxy one client's failures locked out every client, as
did one client failing with its key for the others sharing its address.
It now counts by the client address seen through TRUSTED_PROXIES and by the
presented key's prefix."""

import pytest
from django.core import checks
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
WRONG = "Bearer pex_aaaaaaaaaaaa_guess"


@pytest.fixture(autouse=True)
def brake(settings):
    settings.AUTH_FAILURES_PER_MINUTE = 3
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    cache.clear()
    yield
    cache.clear()


def events(authorization, peer, forwarded_for=None):
    headers = {"HTTP_AUTHORIZATION": authorization, "REMOTE_ADDR": peer}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return APIClient().get("/events", **headers).status_code


def hammer(peer, forwarded_for=None, authorization=WRONG):
    """Fail until braked; the brake must hold from the fourth try."""
    assert [events(authorization, peer, forwarded_for) for _ in range(4)] == [401, 401, 401, 429]


def test_clients_behind_a_trusted_proxy_are_braked_separately(org, make_client):
    hammer(PROXY, "203.0.113.7")
    # Another client, through the same proxy: its own count.
    assert events(WRONG, PROXY, "198.51.100.9") == 401
    assert events(f"Bearer {make_client(org).api_key}", PROXY, "198.51.100.9") == 200
    # Two proxy hops, both trusted: the client is the nearest untrusted address.
    assert events(WRONG, PROXY, "203.0.113.7, 10.1.2.3") == 429


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    # Through the trusted proxy, whatever the client put left of the address
    # the proxy appended does not get it out of the brake.
    hammer(PROXY, "203.0.113.7")
    assert events(WRONG, PROXY, "192.0.2.200, 203.0.113.7") == 429
    # A peer that is not a trusted proxy is counted by its own address,
    # whatever X-Forwarded-For it sends.
    codes = [events(WRONG, "192.0.2.1", f"198.51.100.{n}") for n in range(4)]
    assert codes == [401, 401, 401, 429]
    # ... while the trusted proxy's other clients are still let through.
    assert events(WRONG, PROXY, "198.51.100.10") == 401


def test_failing_with_one_key_does_not_lock_out_another_key_at_the_same_address(org, make_client):
    hammer("192.0.2.1")
    correct = make_client(org)
    assert events(f"Bearer {correct.api_key}", "192.0.2.1") == 200
    # The same secret guesses against that key are braked all the same.
    prefix = correct.api_key.split("_")[1]
    hammer("192.0.2.1", authorization=f"Bearer pex_{prefix}_guess")


def test_a_malformed_trusted_proxy_is_a_system_check_error(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    errors = [message for message in checks.run_checks() if message.id == "core.E001"]
    assert errors and "proxy.internal" in errors[0].msg
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8::/32"]
    assert not [message for message in checks.run_checks() if message.id == "core.E001"]
