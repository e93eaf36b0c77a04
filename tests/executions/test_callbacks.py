"""Callbacks of asynchronous runs: the URL's rules at submission (in
process), and delivery by the real service (`make run`, its clusters'
couriers) to receivers that are real HTTP servers on 127.0.0.1: one signed
POST whose body is the execution's, retries after failures, each attempt an
event, a courier killed mid-delivery, and a host that resolves to a private
address when the callback is sent."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from executions import callbacks
from executions.checks import check_callback_allowed_hosts
from executions.lifecycle import finish_execution
from executions.models import CallbackDelivery, Execution
from executions.queue.courier import render_body
from tests.egress.helpers import FakeResolver
from tests.factories import wait_for
from tests.faults.service import Service

TIMEOUT_SECONDS = 1


class Receiver:
    """A callback receiver on 127.0.0.1. `answers`: per request, a status to
    answer (or a status and a Location), "hang" (answer nothing for longer than the callback timeout) or
    an Event to wait for before answering 200; 200 once they run out."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "hang":
                    time.sleep(TIMEOUT_SECONDS * 2)
                    return
                if isinstance(answer, threading.Event):
                    answer.wait(30)
                    answer = 200
                answer, location = answer if isinstance(answer, tuple) else (answer, None)
                self.send_response(answer)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host="127.0.0.1"):
        return f"http://{host}:{self.server.server_address[1]}/hooks/runs?source=engine"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def signed_by(secret, headers, body):
    fields = dict(part.split("=", 1) for part in headers["X-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(fields["v1"], expected) and abs(time.time() - int(fields["t"])) < 60


# -- the URL's rules, at submission ------------------------------------------------


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8080/hook", "forbidden address"),
    ("http://10.1.2.3/hook", "forbidden address"),
    ("http://[::1]/hook", "forbidden address"),
    ("http://169.254.169.254/latest", "forbidden address"),
    ("http://hooks.internal.test/hook", "resolves to a forbidden address"),
    ("ftp://hooks.example.com/hook", "scheme"),
    ("http://user:password@hooks.example.com/hook", "credentials"),
    ("hooks.example.com/hook", "absolute"),
    ("https://hooks.example.com/" + "x" * 2000, "2000"),
], ids=["loopback", "private", "loopback-v6", "metadata", "resolves-private", "ftp", "credentials", "relative",
        "too-long"])
def test_a_callback_url_no_callback_may_reach_is_refused_at_submission(api, url, reason, monkeypatch):
    monkeypatch.setattr(callbacks, "resolver", FakeResolver({"hooks.internal.test": ["93.184.216.34", "10.0.0.7"]}))
    response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]},
                                     "async": True, "callbackUrl": url}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and reason in error["message"], error
    assert error["details"][0]["field"] == "callbackUrl", error
    assert not Execution.objects.exists()


def test_a_malformed_allowed_host_fails_the_system_check(settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["receiver.internal", "http://receiver.internal/"]
    assert [error.id for error in check_callback_allowed_hosts(None)] == ["executions.E001"]
    settings.CALLBACK_ALLOWED_HOSTS = ["receiver.internal", "10.0.0.5", "[fd00::5]"]
    assert check_callback_allowed_hosts(None) == []


def test_a_synchronous_request_with_a_callback_url_is_refused(api):
    response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]},
                                     "callbackUrl": "https://hooks.example.com/runs"}, format="json")
    assert response.status_code == 400
    assert "asynchronous" in response.json()["error"]["message"]


def test_an_operator_allowed_private_host_is_accepted_and_shown_waiting(api, examples, settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]},
                                     "async": True, "callbackUrl": "http://127.0.0.1:9/hook"}, format="json")
    assert response.status_code == 202, response.json()
    shown = api.get(response["Location"]).json()
    assert shown["callback"] == {"url": "http://127.0.0.1:9/hook", "state": "waiting", "attempts": 0}


def test_a_host_resolving_to_a_private_address_when_sent_is_not_called(api, examples, monkeypatch):
    # DNS rebinding: a public address when the run is submitted, the
    # receiver's 127.0.0.1 when the callback is sent. The courier checks the
    # address it would connect to, and does not connect.
    dns = FakeResolver({"hooks.rebinding.test": ["93.184.216.34"]})
    monkeypatch.setattr(callbacks, "resolver", dns)
    receiver = Receiver()
    try:
        response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]},
                                         "async": True, "callbackUrl": receiver.url("hooks.rebinding.test")},
                            format="json")
        assert response.status_code == 202, response.json()
        dns.mapping["hooks.rebinding.test"] = ["127.0.0.1"]
        execution = Execution.objects.with_plugin().get(pk=response.json()["executionId"])
        assert finish_execution(execution, status=Execution.Status.SUCCESS, result={"n": 1})
        delivery = callbacks.claim_due(execution.priority)
        assert delivery is not None and delivery.pk == execution.pk
        assert callbacks.attempt(delivery, render_body) == CallbackDelivery.State.PENDING
    finally:
        receiver.close()
    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.last_error.startswith("forbidden_address"), delivery.last_error


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(api, examples, settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    elsewhere = Receiver()
    receiver = Receiver((307, elsewhere.url()))
    try:
        response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]},
                                         "async": True, "callbackUrl": receiver.url()}, format="json")
        execution = Execution.objects.with_plugin().get(pk=response.json()["executionId"])
        assert finish_execution(execution, status=Execution.Status.SUCCESS, result={"n": 1})
        delivery = callbacks.claim_due(execution.priority)
        assert callbacks.attempt(delivery, render_body) == CallbackDelivery.State.PENDING
    finally:
        receiver.close()
        elsewhere.close()
    assert len(receiver.received) == 1 and elsewhere.received == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("too_many_redirects")
    # Due again after the back-off, not at once: another courier's claim finds nothing now.
    assert callbacks.claim_due(execution.priority) is None


