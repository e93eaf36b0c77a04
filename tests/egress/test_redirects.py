"""Redirects: every hop is re-checked; method, body and credential handling;
DNS rebinding between and across requests."""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest

from egress.errors import EgressDenied
from egress.fetch import fetch

from .helpers import LOCAL, FakeResolver, echo, local_policy


def test_relative_redirect_followed(server):
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/redirect?to=/echo%3Fr%3D1")
    assert resp.status == 200
    assert resp.redirects == 1
    assert resp.url == f"http://allowed.test:{server}/echo?r=1"
    assert echo(resp)["path"] == "/echo?r=1"


def test_redirect_to_other_allowed_domain_followed_and_rechecked(server):
    resolver = FakeResolver()
    target = f"http://api.allowed.test:{server}/echo"
    resp = fetch(local_policy(resolver), "GET", f"http://allowed.test:{server}/redirect?to={target}")
    assert resp.url == target
    assert resolver.calls == ["allowed.test", "api.allowed.test"]  # DNS re-checked per hop


@pytest.mark.parametrize(
    "location,code",
    [
        ("http://127.0.0.2:{port}/echo", "forbidden_address"),
        ("http://2130706434:{port}/echo", "forbidden_address"),  # 127.0.0.2, decimal
        ("http://[::1]:{port}/echo", "forbidden_address"),
        ("http://[::ffff:127.0.0.1]:{port}/echo", "forbidden_address"),
        ("http://169.254.169.254/latest/meta-data/", "forbidden_address"),
        ("http://0x7f.2:{port}/echo", "forbidden_address"),
        ("http://other.test:{port}/echo", "domain_not_allowed"),
        ("//other.test:{port}/echo", "domain_not_allowed"),
        ("http://allowed.test@127.0.0.2:{port}/", "invalid_url"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://allowed.test/", "scheme_not_allowed"),
        ("http://8.8.8.8/", "ip_literal_not_allowed"),
    ],
)
def test_redirect_targets_refused(server, network_guard, location, code):
    resolver = FakeResolver()
    location = location.format(port=server)
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(resolver), "GET", f"http://allowed.test:{server}/redirect?to={quote(location, safe='')}")
    assert info.value.code == code
    assert str(info.value).startswith("redirect refused")
    assert "other.test" not in resolver.calls
    assert network_guard.targets == [LOCAL]  # only the first hop was contacted


def test_redirect_to_domain_resolving_to_private_ip_refused(server, network_guard):
    resolver = FakeResolver({"internal.allowed.test": ["10.1.2.3"]})
    with pytest.raises(EgressDenied) as info:
        fetch(
            local_policy(resolver),
            "GET",
            f"http://allowed.test:{server}/redirect?to=http://internal.allowed.test:{server}/",
        )
    assert info.value.code == "forbidden_address"
    assert network_guard.targets == [LOCAL]


def test_too_many_redirects(server):
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(), "GET", f"http://allowed.test:{server}/loop")
    assert info.value.code == "too_many_redirects"
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(max_redirects=0), "GET", f"http://allowed.test:{server}/redirect?to=/echo")
    assert info.value.code == "too_many_redirects"


def test_redirect_limit_boundary(server):
    # Exactly max_redirects hops is fine.
    chain = "/echo"
    for _ in range(3):
        chain = "/redirect?to=" + quote(chain, safe="")
    resp = fetch(local_policy(max_redirects=3), "GET", f"http://allowed.test:{server}{chain}")
    assert resp.status == 200 and resp.redirects == 3


