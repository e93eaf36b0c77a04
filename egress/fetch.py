"""One plugin HTTP request under a policy (:func:`fetch`): DNS checks, the
pinned connection, size caps, the deadline and redirects."""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Union
from urllib.parse import urljoin

from .connection import (
    PinnedHTTPConnection,
    PinnedHTTPSConnection,
    Watchdog,
    default_ssl_context,
)
from .errors import EgressDenied, EgressError, EgressFailed
from .policy import EgressPolicy
from .request import check_method, coerce_body, sanitize_headers
from .urls import TargetURL, check_url

__all__ = ["EgressResponse", "fetch", "resolve_url"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_RESOLVED_ADDRESSES = 32
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class EgressResponse:
    status: int
    reason: str
    headers: dict  # lower-case names; repeated headers joined with ", "
    body: bytes
    url: str  # final URL after redirects (canonical form)
    resolved_ip: str  # address actually connected to for the final hop
    bytes_received: int  # len(body)
    bytes_sent: int  # request body bytes sent, summed over all hops
    duration_ms: int
    redirects: int


def _timeout_error(policy: EgressPolicy, host: str) -> EgressFailed:
    return EgressFailed(f"request to {host!r} timed out after {policy.timeout_seconds:g}s", "timeout")


def _call_with_deadline(func, args, timeout: float):
    result: dict = {}

    def runner():
        try:
            result["value"] = func(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=runner, name="egress-resolve", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise TimeoutError("resolver timed out")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _resolve(policy: EgressPolicy, target: TargetURL, deadline: float) -> list:
    """Checked addresses for ``target``; refuses if ANY answer is forbidden."""
    if target.ip is not None:
        return [target.ip]  # literal, already checked by check_url
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout_error(policy, target.host)
    try:
        answers = _call_with_deadline(policy.resolver, (target.host, target.port), remaining)
    except EgressError:
        raise
    except TimeoutError:
        raise EgressFailed(f"DNS resolution for {target.host!r} timed out", "timeout") from None
    except Exception as exc:
        raise EgressFailed(f"DNS resolution failed for {target.host!r}", "dns_failure") from exc
    if isinstance(answers, (str, bytes)) or answers is None:
        raise EgressFailed(f"DNS resolution failed for {target.host!r}", "dns_failure")
    addresses: list = []
    try:
        for answer in answers:
            ip = answer if isinstance(answer, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(str(answer))
            if ip not in addresses:
                addresses.append(ip)
            if len(addresses) > MAX_RESOLVED_ADDRESSES:
                break
    except (TypeError, ValueError):
        raise EgressFailed(f"DNS resolution failed for {target.host!r}", "dns_failure") from None
    if not addresses:
        raise EgressFailed(f"host {target.host!r} did not resolve to any address", "dns_failure")
    if policy.is_trusted_host(target.host):
        return addresses
    for ip in addresses:
        if not policy.address_allowed(ip):
            raise EgressDenied(f"host {target.host!r} resolves to a forbidden address", "forbidden_address")
    return addresses


def resolve_url(policy: EgressPolicy, url: str) -> list:
    """The checks :func:`fetch` makes of a URL before connecting, without
    connecting: :func:`check_url`, then DNS (every answer must be allowed),
    within ``policy.timeout_seconds``.  The checked addresses; raises
    :class:`EgressDenied` or :class:`EgressFailed`."""
    target = check_url(policy, url)
    return _resolve(policy, target, time.monotonic() + float(policy.timeout_seconds))


@dataclass
class _HopResult:
    status: int
    reason: str
    headers: dict
    location: Optional[str]
    body: bytes
    ip: str


def _collect_headers(resp: http.client.HTTPResponse) -> dict:
    headers: dict = {}
    for name, value in resp.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _perform(
    policy: EgressPolicy,
    target: TargetURL,
    addresses: list,
    method: str,
    headers: list,
    body: Optional[bytes],
    deadline: float,
    may_follow: bool,
) -> _HopResult:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout_error(policy, target.host)
    if target.scheme == "https":
        conn: Union[PinnedHTTPConnection, PinnedHTTPSConnection] = PinnedHTTPSConnection(
            target.host,
            target.port,
            addresses=addresses,
            deadline=deadline,
            timeout=remaining,
            context=policy.ssl_context or default_ssl_context(),
        )
    else:
        conn = PinnedHTTPConnection(
            target.host, target.port, addresses=addresses, deadline=deadline, timeout=remaining
        )
    watchdog = Watchdog(conn, remaining)
    watchdog.start()
    host = target.host
    resp: Optional[http.client.HTTPResponse] = None
    try:
        conn.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            conn.putheader(name, value)
        if "accept-encoding" not in names:
            conn.putheader("Accept-Encoding", "identity")
        conn.putheader("Connection", "close")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        resp = conn.getresponse()

        status = resp.status
        location = resp.getheader("Location") if status in REDIRECT_STATUSES else None
        if location is not None and may_follow:
            data = b""  # redirect body is not read
        else:
            cap = policy.max_response_bytes
            declared = resp.getheader("Content-Length")
            truncated = False
            if declared and declared.strip().isdigit() and int(declared.strip()) > cap and not policy.truncate_response:
                raise EgressDenied(
                    f"response from {host!r} exceeds the limit of {cap} bytes", "response_too_large"
                )
            chunks = []
            total = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or watchdog.fired:
                    raise _timeout_error(policy, host)
                if conn.sock is not None:
                    conn.sock.settimeout(left)
                chunk = resp.read1(_READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > cap and policy.truncate_response:
                    chunks.append(chunk[: len(chunk) - (total - cap)])
                    truncated = True
                    break
                if total > cap:
                    raise EgressDenied(
                        f"response from {host!r} exceeds the limit of {cap} bytes", "response_too_large"
                    )
                chunks.append(chunk)
            if resp.length and not truncated:  # Content-Length not satisfied (connection closed early)
                if watchdog.fired:
                    raise _timeout_error(policy, host)
                raise EgressFailed(f"connection to {host!r} closed before the response was complete", "protocol_error")
            data = b"".join(chunks)
        watchdog.cancel()
        if watchdog.fired:
            raise _timeout_error(policy, host)
        return _HopResult(
            status=status,
            reason=resp.reason or "",
            headers=_collect_headers(resp),
            location=location,
            body=data,
            ip=str(conn.connected_ip),
        )
    except EgressError:
        raise
    except Exception as exc:
        if watchdog.fired or isinstance(exc, TimeoutError):
            raise _timeout_error(policy, host) from exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise EgressFailed(f"TLS certificate verification failed for {host!r}", "tls_error") from exc
        if isinstance(exc, ssl.SSLError):
            raise EgressFailed(f"TLS error while connecting to {host!r}", "tls_error") from exc
        if isinstance(exc, ConnectionRefusedError):
            raise EgressFailed(f"connection to {host!r} was refused", "connect_failed") from exc
        if isinstance(exc, http.client.HTTPException):
            raise EgressFailed(f"invalid HTTP response from {host!r}", "protocol_error") from exc
        if isinstance(exc, OSError):
            if conn.connected_ip is None:
                raise EgressFailed(f"could not connect to {host!r}", "connect_failed") from exc
            raise EgressFailed(f"network error while talking to {host!r}", "network_error") from exc
        raise
    finally:
        watchdog.cancel()
        if resp is not None:
            resp.close()
        conn.close()


def fetch(
    policy: EgressPolicy,
    method: str,
    url: str,
    headers: Optional[Union[Mapping[str, str], Iterable[tuple]]] = None,
    body: Optional[Union[bytes, bytearray, str]] = None,
    before_send: Optional[Callable[[], None]] = None,
) -> EgressResponse:
    """Perform one plugin HTTP request under ``policy``.

    Every hop (the initial URL and each redirect) is checked: URL syntax,
    scheme, port, allowlist, DNS answers (all must be allowed), and the
    connection goes to the checked address.  Redirects (301/302/303/307/308)
    are followed up to ``policy.max_redirects``; 303 (and 301/302 after a
    POST) switch to GET without a body, 307/308 keep method and body.  A
    redirect to another origin (scheme, host or port; so also a downgrade
    from https to http) carries none of the caller's headers: any of them
    may be a credential (``X-Api-Key`` as much as ``Authorization``), and
    only the caller knows which.  ``timeout_seconds`` is the total budget
    for everything.

    ``before_send`` is called once, when every check of the first hop has
    passed and just before connecting: the caller's rate limit counts only
    requests that are really sent.  It may raise :class:`EgressDenied`.

    Raises :class:`EgressDenied` or :class:`EgressFailed`.
    """
    start = time.monotonic()
    deadline = start + float(policy.timeout_seconds)
    method = check_method(method)
    request_headers = sanitize_headers(headers)
    data = coerce_body(body, policy.max_request_bytes)
    target = check_url(policy, url)

    redirects = 0
    bytes_sent = 0
    while True:
        addresses = _resolve(policy, target, deadline)
        if before_send is not None and redirects == 0:
            before_send()
        hop = _perform(policy, target, addresses, method, request_headers, data, deadline, may_follow=True)
        bytes_sent += len(data or b"")
        if hop.location is None:
            return EgressResponse(
                status=hop.status,
                reason=hop.reason,
                headers=hop.headers,
                body=hop.body,
                url=target.url,
                resolved_ip=hop.ip,
                bytes_received=len(hop.body),
                bytes_sent=bytes_sent,
                duration_ms=int((time.monotonic() - start) * 1000),
                redirects=redirects,
            )
        if redirects >= policy.max_redirects:
            raise EgressDenied(f"too many redirects (limit {policy.max_redirects})", "too_many_redirects")
        redirects += 1
        try:
            next_target = check_url(policy, urljoin(target.url, hop.location.strip()))
        except EgressDenied as exc:
            raise EgressDenied(f"redirect refused: {exc.message}", exc.code) from None

        if hop.status == 303 and method != "HEAD" or hop.status in (301, 302) and method == "POST":
            method = "GET"
            data = None
            request_headers = [
                (n, v) for n, v in request_headers if n.lower() not in ("content-type", "content-encoding")
            ]
        if next_target.origin != target.origin:
            request_headers = []
        target = next_target
