"""HTTPS: TCP to the pinned IP, SNI and certificate check on the host name."""

from __future__ import annotations

import pytest

from egress.errors import EgressFailed
from egress.fetch import fetch

from .helpers import LOCAL, echo, local_policy


def test_https_pinned_connection_verifies_hostname(tls_server, network_guard):
    port, client_ctx, sni_seen = tls_server
    resp = fetch(local_policy(ssl_context=client_ctx), "GET", f"https://allowed.test:{port}/echo")
    assert resp.status == 200
    assert echo(resp)["headers"]["host"] == f"allowed.test:{port}"
    assert sni_seen[-1] == "allowed.test"
    assert resp.resolved_ip == LOCAL
    assert network_guard.targets == [LOCAL]


def test_https_certificate_for_other_name_fails(tls_server):
    port, client_ctx, _ = tls_server
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(ssl_context=client_ctx), "GET", f"https://api.allowed.test:{port}/echo")
    assert info.value.code == "tls_error"


def test_https_untrusted_certificate_fails(tls_server):
    port, _, _ = tls_server
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", f"https://allowed.test:{port}/echo")  # system CAs only
    assert info.value.code == "tls_error"


def test_https_to_plain_http_server_fails(server):
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", f"https://allowed.test:{server}/echo")
    assert info.value.code == "tls_error"
