"""check_url: strict URL parsing, allowlist, ports and IP literals, without DNS."""

from __future__ import annotations

import ipaddress

import pytest

from egress.errors import EgressDenied
from egress.fetch import fetch
from egress.policy import EgressPolicy
from egress.urls import check_url

from .helpers import LOCAL, STRICT, no_dns

# Every forbidden spelling is refused without DNS.
FORBIDDEN_URLS = [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0X7F.1/",
    "http://127.1/",
    "http://10.1/",
    "http://0x7f.0.0.01/",
    "http://127.0.0.1./",
    "http://127.0.0.1:80/",
    "https://127.0.0.1:443/",
    "http://１２７．０．０．１/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[::127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://[fd00:ec2::254]/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://127.0.0.1#@allowed.test/",
    "http://127.0.0.1?@allowed.test/",
    "HTTP://127.0.0.1/",
]


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_forbidden_url_spellings(url):
    with pytest.raises(EgressDenied) as info:
        check_url(STRICT, url)
    assert info.value.code == "forbidden_address"


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_forbidden_url_spellings_via_fetch(url, network_guard):
    with pytest.raises(EgressDenied):
        fetch(STRICT, "GET", url)
    assert network_guard.targets == []


INVALID_URLS = [
    ("http://allowed.test@127.0.0.1/", "invalid_url"),  # userinfo trick
    ("http://allowed.test:80@127.0.0.1/", "invalid_url"),
    ("http://user:pw@allowed.test/", "invalid_url"),
    ("http://allowed.test\\@127.0.0.1/", "invalid_url"),  # backslash
    ("http://127.0.0.1\\allowed.test/", "invalid_url"),
    ("http:\\\\allowed.test\\", "invalid_url"),
    ("http://%31%32%37.0.0.1/", "invalid_url"),  # percent-encoded host
    ("http://allowed%2etest/", "invalid_url"),
    ("http://allowed.test\t/", "invalid_url"),
    ("http://allowed.test\n.evil/", "invalid_url"),
    ("http://allowed.test\x00/", "invalid_url"),
    ("http://1.2.3.4.5/", "invalid_url"),  # ends in a number but not an address
    ("http://4294967296/", "invalid_url"),
    ("http://256.256.256.256/", "invalid_url"),
    ("http://08.0.0.1/", "invalid_url"),
    ("http://allowed.0x1/", "invalid_url"),
    ("http://[127.0.0.1]/", "invalid_url"),
    ("http://[::1/", "invalid_url"),
    ("http://[zz::1]/", "invalid_url"),
    ("http://::1/", "invalid_url"),
    ("http://allowed.test:0/", "invalid_url"),
    ("http://allowed.test:65536/", "invalid_url"),
    ("http://allowed.test:+80/", "invalid_url"),
    ("http://allowed.test:８０/", "invalid_url"),
    ("http://allowed.test:80:80/", "invalid_url"),
    ("http:///path", "invalid_url"),
    ("http://", "invalid_url"),
    ("http:allowed.test", "invalid_url"),
    ("http://a..allowed.test/", "invalid_url"),
    ("http://-x.allowed.test/", "invalid_url"),
    ("http://x y.allowed.test/", "invalid_url"),
    ("http://allowed.test" + "/a" * 5000, "invalid_url"),
    ("ftp://allowed.test/", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("gopher://allowed.test/", "scheme_not_allowed"),
    ("javascript:alert(1)", "scheme_not_allowed"),
    ("data:text/plain,hi", "scheme_not_allowed"),
    ("ws://allowed.test/", "scheme_not_allowed"),
    ("//allowed.test/", "scheme_not_allowed"),
    ("allowed.test/path", "scheme_not_allowed"),
    ("http://8.8.8.8/", "ip_literal_not_allowed"),  # public literal: still not allowed
    ("http://134744072/", "ip_literal_not_allowed"),
    ("http://[2606:4700:4700::1111]/", "ip_literal_not_allowed"),
    ("http://evil.test/", "domain_not_allowed"),
    ("http://allowed.test.evil.test/", "domain_not_allowed"),
    ("http://evilallowed.test/", "domain_not_allowed"),
    ("http://localhost/", "domain_not_allowed"),
    ("http://allowed.test:8080/", "port_not_allowed"),
    ("https://allowed.test:8443/", "port_not_allowed"),
    ("http://allowed.test:22/", "port_not_allowed"),
]


@pytest.mark.parametrize("url,code", INVALID_URLS)
def test_invalid_or_disallowed_urls(url, code):
    with pytest.raises(EgressDenied) as info:
        check_url(STRICT, url)
    assert info.value.code == code


VALID_URLS = [
    ("http://allowed.test/", "allowed.test", 80, "/"),
    ("http://allowed.test", "allowed.test", 80, "/"),
    ("https://allowed.test/a/b?c=d#frag", "allowed.test", 443, "/a/b?c=d"),
    ("HTTPS://ALLOWED.TEST./x", "allowed.test", 443, "/x"),
    ("http://allowed.test:80/", "allowed.test", 80, "/"),
    ("http://allowed.test:443/", "allowed.test", 443, "/"),
    ("https://allowed.test:80/", "allowed.test", 80, "/"),
    ("http://allowed.test:/", "allowed.test", 80, "/"),
    ("http://api.allowed.test/v1", "api.allowed.test", 80, "/v1"),
    ("http://a.b.allowed.test/", "a.b.allowed.test", 80, "/"),
    ("http://ＡＰＩ.allowed.test/", "api.allowed.test", 80, "/"),
    ("  http://allowed.test/x y?q=é  ", "allowed.test", 80, "/x%20y?q=%C3%A9"),
]


@pytest.mark.parametrize("url,host,port,path", VALID_URLS)
def test_valid_urls(url, host, port, path):
    target = check_url(STRICT, url)
    assert (target.host, target.port, target.path) == (host, port, path)
    assert target.ip is None


def test_check_url_canonical_form():
    target = check_url(STRICT, "HTTP://API.Allowed.Test.:443/p?q")
    assert target.url == "http://api.allowed.test:443/p?q"
    assert target.host_header == "api.allowed.test:443"


def test_permitted_address_literal_is_test_only_bypass():
    policy = EgressPolicy(allowed_domains=["allowed.test"], permitted_addresses=frozenset({LOCAL}), resolver=no_dns)
    assert check_url(policy, "http://127.0.0.1/").ip == ipaddress.ip_address(LOCAL)
    assert check_url(policy, "http://2130706433/").ip == ipaddress.ip_address(LOCAL)
    for url in ("http://127.0.0.2/", "http://[::ffff:127.0.0.1]/", "http://[::1]/"):
        with pytest.raises(EgressDenied) as info:
            check_url(policy, url)
        assert info.value.code == "forbidden_address"


def test_allow_any_port():
    policy = EgressPolicy(allowed_domains=["allowed.test"], allow_any_port=True, resolver=no_dns)
    assert check_url(policy, "http://allowed.test:8080/").port == 8080
