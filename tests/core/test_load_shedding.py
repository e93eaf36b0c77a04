"""A web process refuses at once, with QUEUE_FULL and Retry-After, a request
that arrives while WEB_ACTIVE_REQUEST_LIMIT others are being worked on or
while its loop runs WEB_MAX_LAG_MS late; waiting callers and /health do not
count against it. The refusal comes from the WSGI wrapper gunicorn's workers
install around Django, so these tests call that wrapper as gunicorn does."""

import json
import socket
import time

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import RequestFactory

from core import load_shedding
from core.middleware import ShedExcessRequests

pytestmark = pytest.mark.django_db


@pytest.fixture
def web():
    """Django behind the wrapper; call(path) returns (status, headers, body).
    As Django's test client does, requests leave the test's database
    connection open (a real request closes it when it ends)."""
    application = ShedExcessRequests(get_wsgi_application())
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call(path, **headers):
        environ = RequestFactory().get(path, **headers).environ
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

        body = b"".join(application(environ, start_response))
        return answer["status"], answer["headers"], body

    yield call
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def busy(settings):
    """This process at its limit: one request being worked on, limit one."""
    settings.WEB_ACTIVE_REQUEST_LIMIT = 1
    assert load_shedding.admit_request(1)
    yield
    load_shedding.request_done()


def shed(answer):
    status, headers, body = answer
    return status == 503 and headers.get("Retry-After") == "1" and json.loads(body)["error"]["type"] == "QUEUE_FULL"


def auth(key):
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_a_request_over_the_limit_is_refused_at_once_with_retry_after(busy, web, make_org, make_client):
    status, headers, body = web("/plugins", **auth(make_client(make_org("shed")).api_key))
    assert shed((status, headers, body))
    assert json.loads(body) == {"success": False, "error": {
        "type": "QUEUE_FULL", "message": "this server is at capacity; try again shortly", "retryable": True}}
    assert int(headers["Content-Length"]) == len(body)


def test_health_and_metrics_are_never_refused(busy, web):
    assert not shed(web("/health"))
    assert not shed(web("/metrics"))


def test_a_waiting_request_leaves_room_for_others(busy, web, make_org, make_client):
    key = make_client(make_org("shed")).api_key
    with load_shedding.waiting():
        assert web("/plugins", **auth(key))[0] == 200
    assert shed(web("/plugins", **auth(key)))


def test_requests_pass_again_once_the_one_in_progress_is_done(settings, web, make_org, make_client):
    settings.WEB_ACTIVE_REQUEST_LIMIT = 1
    key = make_client(make_org("shed")).api_key
    assert [web("/plugins", **auth(key))[0] for _ in range(3)] == [200, 200, 200]


def test_a_process_whose_loop_runs_late_refuses_until_it_catches_up(settings, web, make_org, make_client, monkeypatch):
    settings.WEB_MAX_LAG_MS = 100
    key = make_client(make_org("shed")).api_key
    monkeypatch.setattr(load_shedding, "loop_lag_seconds", lambda: 0.4)
    monkeypatch.setattr(load_shedding, "waited_seconds", lambda sock: 0.4)
    assert shed(web("/plugins", **auth(key)))
    assert not shed(web("/health"))
    monkeypatch.setattr(load_shedding, "loop_lag_seconds", lambda: 0.02)
    assert web("/plugins", **auth(key))[0] == 200


def test_the_lag_monitor_sees_a_loop_held_up():
    load_shedding.start_lag_monitor()
    time.sleep(0.05)
    began = time.monotonic()
    sum(range(30_000_000))  # one C call: the GIL is not let go, the monitor cannot look
    held = time.monotonic() - began
    # The late look lands as soon as the GIL is free, and the on-time looks
    # after it (every 10 ms) fade it again: what it saw is the peak.
    seen = 0.0
    for _ in range(40):
        time.sleep(0.001)
        seen = max(seen, load_shedding.loop_lag_seconds())
    assert seen > held / 5  # one look that late
    time.sleep(0.3)
    assert load_shedding.loop_lag_seconds() < 0.05  # on time again, it fades



@pytest.fixture
def connection():
    """A real TCP connection on loopback; `arrive(wait)` sends a request's
    bytes and returns the server's end `wait` seconds after they arrived."""
    listener = socket.create_server(("127.0.0.1", 0))
    opened = []

    def arrive(wait):
        client = socket.create_connection(listener.getsockname())
        client.sendall(b"GET /plugins HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(wait)
        server, _ = listener.accept()
        server.recv(1024)
        opened.extend((client, server))
        return server

    yield arrive
    for sock in opened + [listener]:
        sock.close()


def test_a_request_is_known_to_have_waited_from_its_connection(connection):
    assert load_shedding.waited_seconds(connection(0.12)) >= 0.1
    assert load_shedding.waited_seconds(connection(0)) < 0.02
    assert load_shedding.waited_seconds(None) == 0


def test_a_late_process_refuses_what_waited_and_admits_a_lone_request_that_did_not(
    settings, web, make_org, make_client, monkeypatch, connection
):
    """The loop's average still remembers a burst: a request that waited
    behind it is refused, a lone one that comes after is served at once."""
    settings.WEB_MAX_LAG_MS = 25
    key = make_client(make_org("shed")).api_key
    monkeypatch.setattr(load_shedding, "loop_lag_seconds", lambda: 0.2)
    assert shed(web("/plugins", **auth(key), **{"gunicorn.socket": connection(0.1)}))
    assert web("/plugins", **auth(key), **{"gunicorn.socket": connection(0)})[0] == 200
    monkeypatch.setattr(load_shedding, "loop_lag_seconds", lambda: 0.01)  # one slow statement: not late lately
    assert web("/plugins", **auth(key), **{"gunicorn.socket": connection(0.1)})[0] == 200
