"""Tests for executions/egress.py (pure Python, no Django).

Run: cd /work/main && .venv/bin/python -m pytest tests/test_egress.py -q -p no:django

Network safety: every test talks only to servers it starts on 127.0.0.1.
Resolvers are fakes.  An autouse fixture makes any socket connect() to a
destination other than 127.0.0.1, and any real getaddrinfo() of a non-literal
name, fail the test loudly.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from egress import (  # noqa: E402
    EgressDenied,
    EgressFailed,
    EgressPolicy,
    check_url,
    default_resolver,
    fetch,
    is_forbidden_address,
    normalize_domain_entry,
    parse_ip_literal,
)

LOCAL = "127.0.0.1"


# ---------------------------------------------------------------------------
# Network guard
# ---------------------------------------------------------------------------


class _ConnectLog:
    def __init__(self):
        self.targets = []


@pytest.fixture(autouse=True)
def network_guard(monkeypatch):
    """Fail the test if anything tries to reach an address other than 127.0.0.1."""
    log = _ConnectLog()
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        log.targets.append(host)
        if host != LOCAL:
            raise AssertionError(f"test attempted to connect to {host!r}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in (LOCAL, None):
            raise AssertionError(f"test attempted a real DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: (_ for _ in ()).throw(AssertionError("connect_ex")))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return log


# ---------------------------------------------------------------------------
# Test HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn() (a possible reverse DNS query).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-response is expected in these tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=(), content_length=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = parts.path

        if route == "/echo":
            payload = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            self._send(200, json.dumps(payload).encode(), [("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")])
        elif route == "/redirect":
            self._send(int(query.get("code", "302")), b"redirecting", [("Location", query["to"])])
        elif route == "/loop":
            self._send(302, b"", [("Location", "/loop")])
        elif route == "/big":
            n = int(query["n"])
            if query.get("mode") == "close":  # no Content-Length, body ends at close
                self._send(200, b"x" * n, content_length=False)
            elif query.get("mode") == "chunked":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                remaining = n
                while remaining:
                    size = min(remaining, 1000)
                    self.wfile.write(b"%x\r\n" % size + b"y" * size + b"\r\n")
                    remaining -= size
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._send(200, b"z" * n)
        elif route == "/lying-length":  # declares more than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
        elif route == "/slow":
            time.sleep(float(query.get("delay", "3")))
            self._send(200, b"late")
        elif route == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            for _ in range(100):
                try:
                    self.wfile.write(b".")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def _start_server(ssl_context=None):
    server = _Server((LOCAL, 0), _Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def server():
    srv, thread = _start_server()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


class FakeResolver:
    """host -> list of IPs (or a callable producing them per call)."""

    def __init__(self, mapping=None):
        self.mapping = {
            "allowed.test": [LOCAL],
            "api.allowed.test": [LOCAL],
            "other.test": [LOCAL],
        }
        self.mapping.update(mapping or {})
        self.calls = []

    def __call__(self, host, port):
        self.calls.append(host)
        answer = self.mapping.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if callable(answer):
            return answer()
        return list(answer)


def local_policy(resolver=None, **overrides):
    settings = dict(
        allowed_domains=["allowed.test", "*.allowed.test"],
        permitted_addresses=frozenset({LOCAL}),
        allow_any_port=True,
        resolver=resolver or FakeResolver(),
        timeout_seconds=5,
    )
    settings.update(overrides)
    return EgressPolicy(**settings)


def _no_dns(host, port):
    raise AssertionError(f"resolver must not be called (host={host!r})")


STRICT = EgressPolicy(allowed_domains=["allowed.test", "*.allowed.test"], resolver=_no_dns)


def _echo(resp):
    data = json.loads(resp.body)
    data["headers"] = {k.lower(): v for k, v in data["headers"]}
    return data


# ---------------------------------------------------------------------------
# is_forbidden_address
# ---------------------------------------------------------------------------

FORBIDDEN_ADDRESSES = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
    "127.0.0.1", "127.255.255.254", "169.254.0.1", "169.254.169.254", "172.16.0.1",
    "172.31.255.255", "192.0.0.1", "192.0.0.170", "192.0.2.1", "192.88.99.1", "192.168.0.1",
    "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1",
    "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fc00::1", "fd00::1", "fd00:ec2::254", "fe80::1", "febf::1", "fec0::1",
    "ff02::1", "ff0e::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "::ffff:0:0",
    "::127.0.0.1", "::8.8.8.8",  # IPv4-compatible (deprecated) -- whole ::/96
    "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1",
    "64:ff9b:1::1",
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:0808:0808::1",  # 6to4: whole range refused
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1",  # Teredo
    "2001:db8::1", "3fff::1", "100::1", "::ffff:0:a00:1",
]

ALLOWED_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0",
    "172.15.255.255", "172.32.0.0", "192.167.255.255", "198.17.255.255", "223.255.255.255",
    "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public -> judged by the mapped address
    "64:ff9b::808:808",  # NAT64 of a public address
]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
def test_forbidden_addresses(address):
    assert is_forbidden_address(ipaddress.ip_address(address)) is True
    assert is_forbidden_address(address) is True


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_public_addresses_allowed(address):
    assert is_forbidden_address(ipaddress.ip_address(address)) is False


def test_scoped_ipv6_is_forbidden():
    assert is_forbidden_address(ipaddress.IPv6Address("2606:4700:4700::1111%eth0")) is True


# ---------------------------------------------------------------------------
# parse_ip_literal
# ---------------------------------------------------------------------------

IP_SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # decimal
    ("2130706433.", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),  # octal
    ("0177.0000.0000.0001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),  # hex + short
    ("0x7f000001", "127.0.0.1"),
    ("0X7F.0X0.0X0.0X1", "127.0.0.1"),  # uppercase
    ("0x7f.0.0.01", "127.0.0.1"),  # mixed
    ("0177.0x0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),  # short forms
    ("127.0.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("１２７．０．０．１", "127.0.0.1"),  # full-width digits and dots (IDNA)
    ("127.0.0.1 evil.test", "127.0.0.1"),  # glibc inet_aton stops at whitespace
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[::]", "::"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),  # IPv4-mapped, dotted
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),  # IPv4-mapped, hex
    ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"),
    ("[fe80::1%25eth0]", "fe80::1"),  # zone id, URL-encoded
    ("fe80::1%eth0", "fe80::1"),
    ("[FD00:EC2::254]", "fd00:ec2::254"),
]

NOT_IP = [
    "allowed.test", "example.com", "1.2.3.4.5", "4294967296", "256.1.1.1", "08.0.0.1",
    "0x1g", "1..2", ".1", "", "[::1", "[:::1]", "1_000", "+1", "127.0.0.1x", "١٢٧.0.0.1",
    "::ffff:0177.0.0.1", "a.0x7f",
]


@pytest.mark.parametrize("text,expected", IP_SPELLINGS)
def test_parse_ip_literal_spellings(text, expected):
    assert parse_ip_literal(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("text", NOT_IP)
def test_parse_ip_literal_rejects(text):
    assert parse_ip_literal(text) is None


# ---------------------------------------------------------------------------
# check_url: every forbidden spelling is refused without DNS
# ---------------------------------------------------------------------------

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
    policy = EgressPolicy(allowed_domains=["allowed.test"], permitted_addresses=frozenset({LOCAL}), resolver=_no_dns)
    assert check_url(policy, "http://127.0.0.1/").ip == ipaddress.ip_address(LOCAL)
    assert check_url(policy, "http://2130706433/").ip == ipaddress.ip_address(LOCAL)
    for url in ("http://127.0.0.2/", "http://[::ffff:127.0.0.1]/", "http://[::1]/"):
        with pytest.raises(EgressDenied) as info:
            check_url(policy, url)
        assert info.value.code == "forbidden_address"


def test_allow_any_port():
    policy = EgressPolicy(allowed_domains=["allowed.test"], allow_any_port=True, resolver=_no_dns)
    assert check_url(policy, "http://allowed.test:8080/").port == 8080


# ---------------------------------------------------------------------------
# Allowlist matching
# ---------------------------------------------------------------------------

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
    policy = EgressPolicy(allowed_domains=ALLOWLIST, resolver=_no_dns)
    assert policy.allows_host(host) is expected


def test_allowlist_is_normalised():
    policy = EgressPolicy(allowed_domains=ALLOWLIST, resolver=_no_dns)
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


# ---------------------------------------------------------------------------
# Request validation (no network)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "GET /x", "", None, 1])
def test_methods_refused(method):
    with pytest.raises(EgressDenied) as info:
        fetch(STRICT, method, "http://allowed.test/")
    assert info.value.code == "method_not_allowed"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Bad": "a\r\nInjected: 1"},
        {"X-Bad": "a\nb"},
        {"X-Bad": "a\x00b"},
        {"Bad Name": "x"},
        {"Bad:Name": "x"},
        {"": "x"},
        {"X-Bad": "snowman \u2603"},
        {"X-Bad": ["list"]},
        {f"X-H{i}": "v" for i in range(100)},
        {"X-Big": "v" * 9000},
        {f"X-H{i}": "v" * 8000 for i in range(5)},
        [("only-one",)],
        "not headers",
    ],
)
def test_bad_headers_refused(headers):
    with pytest.raises(EgressDenied) as info:
        fetch(STRICT, "GET", "http://allowed.test/", headers=headers)
    assert info.value.code == "invalid_header"


def test_request_body_cap_checked_before_network():
    policy = EgressPolicy(allowed_domains=["allowed.test"], resolver=_no_dns, max_request_bytes=10)
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "POST", "http://allowed.test/", body=b"x" * 11)
    assert info.value.code == "request_too_large"
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "POST", "http://allowed.test/", body={"not": "bytes"})
    assert info.value.code == "invalid_body"


# ---------------------------------------------------------------------------
# DNS checks (fake resolvers; nothing is contacted unless the answer is 127.0.0.1)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["0.0.0.0"],
        ["::"],
        ["127.0.0.2"],
        ["::1"],
        ["::ffff:127.0.0.1"],  # mapped form of the permitted address is NOT permitted
        ["64:ff9b::a9fe:a9fe"],
        ["100.64.0.1"],
        ["8.8.8.8", "10.0.0.1"],  # public + private mix (rebinding)
        ["10.0.0.1", "8.8.8.8"],
        [LOCAL, "192.168.1.10"],  # permitted + private mix
        ["fe80::1%eth0"],
    ],
)
def test_resolved_forbidden_addresses_refused(answers, network_guard):
    resolver = FakeResolver({"internal.allowed.test": answers})
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(resolver), "GET", "http://internal.allowed.test/")
    assert info.value.code == "forbidden_address"
    # The message names the host but does not leak the resolved address.
    assert "internal.allowed.test" in str(info.value)
    for answer in answers:
        if answer != LOCAL:
            assert answer not in str(info.value)
    assert network_guard.targets == []


def test_strict_policy_refuses_loopback_answer(network_guard):
    policy = EgressPolicy(allowed_domains=["localhost", "allowed.test"], resolver=FakeResolver({"localhost": [LOCAL]}))
    for url in ("http://localhost/", "http://allowed.test/"):
        with pytest.raises(EgressDenied) as info:
            fetch(policy, "GET", url)
        assert info.value.code == "forbidden_address"
    assert network_guard.targets == []


@pytest.mark.parametrize("answers", [[], ["not-an-ip"], "127.0.0.1", None])
def test_bad_resolver_answers_fail(answers, network_guard):
    policy = local_policy(lambda host, port: answers)
    with pytest.raises(EgressFailed) as info:
        fetch(policy, "GET", "http://allowed.test/")
    assert info.value.code == "dns_failure"
    assert network_guard.targets == []


def test_dns_failure():
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", "http://nxdomain.allowed.test/")
    assert info.value.code == "dns_failure"
    assert "Name or service" not in str(info.value)


def test_hanging_resolver_times_out():
    def slow(host, port):
        time.sleep(2)
        return [LOCAL]

    started = time.monotonic()
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(slow, timeout_seconds=0.3), "GET", "http://allowed.test/")
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 1.5


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


# ---------------------------------------------------------------------------
# End-to-end against a local ThreadingHTTPServer
# ---------------------------------------------------------------------------


def test_get(server, network_guard):
    resolver = FakeResolver()
    resp = fetch(local_policy(resolver), "GET", f"http://allowed.test:{server}/echo?x=1")
    assert resp.status == 200
    assert resp.reason == "OK"
    data = _echo(resp)
    assert data["method"] == "GET"
    assert data["path"] == "/echo?x=1"
    assert data["headers"]["host"] == f"allowed.test:{server}"
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-multi"] == "a, b"
    assert resp.resolved_ip == LOCAL
    assert resp.url == f"http://allowed.test:{server}/echo?x=1"
    assert resp.redirects == 0
    assert resp.bytes_received == len(resp.body)
    assert resp.duration_ms >= 0
    assert resolver.calls == ["allowed.test"]
    assert network_guard.targets == [LOCAL]


def test_post(server):
    resp = fetch(
        local_policy(),
        "post",
        f"http://api.allowed.test:{server}/echo",
        headers={"Content-Type": "application/json", "X-Plugin": "demo"},
        body='{"a": "é"}',
    )
    assert resp.status == 200
    data = _echo(resp)
    assert data["method"] == "POST"
    assert data["body"].encode("latin-1").decode("utf-8") == '{"a": "é"}'
    assert data["headers"]["content-length"] == str(len('{"a": "é"}'.encode()))
    assert data["headers"]["x-plugin"] == "demo"
    assert data["headers"]["host"] == f"api.allowed.test:{server}"
    assert resp.bytes_sent == len('{"a": "é"}'.encode())


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods(server, method):
    resp = fetch(local_policy(), method, f"http://allowed.test:{server}/echo", body=b"data")
    assert _echo(resp)["method"] == method


def test_head(server):
    resp = fetch(local_policy(), "HEAD", f"http://allowed.test:{server}/echo")
    assert resp.status == 200
    assert resp.body == b""


def test_headers_are_sanitised(server):
    headers = [
        ("Host", "evil.test"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Foo", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "999"),
        ("Upgrade", "websocket"),
        ("TE", "trailers"),
        ("Expect", "100-continue"),
        ("X-Ok", "  kept  "),
        ("Authorization", "Bearer t"),
    ]
    resp = fetch(local_policy(), "POST", f"http://allowed.test:{server}/echo", headers=headers, body=b"abc")
    seen = _echo(resp)["headers"]
    assert seen["host"] == f"allowed.test:{server}"
    assert seen["content-length"] == "3"
    assert seen["connection"] == "close"
    for name in ("keep-alive", "proxy-authorization", "proxy-foo", "transfer-encoding", "upgrade", "te", "expect"):
        assert name not in seen
    assert seen["x-ok"] == "kept"
    assert seen["authorization"] == "Bearer t"
    assert _echo(resp)["body"] == "abc"


def test_permitted_ip_literal(server, network_guard):
    resp = fetch(local_policy(resolver=_no_dns), "GET", f"http://127.0.0.1:{server}/echo")
    assert resp.status == 200
    assert _echo(resp)["headers"]["host"] == f"127.0.0.1:{server}"
    assert network_guard.targets == [LOCAL]


def test_port_policy_enforced_end_to_end(server):
    policy = local_policy(resolver=_no_dns, allow_any_port=False)
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "GET", f"http://allowed.test:{server}/echo")
    assert info.value.code == "port_not_allowed"


def test_non_2xx_is_returned(server):
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/missing")
    assert resp.status == 404
    assert resp.body == b"not found"


# --- redirects --------------------------------------------------------------


def test_relative_redirect_followed(server):
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/redirect?to=/echo%3Fr%3D1")
    assert resp.status == 200
    assert resp.redirects == 1
    assert resp.url == f"http://allowed.test:{server}/echo?r=1"
    assert _echo(resp)["path"] == "/echo?r=1"


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
    from urllib.parse import quote

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
        from urllib.parse import quote

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
    data = _echo(resp)
    assert data["method"] == expected_method
    assert data["body"] == ("payload" if body_kept else "")
    assert ("content-type" in data["headers"]) is body_kept


def test_cross_origin_redirect_drops_credentials(server):
    target = f"http://api.allowed.test:{server}/echo"
    resp = fetch(
        local_policy(),
        "GET",
        f"http://allowed.test:{server}/redirect?to={target}",
        headers={"Authorization": "Bearer secret", "Cookie": "s=1", "X-Keep": "1"},
    )
    seen = _echo(resp)["headers"]
    assert "authorization" not in seen and "cookie" not in seen
    assert seen["x-keep"] == "1"


def test_same_origin_redirect_keeps_credentials(server):
    resp = fetch(
        local_policy(),
        "GET",
        f"http://allowed.test:{server}/redirect?to=/echo",
        headers={"Authorization": "Bearer secret"},
    )
    assert _echo(resp)["headers"]["authorization"] == "Bearer secret"


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


# --- size caps ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["length", "close", "chunked"])
def test_response_over_cap_refused(server, mode):
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(max_response_bytes=1000), "GET", f"http://allowed.test:{server}/big?n=5000&mode={mode}")
    assert info.value.code == "response_too_large"


@pytest.mark.parametrize("mode", ["length", "close", "chunked"])
def test_response_at_cap_allowed(server, mode):
    resp = fetch(local_policy(max_response_bytes=3000), "GET", f"http://allowed.test:{server}/big?n=3000&mode={mode}")
    assert len(resp.body) == 3000
    assert resp.bytes_received == 3000


def test_default_cap_is_one_mib(server):
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(), "GET", f"http://allowed.test:{server}/big?n={1024 * 1024 + 1}&mode=close")
    assert info.value.code == "response_too_large"


def test_truncated_response_fails(server):
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", f"http://allowed.test:{server}/lying-length")
    assert info.value.code == "protocol_error"


# --- timeouts and connection failures -------------------------------------------


def test_slow_server_times_out(server):
    started = time.monotonic()
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(timeout_seconds=0.5), "GET", f"http://allowed.test:{server}/slow?delay=3")
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2.0


def test_trickling_body_hits_total_budget(server):
    started = time.monotonic()
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(timeout_seconds=1.0), "GET", f"http://allowed.test:{server}/trickle")
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2.5


def test_timeout_budget_spans_redirects(server):
    # Redirect is fast, the target is slow; the total budget still applies.
    started = time.monotonic()
    with pytest.raises(EgressFailed) as info:
        fetch(
            local_policy(timeout_seconds=0.6),
            "GET",
            f"http://allowed.test:{server}/redirect?to=/slow%3Fdelay%3D3",
        )
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2.0


def test_connection_refused():
    sock = socket.socket()
    sock.bind((LOCAL, 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", f"http://allowed.test:{port}/")
    assert info.value.code == "connect_failed"
    assert LOCAL not in str(info.value)


def test_invalid_http_response():
    listener = socket.socket()
    listener.bind((LOCAL, 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"this is not HTTP\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(EgressFailed) as info:
            fetch(local_policy(), "GET", f"http://allowed.test:{port}/")
        assert info.value.code == "protocol_error"
    finally:
        thread.join(2)
        listener.close()


# --- HTTPS: TCP to the pinned IP, SNI + certificate check on the host name -------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=allowed.test", "-addext", "subjectAltName=DNS:allowed.test"],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(cert), str(key))
    sni_seen = []
    server_ctx.sni_callback = lambda sslsock, name, ctx: sni_seen.append(name)
    srv, _thread = _start_server(server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield srv.server_address[1], client_ctx, sni_seen
    srv.shutdown()
    srv.server_close()


def test_https_pinned_connection_verifies_hostname(tls_server, network_guard):
    port, client_ctx, sni_seen = tls_server
    resp = fetch(local_policy(ssl_context=client_ctx), "GET", f"https://allowed.test:{port}/echo")
    assert resp.status == 200
    assert _echo(resp)["headers"]["host"] == f"allowed.test:{port}"
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


# ---------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------


def test_module_has_no_django_dependency():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('egress_isolated', {str(ROOT / 'egress' / '__init__.py')!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['egress_isolated'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'requests'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=30)
