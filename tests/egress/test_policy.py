"""EgressPolicy: allowlist matching and normalisation, validation, default resolver."""

from __future__ import annotations

import socket

import pytest

from egress.hosts import normalize_domain_entry
from egress.policy import EgressPolicy, default_resolver

from .helpers import no_dns

ALLOWLIST = ["example.com", "*.api.example.org", "bücher.example", "Trailing.Dot.Test."]

MATCHES = [
    ("example.com", True),
    ("EXAMPLE.COM", True),
    ("example.com.", True),
    ("Example.Com.", True),
    ("www.example.com", False),
    ("example.com.evil.test", False),
    ("evil-example.com", False),
    ("xexample.com", False),
    ("api.example.org", False),  # wildcard matches subdomains only
    ("v1.api.example.org", True),
    ("A.B.API.EXAMPLE.ORG.", True),
    ("xapi.example.org", False),
    ("v1.api.example.org.evil.test", False),
    ("xn--bcher-kva.example", True),
    ("BÜCHER.example", True),
    ("bucher.example", False),
    ("trailing.dot.test", True),
    ("93.184.216.34", False),
    ("[::1]", False),
    ("2130706433", False),
    ("", False),
    ("exa mple.com", False),
]


@pytest.mark.parametrize("host,expected", MATCHES)
def test_allowlist_matching(host, expected):
    policy = EgressPolicy(allowed_domains=ALLOWLIST, resolver=no_dns)
    assert policy.allows_host(host) is expected


def test_allowlist_is_normalised():
    policy = EgressPolicy(allowed_domains=ALLOWLIST, resolver=no_dns)
    assert policy.allowed_domains == ("example.com", "*.api.example.org", "xn--bcher-kva.example", "trailing.dot.test")


@pytest.mark.parametrize(
    "entry",
    ["*", "*.com", "exa*mple.com", "*example.com", "**.example.com", "127.0.0.1", "2130706433", "[::1]", "::1",
     "http://example.com", "example.com:8080", "example.com/path", "", "  ", "1.2.3.4.5", "a..b", None, 5],
)
def test_invalid_allowlist_entries(entry):
    with pytest.raises((ValueError, TypeError)):
        normalize_domain_entry(entry)
    with pytest.raises((ValueError, TypeError)):
        EgressPolicy(allowed_domains=[entry])


def test_allowed_domains_must_not_be_a_string():
    with pytest.raises(TypeError):
        EgressPolicy(allowed_domains="example.com")


def test_policy_validation():
    with pytest.raises(ValueError):
        EgressPolicy(permitted_addresses=frozenset({"not-an-ip"}))
    with pytest.raises(ValueError):
        EgressPolicy(timeout_seconds=0)
    with pytest.raises(ValueError):
        EgressPolicy(max_redirects=-1)
    with pytest.raises(ValueError):
        EgressPolicy(max_response_bytes=-5)
    policy = EgressPolicy()
    assert policy.max_response_bytes == 1024 * 1024
    assert policy.max_request_bytes == 1024 * 1024
    assert policy.timeout_seconds == 10
    assert policy.max_redirects == 3
    assert policy.permitted_addresses == frozenset()
    assert policy.allow_any_port is False
    assert policy.resolver is default_resolver


def test_default_resolver_uses_absolute_name(monkeypatch):
    seen = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        seen.append(host)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert default_resolver("example.com", 443) == ["93.184.216.34", "2606:2800:220:1::"]
    assert seen == ["example.com."]
