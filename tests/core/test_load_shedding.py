"""A web process refuses at once, with QUEUE_FULL and Retry-After, a request
that arrives while WEB_ACTIVE_REQUEST_LIMIT others are being worked on;
waiting callers and /health do not count against it."""

import time

import pytest

from core import load_shedding

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy(settings):
    """This process at its limit: one request being worked on, limit one."""
    settings.WEB_ACTIVE_REQUEST_LIMIT = 1
    assert load_shedding.admit_request(1)
    yield
    load_shedding.request_done()


def test_a_request_over_the_limit_is_refused_at_once_with_retry_after(busy, make_org, make_client):
    client = make_client(make_org("shed"))
    response = client.get("/plugins")
    assert shed(response)
    body = response.json()
    assert body["success"] is False
    assert body["error"]["type"] == "QUEUE_FULL" and body["error"]["retryable"] is True


def shed(response):
    return response.status_code == 503 and response.get("Retry-After") == "1" and b'"QUEUE_FULL"' in response.content


def test_health_and_metrics_are_never_refused(busy, client):
    assert not shed(client.get("/health"))
    assert not shed(client.get("/metrics"))


def test_a_waiting_request_leaves_room_for_others(busy, make_org, make_client):
    client = make_client(make_org("shed"))
    with load_shedding.waiting():
        assert client.get("/plugins").status_code == 200
    assert client.get("/plugins").status_code == 503


def test_requests_pass_again_once_the_one_in_progress_is_done(settings, make_org, make_client):
    settings.WEB_ACTIVE_REQUEST_LIMIT = 1
    client = make_client(make_org("shed"))
    assert [client.get("/plugins").status_code for _ in range(3)] == [200, 200, 200]


def test_a_process_whose_loop_runs_late_refuses_until_it_catches_up(settings, make_org, make_client, monkeypatch):
    settings.WEB_MAX_LAG_MS = 100
    client = make_client(make_org("shed"))
    monkeypatch.setattr(load_shedding._lag, "seconds", 0.4)
    assert shed(client.get("/plugins"))
    assert not shed(client.get("/health"))
    monkeypatch.setattr(load_shedding._lag, "seconds", 0.02)
    assert client.get("/plugins").status_code == 200


def test_the_lag_monitor_sees_a_loop_held_up():
    load_shedding.start_lag_monitor()
    time.sleep(0.05)
    began = time.monotonic()
    sum(range(30_000_000))  # one C call: the GIL is not let go, the monitor cannot look
    held = time.monotonic() - began
    time.sleep(0.02)
    assert load_shedding.loop_lag_seconds() > held / 5  # one look that late
    time.sleep(0.3)
    assert load_shedding.loop_lag_seconds() < 0.05  # on time again, it fades
