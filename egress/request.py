"""Request pieces supplied by the plugin: method, headers and body."""

from __future__ import annotations

import re
from typing import Mapping, Optional

from .errors import EgressDenied

__all__ = ["ALLOWED_METHODS", "check_method", "coerce_body", "sanitize_headers"]

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

MAX_REQUEST_HEADERS = 64
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
MAX_TOTAL_HEADER_BYTES = 32 * 1024

# Request headers the plugin may not set.  Host/Content-Length/Connection are
# set by the broker; the rest are hop-by-hop or proxy related.  Any header
# whose name starts with "proxy-" is dropped as well.
STRIPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "expect",
        "http2-settings",
    }
)

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_method(method) -> str:
    if not isinstance(method, str):
        raise EgressDenied("HTTP method must be a string", "method_not_allowed")
    upper = method.upper()
    if upper not in ALLOWED_METHODS:
        shown = method if (len(method) <= 16 and _TOKEN_RE.match(method)) else "?"
        raise EgressDenied(
            f"HTTP method {shown!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_METHODS))})",
            "method_not_allowed",
        )
    return upper


def sanitize_headers(headers) -> list:
    """Validated ``[(name, value)]`` with broker-controlled headers removed."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        items = list(headers.items())
    elif isinstance(headers, (str, bytes)):
        raise EgressDenied("headers must be a mapping or a list of (name, value) pairs", "invalid_header")
    else:
        try:
            items = [tuple(item) for item in headers]
        except TypeError:
            raise EgressDenied("headers must be a mapping or a list of (name, value) pairs", "invalid_header") from None
    if len(items) > MAX_REQUEST_HEADERS:
        raise EgressDenied(f"too many request headers (limit {MAX_REQUEST_HEADERS})", "invalid_header")
    result = []
    total = 0
    for item in items:
        if len(item) != 2:
            raise EgressDenied("headers must be (name, value) pairs", "invalid_header")
        name, value = item
        if not isinstance(name, str) or len(name) > MAX_HEADER_NAME_LENGTH or not _TOKEN_RE.match(name):
            raise EgressDenied("invalid request header name", "invalid_header")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EgressDenied(f"value of request header {name!r} must be a string", "invalid_header")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            raise EgressDenied(f"request header {name!r} is too long", "invalid_header")
        if _BAD_VALUE_RE.search(value):
            raise EgressDenied(f"request header {name!r} contains control characters", "invalid_header")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise EgressDenied(f"request header {name!r} must be latin-1 text", "invalid_header") from None
        lower = name.lower()
        if lower in STRIPPED_REQUEST_HEADERS or lower.startswith("proxy-"):
            continue
        value = value.strip(" \t")
        total += len(name) + len(value) + 4
        result.append((name, value))
    if total > MAX_TOTAL_HEADER_BYTES:
        raise EgressDenied(f"request headers exceed {MAX_TOTAL_HEADER_BYTES} bytes", "invalid_header")
    return result


def coerce_body(body, limit: int) -> Optional[bytes]:
    if body is None:
        return None
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise EgressDenied("request body must be bytes or str", "invalid_body")
    if len(data) > limit:
        raise EgressDenied(f"request body exceeds the limit of {limit} bytes", "request_too_large")
    return data