# -- delivery by the real service ---------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    running = Service(
        tmp_path_factory.mktemp("callbacks"), workers=1,
        CALLBACK_ALLOWED_HOSTS="127.0.0.1", CALLBACK_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
        CALLBACK_RETRY_BASE_SECONDS=0.3, CALLBACK_MAX_ATTEMPTS=3, CALLBACK_POLL_SECONDS=0.2,
    ).start()
    try:
        running.prepare()
        yield running
    finally:
        running.stop(timeout=60)


def run_with_callback(service, receiver):
    status, body = service.execute("napper", "nap", {"seconds": 0}, **{"async": True, "callbackUrl": receiver.url()})
    assert status == 202, body
    return body["executionId"]


def callback_state(service, execution_id, *states):
    status, body = service.get(f"/executions/{execution_id}")
    return body if body.get("callback", {}).get("state") in states else None


def attempt_events(service, execution_id):
    rows = service.query("SELECT metadata FROM executions_executionevent WHERE type = 'callback_attempted' "
                         "AND target_id = %s ORDER BY id", execution_id)
    return [json.loads(metadata) for (metadata,) in rows]


@pytest.mark.slow
def test_an_async_run_delivers_one_signed_post_of_its_final_body(service):
    receiver = Receiver()
    try:
        execution_id = run_with_callback(service, receiver)
        shown = wait_for(lambda: callback_state(service, execution_id, "delivered"), timeout=20)
    finally:
        receiver.close()
    assert shown, service.get(f"/executions/{execution_id}")
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    _, signing = service.request("GET", "/callbacks/signing-secret")
    assert signed_by(signing["secret"], headers, body)
    assert not signed_by(signing["secret"], headers, body.replace(b"slept", b"slipt"))
    assert headers["X-Execution-Id"] == execution_id and headers["Content-Type"] == "application/json"
    delivered = json.loads(body)
    assert delivered["status"] == "success" and delivered["result"] == {"slept": 0}
    assert delivered == {name: value for name, value in shown.items() if name != "callback"}
    assert shown["callback"]["attempts"] == 1 and shown["callback"]["lastStatusCode"] == 200
    assert signing["secret"] not in json.dumps(shown)
    [event] = attempt_events(service, execution_id)
    assert event["statusCode"] == 200 and event["state"] == "delivered" and event["attempt"] == 1
    # Delivered, its copy of the body is not kept.
    assert service.query("SELECT body FROM executions_callbackdelivery WHERE execution_id = %s",
                         execution_id.replace("-", "")) == [("",)]


@pytest.mark.slow
def test_a_receiver_that_fails_twice_gets_the_third_attempt(service):
    receiver = Receiver(500, "hang")
    try:
        execution_id = run_with_callback(service, receiver)
        shown = wait_for(lambda: callback_state(service, execution_id, "delivered", "failed"), timeout=30)
    finally:
        receiver.close()
    assert shown and shown["callback"]["state"] == "delivered", shown
    assert shown["callback"]["attempts"] == 3
    assert [headers["X-Callback-Attempt"] for headers, _ in receiver.received] == ["1", "2", "3"]
    assert len({body for _, body in receiver.received}) == 1, "every attempt sends the same body"
    first, second, third = attempt_events(service, execution_id)
    assert (first["statusCode"], first["state"]) == (500, "pending")
    assert second["statusCode"] is None and second["error"].startswith("timeout") and second["state"] == "pending"
    assert (third["statusCode"], third["state"]) == (200, "delivered")
    assert first["nextAttemptAt"] < second["nextAttemptAt"]


@pytest.mark.slow
def test_a_receiver_that_always_fails_is_given_up_after_the_last_attempt(service):
    receiver = Receiver(503, 503, 503, 503)
    try:
        execution_id = run_with_callback(service, receiver)
        shown = wait_for(lambda: callback_state(service, execution_id, "failed"), timeout=30)
        time.sleep(1)  # and nothing more is sent
    finally:
        receiver.close()
    assert shown and shown["callback"]["attempts"] == 3 and shown["callback"]["lastStatusCode"] == 503
    assert len(receiver.received) == 3
    assert [event["state"] for event in attempt_events(service, execution_id)] == ["pending", "pending", "failed"]


@pytest.mark.slow
def test_a_courier_killed_mid_delivery_loses_nothing(service):
    release = threading.Event()
    receiver = Receiver(release)
    try:
        execution_id = run_with_callback(service, receiver)
        assert wait_for(lambda: receiver.received, timeout=20)
        priority = service.query("SELECT priority FROM executions_callbackdelivery")[0][0]
        service.courier(priority).kill()
        release.set()
        shown = wait_for(lambda: callback_state(service, execution_id, "delivered"), timeout=30)
    finally:
        receiver.close()
    assert shown, service.get(f"/executions/{execution_id}")
    # The attempt cut short was never recorded: the new courier sent it again,
    # the same body under the same execution id, for the receiver to de-duplicate.
    assert len(receiver.received) == 2
    assert len({(headers["X-Execution-Id"], body) for headers, body in receiver.received}) == 1
    assert shown["callback"]["attempts"] == 1
    restarts = service.query("SELECT COUNT(*) FROM executions_executionevent WHERE type = 'process_restarted' "
                             "AND target_id = 'courier'")[0][0]
    assert restarts == 1
