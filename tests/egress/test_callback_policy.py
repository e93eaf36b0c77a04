"""The policy options the engine's callbacks use: any public host instead of
an allowlist, operator-trusted hosts whose addresses are not checked, and a
response body cut at its cap instead of refused."""

from __future__ import annotations

import pytest

from egress.errors import EgressDenied, EgressFailed
from egress.fetch import fetch, resolve_url
from egress.policy import EgressPolicy
from egress.urls import check_url

from .helpers import LOCAL, FakeResolver, no_dns


def callback_policy(resolver=no_dns, **overrides):
    return EgressPolicy(any_public_host=True, allow_any_port=True, resolver=resolver, timeout_seconds=5, **overrides)


@pytest.mark.parametrize("url", ["https://hooks.example.com/runs", "http://93.184.216.34:8080/hook",
                                 "https://[2606:2800:220:1:248:1893:25c8:1946]/hook"])
def test_any_public_host_or_address_may_be_named(url):
    assert check_url(callback_policy(), url).path.startswith("/")


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://[::1]/hook",
                                 "http://169.254.169.254/", "http://0x7f000001/hook"])
def test_private_literals_are_still_refused(url):
    with pytest.raises(EgressDenied) as refused:
        check_url(callback_policy(), url)
    assert refused.value.code == "forbidden_address"


def test_a_name_resolving_to_a_private_address_is_refused_before_connecting(server, network_guard):
    with pytest.raises(EgressDenied) as refused:
        fetch(callback_policy(FakeResolver({"hooks.example.com": [LOCAL]})), "POST",
              f"http://hooks.example.com:{server}/echo", body=b"{}")
    assert refused.value.code == "forbidden_address"
    assert network_guard.targets == []


@pytest.mark.parametrize("trusted, host", [("127.0.0.1", LOCAL), ("receiver.internal", "receiver.internal"),
                                           ("Receiver.Internal.", "receiver.internal")])
def test_a_trusted_host_may_be_private(server, trusted, host):
    policy = callback_policy(FakeResolver({"receiver.internal": [LOCAL]}), trusted_hosts=[trusted])
    response = fetch(policy, "POST", f"http://{host}:{server}/echo", body=b"{}")
    assert response.status == 200 and response.resolved_ip == LOCAL


def test_trust_is_for_the_host_named_not_for_its_address(server):
    policy = callback_policy(FakeResolver({"other.internal": [LOCAL]}), trusted_hosts=["receiver.internal"])
    with pytest.raises(EgressDenied):
        fetch(policy, "POST", f"http://other.internal:{server}/echo", body=b"{}")


@pytest.mark.parametrize("mode", ["length", "close", "chunked"])
def test_a_truncated_response_is_cut_at_its_cap(server, mode):
    policy = callback_policy(trusted_hosts=[LOCAL], max_response_bytes=100, truncate_response=True)
    response = fetch(policy, "GET", f"http://{LOCAL}:{server}/big?n=5000&mode={mode}")
    assert response.status == 200 and len(response.body) == 100


def test_resolve_url_makes_fetch_s_checks_without_connecting(network_guard):
    policy = callback_policy(FakeResolver({"hooks.example.com": ["93.184.216.34"], "inside.example.com": ["10.0.0.9"]}))
    assert [str(ip) for ip in resolve_url(policy, "https://hooks.example.com/runs")] == ["93.184.216.34"]
    with pytest.raises(EgressDenied) as refused:
        resolve_url(policy, "https://inside.example.com/runs")
    assert refused.value.code == "forbidden_address"
    with pytest.raises(EgressFailed):
        resolve_url(policy, "https://unknown.example.com/runs")
    assert network_guard.targets == []
