"""Strict URL checking for one hop (:func:`check_url`), without network access."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote, urlsplit

from .addresses import IPAddress, is_forbidden_address
from .errors import EgressDenied
from .hosts import looks_numeric, normalize_hostname, parse_ip_literal, parse_ipv6
from .policy import EgressPolicy

__all__ = ["TargetURL", "check_url"]

DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOWED_EXPLICIT_PORTS = frozenset({80, 443})
MAX_URL_LENGTH = 8192


@dataclass(frozen=True)
class TargetURL:
    """A validated request target (one hop)."""

    scheme: str
    host: str  # canonical ASCII host name, or IP string for literals
    port: int
    path: str  # path + "?query", percent-encoded ASCII, never empty
    ip: Optional[IPAddress] = None  # set when the host is an IP literal

    @property
    def default_port(self) -> bool:
        return self.port == DEFAULT_PORTS[self.scheme]

    @property
    def host_for_url(self) -> str:
        if isinstance(self.ip, ipaddress.IPv6Address):
            return f"[{self.host}]"
        return self.host

    @property
    def host_header(self) -> str:
        if self.default_port:
            return self.host_for_url
        return f"{self.host_for_url}:{self.port}"

    @property
    def origin(self) -> tuple:
        return (self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.path}"


def _invalid(message: str) -> EgressDenied:
    return EgressDenied(message, "invalid_url")


def _encode_url_part(text: str) -> str:
    out = []
    for ch in text:
        if 0x21 <= ord(ch) <= 0x7E:
            out.append(ch)
        else:
            out.append(quote(ch, safe=""))
    return "".join(out)


def _split_netloc(netloc: str):
    """-> (host, port string or None, bracketed)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _invalid("invalid URL host")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest == "":
            return host, None, True
        if not rest.startswith(":"):
            raise _invalid("invalid URL host")
        return host, rest[1:], True
    if "[" in netloc or "]" in netloc:
        raise _invalid("invalid URL host")
    host, sep, port = netloc.partition(":")
    return host, (port if sep else None), False


def check_url(policy: EgressPolicy, url: str) -> TargetURL:
    """Validate ``url`` against ``policy`` without any network access.

    Raises :class:`EgressDenied` on any violation.  DNS-level checks happen
    later in :func:`fetch`.
    """
    if not isinstance(url, str):
        raise _invalid("URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"URL is longer than {MAX_URL_LENGTH} characters")
    url = url.strip(" ")
    if re.search(r"[\x00-\x1f\x7f]", url):
        raise _invalid("URL contains control characters")
    if "\\" in url:
        raise _invalid("backslashes are not allowed in URLs (percent-encode as %5C)")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("malformed URL") from None

    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        if not scheme:
            raise EgressDenied("URL must be absolute and use http or https", "scheme_not_allowed")
        raise EgressDenied(f"URL scheme {scheme!r} is not allowed (only http and https)", "scheme_not_allowed")

    netloc = parts.netloc
    if not netloc:
        raise _invalid("URL has no host")
    if "@" in netloc:
        raise _invalid("credentials (user@host) in URLs are not allowed; use an Authorization header")
    raw_host, port_text, bracketed = _split_netloc(netloc)
    if not raw_host:
        raise _invalid("URL has no host")

    # Port.
    if port_text is None or port_text == "":
        port = DEFAULT_PORTS[scheme]
    else:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
            raise _invalid("invalid port in URL")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise _invalid("invalid port in URL")
    if not policy.allow_any_port and port != DEFAULT_PORTS[scheme] and port not in ALLOWED_EXPLICIT_PORTS:
        raise EgressDenied(f"port {port} is not allowed (only 80 and 443)", "port_not_allowed")

    # Host.
    ip: Optional[IPAddress] = None
    if bracketed:
        ip = parse_ipv6(raw_host)
        if ip is None:
            raise _invalid("invalid IPv6 address in URL")
        host = str(ip)
    else:
        if "%" in raw_host:
            raise _invalid("percent-encoded host names are not allowed")
        ip = parse_ip_literal(raw_host)
        if ip is None:
            try:
                host = normalize_hostname(raw_host)
            except ValueError:
                raise _invalid("invalid host name in URL") from None
            ip = parse_ip_literal(host)
            if ip is None and looks_numeric(host):
                raise _invalid("invalid IPv4 address in URL")
        if ip is not None:
            host = str(ip)

    if ip is not None:
        if not policy.is_permitted_address(ip) and not policy.is_trusted_host(host):
            if is_forbidden_address(ip):
                raise EgressDenied(f"destination {host} is a forbidden address", "forbidden_address")
            if not policy.any_public_host:
                raise EgressDenied(
                    "IP address literals are not allowed; use an allowlisted domain name",
                    "ip_literal_not_allowed",
                )
    elif not (policy.any_public_host or policy.is_trusted_host(host) or policy._matches(host)):
        raise EgressDenied(f"domain {host!r} is not in the egress allowlist", "domain_not_allowed")

    try:
        path = _encode_url_part(parts.path) or "/"
        if parts.query:
            path += "?" + _encode_url_part(parts.query)
    except UnicodeError:
        raise _invalid("URL contains invalid characters") from None
    if not path.startswith("/"):
        raise _invalid("invalid URL path")
    return TargetURL(scheme=scheme, host=host, port=port, path=path, ip=ip)
