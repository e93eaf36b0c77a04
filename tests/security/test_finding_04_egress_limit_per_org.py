"""Finding 4: the per-minute egress limit was keyed by plugin alone, and
refused requests spent it too, so one tenant could exhaust a public plugin's
egress for every organization (ten refused requests were enough).

Now it is kept per organization and plugin, and only requests the broker
really sends are counted."""

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from executions.egress_gateway import EgressGateway, take_egress_slot
from executions.models import Execution
from tests.factories import install_source

PUBLIC_PLUGIN = """
def fetch_many(params, ctx):
    refusals = []
    for _ in range(params["count"]):
        try:
            ctx.http.get(params["url"])
        except Exception as error:
            refusals.append(str(error))
    return {"refusals": refusals}
"""


class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def local_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def public_plugin(db):
    return install_source("shared-fetcher", PUBLIC_PLUGIN,
                          {"fetchMany": {"handler": "fetch_many", "params": {"type": "object"}}},
                          network={"allowedDomains": ["localhost"]})


def gateway_for(organization, version, monkeypatch):
    """The real gateway of a run of `version` by `organization`, its policy
    letting it reach the test's listener on 127.0.0.1 (refused in production)."""
    execution = Execution.objects.create(organization=organization, plugin_version=version, action="fetchMany",
                                         timeout_ms=5000, memory_limit_mb=64)
    gateway = EgressGateway(execution, {})
    policy = dataclasses.replace(gateway.policy(), permitted_addresses=frozenset({"127.0.0.1"}), allow_any_port=True,
                                 resolver=lambda host, port: ["127.0.0.1"])
    monkeypatch.setattr(gateway, "policy", lambda: policy)
    return gateway


def requests(gateway, url, count):
    return [gateway({"op": "http", "method": "GET", "url": url}) for _ in range(count)]


@pytest.mark.django_db
def test_one_organization_spending_the_budget_leaves_the_others_theirs(make_org, public_plugin, local_api, settings,
                                                                       monkeypatch):
    settings.EGRESS_RATE_LIMIT_PER_MINUTE = 3
    greedy, other = make_org("greedy"), make_org("other")
    spent = requests(gateway_for(greedy, public_plugin, monkeypatch), local_api, 4)
    assert [reply["ok"] for reply in spent] == [True, True, True, False]
    assert "rate limit" in spent[3]["message"]
    mine = requests(gateway_for(other, public_plugin, monkeypatch), local_api, 3)
    assert [reply.get("status") for reply in mine] == [200, 200, 200], mine


@pytest.mark.django_db
def test_refused_requests_spend_nothing(make_org, public_plugin, local_api, settings, monkeypatch):
    settings.EGRESS_RATE_LIMIT_PER_MINUTE = 3
    tenant = make_org("tenant")
    gateway = gateway_for(tenant, public_plugin, monkeypatch)
    refused = requests(gateway, "http://not-allowlisted.example/", 5)
    refused += [gateway({"op": "http", "method": "TRACE", "url": local_api})]
    assert all(reply["kind"] == "denied" and "rate limit" not in reply["message"] for reply in refused), refused
    assert [reply.get("status") for reply in requests(gateway, local_api, 3)] == [200, 200, 200]


@pytest.mark.django_db(transaction=True)
def test_the_count_is_exact_when_workers_race(make_org, public_plugin):
    first, second = make_org("first"), make_org("second")
    barrier = threading.Barrier(16)

    def take(index):
        barrier.wait()
        try:
            return take_egress_slot((first, second)[index % 2].pk, "shared-fetcher", 5)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(take, range(16)))
    assert sum(taken[0::2]) == 5 and sum(taken[1::2]) == 5


@pytest.mark.slow
def test_through_the_api_one_tenant_cannot_exhaust_a_public_plugin(live, make_org, make_client, settings):
    """The cluster's own limit (EGRESS_RATE_LIMIT_PER_MINUTE, 10): one
    organization's run sends twelve requests the allowlist refuses; another
    organization's run of the same public plugin is then still served (and
    refused only by the allowlist, as its URL is not on it either)."""
    install_source("shared-fetcher", PUBLIC_PLUGIN,
                   {"fetchMany": {"handler": "fetch_many", "params": {"type": "object"}}},
                   network={"allowedDomains": ["api.example.com"]})
    refusals = {}
    for slug, count in (("greedy", settings.EGRESS_RATE_LIMIT_PER_MINUTE + 2), ("victim", 1)):
        response = make_client(make_org(slug)).post(
            "/execute", {"pluginId": "shared-fetcher", "actionName": "fetchMany",
                         "params": {"url": "http://not-allowlisted.example/", "count": count}}, format="json")
        assert response.status_code == 200, response.json()
        refusals[slug] = response.json()["result"]["refusals"]
    assert len(refusals["greedy"]) == settings.EGRESS_RATE_LIMIT_PER_MINUTE + 2
    for slug, messages in refusals.items():
        assert all("allowlist" in message for message in messages), json.dumps({slug: messages})
