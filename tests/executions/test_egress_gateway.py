"""The worker side of ctx.http: allowlist, shared rate limit and audit trail
around the egress broker, and what a plugin sees through the real sandbox."""

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audit.models import AuditEvent
from executions.egress_gateway import EgressGateway, bounded_domains
from executions.models import Execution
from tests.factories import install_source

NET_PLUGIN = """
def fetch(params, ctx):
    response = ctx.http.get(params["url"])
    return {"status": response.status_code, "body": response.text}

def fetch_handled(params, ctx):
    try:
        ctx.http.get(params["url"])
    except Exception as error:
        return {"refused": type(error).__name__, "message": str(error)}
    return {"refused": None}
"""


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def net_plugin(domains):
    return install_source(
        "netty", NET_PLUGIN,
        {"fetch": {"handler": "fetch", "params": {"type": "object"}, "idempotent": False},
         "fetchHandled": {"handler": "fetch_handled", "params": {"type": "object"}}},
        network={"allowedDomains": domains},
    )


def test_operator_allowlist_bounds_the_manifest_s():
    assert bounded_domains(["api.example.com", "*.weather.gov"], []) == ["api.example.com", "*.weather.gov"]
    assert bounded_domains(["api.example.com", "*.weather.gov"], ["*.example.com"]) == ["api.example.com"]
    assert bounded_domains(["*.weather.gov"], ["api.weather.gov"]) == ["api.weather.gov"]
    assert bounded_domains(["evil.com"], ["*.example.com"]) == []


@pytest.mark.django_db
def test_gateway_fetches_rate_limits_and_logs_every_request(org, local_server, settings, monkeypatch):
    settings.EGRESS_RATE_LIMIT_PER_MINUTE = 3
    version = net_plugin(["localhost"])
    execution = Execution.objects.create(organization=org, plugin_version=version, action="fetch", timeout_ms=5000,
                                         memory_limit_mb=64)
    gateway = EgressGateway(execution, {})
    # The policy is the real one, but for the loopback address the test's
    # server listens on (refused in production, as the next tests show).
    real_policy = gateway.policy()
    monkeypatch.setattr(gateway, "policy", lambda: dataclasses.replace(
        real_policy, permitted_addresses=frozenset({"127.0.0.1"}), allow_any_port=True,
        resolver=lambda host, port: ["127.0.0.1"]))
    replies = [gateway({"op": "http", "method": "GET", "url": f"http://localhost:{local_server}/n{i}"}) for i in range(4)]
    assert [r["ok"] for r in replies] == [True, True, True, False]
    assert replies[0]["status"] == 200
    assert replies[3]["kind"] == "denied" and "rate limit" in replies[3]["message"]
    events = list(AuditEvent.objects.filter(type="egress_request").order_by("timestamp"))
    assert len(events) == 4
    assert events[0].metadata["method"] == "GET" and events[0].metadata["host"] == "localhost"
    assert events[0].metadata["status"] == 200 and events[0].metadata["bytes"] > 0
    assert "durationMs" in events[0].metadata and events[3].metadata["allowed"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://169.254.169.254/latest/meta-data/", "forbidden"),
        ("http://2130706433/", "forbidden"),
        ("http://[::ffff:127.0.0.1]/", "forbidden"),
        ("http://not-allowed.example/", "allowlist"),
        ("file:///etc/passwd", "scheme"),
    ],
)
def test_gateway_refuses_what_policy_forbids(org, url, reason):
    version = net_plugin(["localhost"])
    execution = Execution.objects.create(organization=org, plugin_version=version, action="fetch", timeout_ms=5000,
                                         memory_limit_mb=64)
    reply = EgressGateway(execution, {})({"op": "http", "method": "GET", "url": url})
    assert reply["ok"] is False and reply["kind"] == "denied", reply
    assert reason in reply["message"].lower(), reply["message"]
    assert AuditEvent.objects.get(type="egress_request").metadata["allowed"] is False


@pytest.mark.slow
def test_plugin_egress_to_metadata_address_is_a_sandbox_violation(live, api):
    net_plugin(["metadata.example"])
    response = api.post("/execute", {"pluginId": "netty", "actionName": "fetch",
                                     "params": {"url": "http://169.254.169.254/latest/meta-data/"}}, format="json")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "SANDBOX_VIOLATION" and error["retryable"] is False
    assert AuditEvent.objects.filter(type="egress_request", metadata__allowed=False).exists()


@pytest.mark.slow
def test_plugin_sees_a_refusal_as_an_exception_it_can_handle(live, api):
    net_plugin(["metadata.example"])
    response = api.post("/execute", {"pluginId": "netty", "actionName": "fetchHandled",
                                     "params": {"url": "http://not-allowed.example/"}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["result"]["refused"] == "EgressDenied"
    assert "allowlist" in response.json()["result"]["message"]
