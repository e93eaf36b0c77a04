"""What a plugin execution may reach (:class:`EgressPolicy`) and the default
DNS resolver."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from .addresses import IPAddress, is_forbidden_address
from .hosts import (
    looks_numeric,
    normalize_domain_entry,
    normalize_hostname,
    parse_ip_literal,
)

__all__ = ["EgressPolicy", "Resolver", "default_resolver"]

Resolver = Callable[[str, int], Iterable[str]]

MIB = 1024 * 1024


def default_resolver(host: str, port: int) -> list:
    """Resolve ``host`` with ``socket.getaddrinfo``; unique IP strings in order.

    The name is queried as an absolute name (trailing dot) so resolver search
    domains cannot turn an allowlisted name into an internal one.
    """
    query = host if host.endswith(".") else host + "."
    infos = socket.getaddrinfo(query, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    result = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = sockaddr[0]
        if address not in result:
            result.append(address)
    return result


def _canonical_host(entry: str) -> str:
    """A ``trusted_hosts`` entry as :func:`urls.check_url` spells hosts."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"invalid trusted host {entry!r}")
    text = entry.strip()
    ip = parse_ip_literal(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    if ip is not None:
        return str(ip)
    try:
        return normalize_hostname(text)
    except ValueError:
        raise ValueError(f"invalid trusted host {entry!r}") from None


@dataclass(frozen=True)
class EgressPolicy:
    """What a plugin execution may reach.

    ``allowed_domains``: exact host names or ``*.example.com`` wildcards
    (subdomains only, not ``example.com`` itself); case- and trailing-dot-
    insensitive; IDNA names are compared in punycode.  IP literals can never
    be allowed through this list.  Entries are validated and canonicalised on
    construction (``ValueError`` on bad entries) and stored as a tuple.

    ``permitted_addresses``: TEST-ONLY.  IP address strings that bypass
    :func:`is_forbidden_address` (and may be used as URL literals) so tests
    can talk to a local server on 127.0.0.1.  Production code never sets it.

    ``ssl_context``: optional TLS client context (tests use it to trust a
    self-signed certificate).  ``None`` means the system default context with
    certificate and hostname verification.  Production leaves it ``None``.

    ``allow_any_port``: by default only the scheme default port, 80 and 443
    are allowed.

    ``any_public_host``: any host name, and any IP literal, instead of the
    ``allowed_domains`` list (the engine's callbacks to its clients' URLs);
    every address is still checked.

    ``trusted_hosts``: host names or IP address strings, as they appear in
    the URL, whose addresses are not checked at all (an operator's own
    receivers on private addresses).  Canonicalised on construction.

    ``truncate_response``: a response body longer than
    ``max_response_bytes`` is cut there instead of refused (a caller that
    wants only the status reads no more than it needs).
    """

    allowed_domains: Sequence[str] = ()
    max_response_bytes: int = MIB
    timeout_seconds: float = 10.0
    max_redirects: int = 3
    permitted_addresses: frozenset = frozenset()
    resolver: Resolver = field(default=default_resolver)
    allow_any_port: bool = False
    max_request_bytes: int = MIB
    ssl_context: Optional[ssl.SSLContext] = field(default=None, repr=False, compare=False)
    any_public_host: bool = False
    trusted_hosts: frozenset = frozenset()
    truncate_response: bool = False
    _permitted_ips: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.allowed_domains, str):
            raise TypeError("allowed_domains must be a list of strings, not a string")
        domains = tuple(dict.fromkeys(normalize_domain_entry(d) for d in self.allowed_domains))
        object.__setattr__(self, "allowed_domains", domains)

        if isinstance(self.permitted_addresses, str):
            raise TypeError("permitted_addresses must be a set of strings, not a string")
        permitted = frozenset(str(a) for a in self.permitted_addresses)
        ips = set()
        for address in permitted:
            try:
                ips.add(ipaddress.ip_address(address))
            except ValueError:
                raise ValueError(f"invalid permitted address {address!r}") from None
        object.__setattr__(self, "permitted_addresses", permitted)
        object.__setattr__(self, "_permitted_ips", frozenset(ips))

        if isinstance(self.trusted_hosts, str):
            raise TypeError("trusted_hosts must be a set of strings, not a string")
        object.__setattr__(self, "trusted_hosts", frozenset(_canonical_host(h) for h in self.trusted_hosts))

        for name in ("max_response_bytes", "max_request_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if not isinstance(self.max_redirects, int) or isinstance(self.max_redirects, bool) or self.max_redirects < 0:
            raise ValueError("max_redirects must be a non-negative integer")
        if not isinstance(self.timeout_seconds, (int, float)) or not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be a positive number")
        if not callable(self.resolver):
            raise TypeError("resolver must be callable")

    def allows_host(self, host: str) -> bool:
        """True if the (raw or normalised) host name matches the allowlist.

        Always False for IP literals and invalid names.
        """
        try:
            if parse_ip_literal(host) is not None:
                return False
            name = normalize_hostname(host)
        except ValueError:
            return False
        if parse_ip_literal(name) is not None or looks_numeric(name):
            return False
        return self._matches(name)

    def _matches(self, name: str) -> bool:
        for entry in self.allowed_domains:
            if entry.startswith("*."):
                if name.endswith(entry[1:]):  # ".example.com"
                    return True
            elif name == entry:
                return True
        return False

    def is_trusted_host(self, host: str) -> bool:
        """``host`` as a canonical URL host (a name, or an IP string)."""
        return host in self.trusted_hosts

    def is_permitted_address(self, ip: IPAddress) -> bool:
        return ip in self._permitted_ips

    def address_allowed(self, ip: IPAddress) -> bool:
        return self.is_permitted_address(ip) or not is_forbidden_address(ip)
