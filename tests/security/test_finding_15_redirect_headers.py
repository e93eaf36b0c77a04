"""Finding 15: a redirect to another origin carried the plugin's custom
credential headers along (only Authorization and Cookie were dropped).

An allowlisted API that redirects elsewhere (an open redirect, a CDN, a
domain that changed hands) would receive whatever key the plugin sent in,
say, `X-Api-Key`. Now nothing the plugin set follows a redirect to another
origin; on the same origin everything does. Two real listeners on 127.0.0.1,
each its own origin."""

from urllib.parse import quote

import pytest

from egress import fetch
from tests.egress.helpers import echo, local_policy, start_local_server

CREDENTIALS = {"X-Api-Key": "k-live-1234", "X-Auth-Token": "t-5678", "Private-Token": "p-9"}


@pytest.fixture
def two_origins():
    servers = [start_local_server()[0] for _ in range(2)]
    yield [server.server_address[1] for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", ["api.allowed.test", "allowed.test"])  # another host, or only another port
def test_custom_credential_headers_do_not_reach_another_origin(two_origins, host):
    api_port, other_port = two_origins
    elsewhere = quote(f"http://{host}:{other_port}/echo", safe="")
    response = fetch(local_policy(), "GET", f"http://allowed.test:{api_port}/redirect?to={elsewhere}",
                     headers=CREDENTIALS)
    assert response.url == f"http://{host}:{other_port}/echo"  # the other listener answered
    seen = echo(response)["headers"]
    leaked = {name for name in CREDENTIALS if name.lower() in seen}
    assert not leaked, f"{sorted(leaked)} reached {host}:{other_port}"


def test_a_same_origin_redirect_keeps_them(two_origins):
    api_port, _ = two_origins
    response = fetch(local_policy(), "GET", f"http://allowed.test:{api_port}/redirect?to=/echo", headers=CREDENTIALS)
    assert echo(response)["headers"]["x-api-key"] == "k-live-1234"
