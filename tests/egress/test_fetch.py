"""fetch end-to-end against a local ThreadingHTTPServer: methods, headers,
size caps, timeouts and connection failures."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from egress.errors import EgressDenied, EgressFailed
from egress.fetch import fetch

from .helpers import LOCAL, FakeResolver, echo, local_policy, no_dns


def test_get(server, network_guard):
    resolver = FakeResolver()
    resp = fetch(local_policy(resolver), "GET", f"http://allowed.test:{server}/echo?x=1")
    assert resp.status == 200
    assert resp.reason == "OK"
    data = echo(resp)
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
    data = echo(resp)
    assert data["method"] == "POST"
    assert data["body"].encode("latin-1").decode("utf-8") == '{"a": "é"}'
    assert data["headers"]["content-length"] == str(len('{"a": "é"}'.encode()))
    assert data["headers"]["x-plugin"] == "demo"
    assert data["headers"]["host"] == f"api.allowed.test:{server}"
    assert resp.bytes_sent == len('{"a": "é"}'.encode())


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods(server, method):
    resp = fetch(local_policy(), method, f"http://allowed.test:{server}/echo", body=b"data")
    assert echo(resp)["method"] == method


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
    seen = echo(resp)["headers"]
    assert seen["host"] == f"allowed.test:{server}"
    assert seen["content-length"] == "3"
    assert seen["connection"] == "close"
    for name in ("keep-alive", "proxy-authorization", "proxy-foo", "transfer-encoding", "upgrade", "te", "expect"):
        assert name not in seen
    assert seen["x-ok"] == "kept"
    assert seen["authorization"] == "Bearer t"
    assert echo(resp)["body"] == "abc"


def test_permitted_ip_literal(server, network_guard):
    resp = fetch(local_policy(resolver=no_dns), "GET", f"http://127.0.0.1:{server}/echo")
    assert resp.status == 200
    assert echo(resp)["headers"]["host"] == f"127.0.0.1:{server}"
    assert network_guard.targets == [LOCAL]


def test_port_policy_enforced_end_to_end(server):
    policy = local_policy(resolver=no_dns, allow_any_port=False)
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "GET", f"http://allowed.test:{server}/echo")
    assert info.value.code == "port_not_allowed"


def test_non_2xx_is_returned(server):
    resp = fetch(local_policy(), "GET", f"http://allowed.test:{server}/missing")
    assert resp.status == 404
    assert resp.body == b"not found"


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


# --- before_send (the caller's rate limit) ---------------------------------------


def test_before_send_runs_once_per_request_and_only_for_requests_sent(server, network_guard):
    calls = []
    fetch(local_policy(), "GET", f"http://allowed.test:{server}/redirect?to=/echo", before_send=lambda: calls.append(1))
    assert calls == [1]  # a redirect is the same request
    for method, url in (("TRACE", f"http://allowed.test:{server}/echo"), ("GET", "http://other.test/"),
                        ("GET", f"http://10.0.0.1:{server}/")):
        with pytest.raises(EgressDenied):
            fetch(local_policy(), method, url, before_send=lambda: calls.append(1))
    resolver = FakeResolver({"private.allowed.test": ["10.0.0.1"]})
    with pytest.raises(EgressDenied):
        fetch(local_policy(resolver), "GET", f"http://private.allowed.test:{server}/", before_send=lambda: calls.append(1))
    assert calls == [1]


def test_a_refusal_from_before_send_sends_nothing(server, network_guard):
    def over_the_limit():
        raise EgressDenied("rate limit", "rate_limited")

    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(), "GET", f"http://allowed.test:{server}/echo", before_send=over_the_limit)
    assert info.value.code == "rate_limited"
    assert network_guard.targets == []