@pytest.mark.parametrize(
    "code,method,expected_method,body_kept",
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (303, "HEAD", "HEAD", False),
        (307, "POST", "POST", True),
        (308, "PUT", "PUT", True),
        (302, "PUT", "PUT", True),
    ],
)
def test_redirect_method_semantics(server, code, method, expected_method, body_kept):
    resp = fetch(
        local_policy(),
        method,
        f"http://allowed.test:{server}/redirect?code={code}&to=/echo",
        headers={"Content-Type": "text/plain"},
        body=b"payload",
    )
    assert resp.redirects == 1
    if expected_method == "HEAD":
        assert resp.body == b""
        return
    data = echo(resp)
    assert data["method"] == expected_method
    assert data["body"] == ("payload" if body_kept else "")
    assert ("content-type" in data["headers"]) is body_kept


PLUGIN_HEADERS = {"Authorization": "Bearer secret", "Cookie": "s=1", "X-Api-Key": "k-123", "Accept": "text/plain"}


def test_cross_origin_redirect_drops_every_plugin_header(server):
    target = f"http://api.allowed.test:{server}/echo"
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/redirect?to={target}", headers=PLUGIN_HEADERS)
    seen = echo(resp)["headers"]
    assert not {name.lower() for name in PLUGIN_HEADERS} & set(seen), seen


def test_headers_stay_dropped_when_a_later_hop_comes_back(server):
    back = quote(f"http://allowed.test:{server}/echo", safe="")
    away = quote(f"http://api.allowed.test:{server}/redirect?to={back}", safe="")
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/redirect?to={away}", headers=PLUGIN_HEADERS)
    assert resp.redirects == 2
    assert "x-api-key" not in echo(resp)["headers"]


def test_downgrade_to_http_on_the_same_host_drops_every_plugin_header(server, tls_server):
    port, client_ctx, _ = tls_server
    target = quote(f"http://allowed.test:{server}/echo", safe="")
    resp = fetch(local_policy(ssl_context=client_ctx), "GET", f"https://allowed.test:{port}/redirect?to={target}",
                 headers=PLUGIN_HEADERS)
    assert resp.url == f"http://allowed.test:{server}/echo"
    assert not {name.lower() for name in PLUGIN_HEADERS} & set(echo(resp)["headers"])


def test_same_origin_redirect_keeps_credentials(server):
    resp = fetch(
        local_policy(),
        "GET",
        f"http://allowed.test:{server}/redirect?to=/echo",
        headers={"Authorization": "Bearer secret"},
    )
    assert echo(resp)["headers"]["authorization"] == "Bearer secret"


# --- rebinding ----------------------------------------------------------------


def test_dns_rebinding_connects_to_checked_address_only(server, network_guard, monkeypatch):
    """First answer is the (permitted) address, later answers are private.

    The broker must resolve once per hop, check, and connect to exactly the
    checked address -- never re-resolve when connecting.
    """
    answers = iter([[LOCAL], ["10.0.0.1"], ["169.254.169.254"]])
    resolver = FakeResolver({"rebind.allowed.test": lambda: next(answers)})

    def no_system_dns(*args, **kwargs):
        raise AssertionError("connection layer re-resolved the host name")

    monkeypatch.setattr(socket, "getaddrinfo", no_system_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_system_dns)
    resp = fetch(local_policy(resolver), "GET", f"http://rebind.allowed.test:{server}/echo")
    assert resp.status == 200
    assert resp.resolved_ip == LOCAL
    assert resolver.calls == ["rebind.allowed.test"]
    assert network_guard.targets == [LOCAL]
    # The next request sees the rebound (private) answer and is refused.
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(resolver), "GET", f"http://rebind.allowed.test:{server}/echo")
    assert info.value.code == "forbidden_address"
    assert network_guard.targets == [LOCAL]


def test_redirect_to_same_host_after_rebinding_refused(server, network_guard):
    answers = iter([[LOCAL], ["192.168.0.10"]])
    resolver = FakeResolver({"rebind.allowed.test": lambda: next(answers)})
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(resolver), "GET", f"http://rebind.allowed.test:{server}/redirect?to=/echo")
    assert info.value.code == "forbidden_address"
    assert network_guard.targets == [LOCAL]
