"""Host-side egress broker for sandboxed plugin executions.

Sandboxed plugin code has no network access of its own.  Its only way out is
``ctx.http.get/post/request``, which forwards ``(method, url, headers, body)``
to the host.  This module decides whether such a request is allowed and, if
so, performs it.  It is deliberately pure Python (stdlib only, no Django) so
it can be tested on its own; rate limiting and event logging are layered
around :func:`fetch` by the caller.

Security model (per hop, including every redirect hop):

1. The URL is parsed strictly (:func:`check_url`): only ``http``/``https``;
   no userinfo, backslashes, control characters, percent-encoded hosts or
   malformed ports.  The host is lower-cased, IDNA-encoded and stripped of a
   trailing dot.  Every inet_aton/WHATWG spelling of an IPv4 address (decimal
   ``2130706433``, octal ``0177.0.0.1``, hex ``0x7f.1``, short ``127.1``,
   mixed, trailing dot, full-width digits) and every bracketed IPv6 literal
   (including zone ids and IPv4-mapped forms) is recognised as an IP literal
   by :func:`parse_ip_literal`.  IP literals are never matched by the domain
   allowlist; a host that merely *looks* numeric but is not a valid address
   (``1.2.3.4.5``, ``4294967296``) is refused as invalid.
2. The host must match :attr:`EgressPolicy.allowed_domains` (exact names or
   ``*.example.com`` wildcards that match subdomains only).
3. The port must be the scheme default, 80 or 443 (any port only with
   ``allow_any_port=True``).
4. DNS is resolved on the host with the policy's resolver.  If ANY returned
   address is forbidden (:func:`is_forbidden_address`) the request is refused,
   which defeats rebinding tricks that mix public and private answers.
5. The connection is made to the exact address that was checked
   (:class:`PinnedHTTPConnection` / :class:`PinnedHTTPSConnection`); there is
   no second resolution.  The Host header, TLS SNI and certificate
   verification use the hostname.
6. Request headers are sanitised (Host is ours; hop-by-hop and Proxy-* headers
   are dropped; count/size limits), methods are restricted, the request body
   and the response body are capped, and a single wall-clock budget
   (``timeout_seconds``) covers DNS, connect, TLS, the request, all
   redirects and the response body (a watchdog aborts trickling servers).

Errors:

* :class:`EgressDenied` -- a policy refusal (bad scheme/URL, domain not
  allowed, forbidden address, port, method, headers, request body too large,
  too many redirects, **response body larger than the cap**).  The engine maps
  it to SANDBOX_VIOLATION.
* :class:`EgressFailed` -- a network failure (DNS failure, connection refused,
  timeout, TLS error, malformed/incomplete HTTP response).

Both carry a machine-readable ``code`` and a message that names at most the
host; resolved addresses and OS error details are never put in messages.
Only ``str(exc)`` / ``exc.code`` should be forwarded to plugin code; the
``__cause__`` chain is kept for host-side diagnostics.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union
from urllib.parse import quote, urljoin, urlsplit

__all__ = [
    "ALLOWED_METHODS",
    "EgressDenied",
    "EgressError",
    "EgressFailed",
    "EgressPolicy",
    "EgressResponse",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "TargetURL",
    "check_url",
    "default_resolver",
    "fetch",
    "is_forbidden_address",
    "normalize_domain_entry",
    "parse_ip_literal",
]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Resolver = Callable[[str, int], Iterable[str]]

MIB = 1024 * 1024

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOWED_EXPLICIT_PORTS = frozenset({80, 443})

MAX_URL_LENGTH = 8192
MAX_HOST_LENGTH = 253
MAX_REQUEST_HEADERS = 64
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
MAX_TOTAL_HEADER_BYTES = 32 * 1024
MAX_RESOLVED_ADDRESSES = 32
_READ_CHUNK = 64 * 1024

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
# Credentials that must not follow a redirect to a different origin.
CROSS_ORIGIN_STRIPPED_HEADERS = frozenset({"authorization", "cookie"})


# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------


class EgressError(Exception):
    """Base class.  ``code`` is a short machine-readable reason."""

    code = "egress_error"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class EgressDenied(EgressError):
    """The request violates the egress policy (maps to SANDBOX_VIOLATION).

    Codes: invalid_url, scheme_not_allowed, port_not_allowed,
    domain_not_allowed, ip_literal_not_allowed, forbidden_address,
    method_not_allowed, invalid_header, invalid_body, request_too_large,
    response_too_large, too_many_redirects.
    """

    code = "denied"


class EgressFailed(EgressError):
    """The request was allowed but the network operation failed.

    Codes: dns_failure, timeout, connect_failed, tls_error, protocol_error,
    network_error.
    """

    code = "failed"


# --------------------------------------------------------------------------
# Forbidden addresses
# --------------------------------------------------------------------------

_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", includes 0.0.0.0
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT shared address space
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
    )
)

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# Ranges whose low 32 bits are an IPv4 address: NAT64, IPv4-compatible, SIIT.
_LOW32_EMBEDDING = (
    _NAT64_WELL_KNOWN,
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)

_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # deprecated IPv4-compatible addresses
        "::ffff:0:0/96",  # IPv4-mapped (unwrapped before this check)
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/32",  # Teredo (embeds an arbitrary IPv4 server/client)
        "2001:2::/48",  # benchmarking
        "2001:10::/28",  # ORCHID
        "2001:20::/28",  # ORCHIDv2
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (forbidden entirely, see is_forbidden_address)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local (includes fd00:ec2::254)
        "fd00:ec2::254/128",  # AWS IMDS over IPv6 (explicit, also in fc00::/7)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list:
    """IPv4 addresses embedded in an IPv6 address by the usual mechanisms."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if any(ip in net for net in _LOW32_EMBEDDING):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _flags_forbidden(ip: IPAddress) -> bool:
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def is_forbidden_address(ip: Union[IPAddress, str]) -> bool:
    """True if connecting to ``ip`` must be refused.

    Refuses private, loopback, link-local, CGNAT, multicast, reserved,
    unspecified, broadcast, documentation/benchmark and cloud metadata
    addresses (explicit network list *and* :mod:`ipaddress` flags).

    IPv6 addresses that embed an IPv4 address are unwrapped first:
    IPv4-mapped (``::ffff:a.b.c.d``) and well-known NAT64
    (``64:ff9b::a.b.c.d``) are judged by the embedded IPv4 address.
    IPv4-compatible (``::/96``), IPv4-translated, Teredo (``2001::/32``) and
    6to4 (``2002::/16``) ranges are refused outright (deprecated mechanisms
    with no legitimate use for plugin egress); their embedded IPv4 is also
    checked as defence in depth.  A scoped IPv6 address (``%zone``) is always
    refused.
    """
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        if any(ip in net for net in _FORBIDDEN_V4):
            return True
        return _flags_forbidden(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return is_forbidden_address(mapped)
        if ip in _NAT64_WELL_KNOWN:
            return is_forbidden_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(ip in net for net in _FORBIDDEN_V6):
            return True
        if any(is_forbidden_address(v4) for v4 in _embedded_ipv4(ip)):
            return True
        return _flags_forbidden(ip)
    raise TypeError("expected an IPv4Address or IPv6Address")


# --------------------------------------------------------------------------
# Host parsing
# --------------------------------------------------------------------------

_HEX_RE = re.compile(r"[0-9a-f]*\Z")
_OCT_RE = re.compile(r"[0-7]+\Z")
_DEC_RE = re.compile(r"[0-9]+\Z")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_NUMERIC_LABEL_RE = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)\Z")


def _parse_ipv4_number(part: str) -> Optional[int]:
    """One inet_aton / WHATWG IPv4 component: decimal, 0-octal or 0x-hex."""
    if not part or not part.isascii():
        return None
    part = part.lower()
    try:
        if part.startswith("0x"):
            digits = part[2:]
            if not _HEX_RE.match(digits):
                return None
            return int(digits, 16) if digits else 0  # WHATWG: "0x" is 0
        if len(part) > 1 and part[0] == "0":
            digits = part[1:]
            if not _OCT_RE.match(digits):
                return None
            return int(digits, 8)
        if _DEC_RE.match(part):
            return int(part, 10)
    except ValueError:  # absurdly long digit strings
        return None
    return None


def _parse_ipv4_lenient(host: str) -> Optional[ipaddress.IPv4Address]:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot is allowed
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_parse_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    for n in numbers[:-1]:
        if n > 255:
            return None
    last = numbers[-1]
    if last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_ipv6(text: str) -> Optional[ipaddress.IPv6Address]:
    zone = text.find("%")
    if zone >= 0:
        text = text[:zone]  # drop zone id ("%eth0" or URL-encoded "%25eth0")
    if not text or not text.isascii():
        return None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _idna_to_ascii(host: str) -> str:
    """Lower-case ASCII form of ``host`` (IDNA/nameprep for non-ASCII)."""
    if not host.isascii():
        if len(host) > 4 * MAX_HOST_LENGTH:
            raise ValueError("host too long")
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError("invalid internationalised host name") from exc
    return host.lower()


def parse_ip_literal(host: str) -> Optional[IPAddress]:
    """Return the IP address ``host`` denotes if it is an IP literal, else None.

    Accepts every spelling a libc ``inet_aton`` or a WHATWG-conformant browser
    would interpret as an address: 1-4 dot-separated parts, each decimal,
    octal (leading ``0``) or hex (``0x``), the last part filling the remaining
    bytes (``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``), an optional
    trailing dot, upper case, full-width digits/dots (via IDNA), trailing
    whitespace garbage as glibc tolerates; and IPv6 literals with or without
    brackets, with a zone id (dropped) or embedded IPv4 (``::ffff:127.0.0.1``).
    The returned address is unscoped.
    """
    if not isinstance(host, str) or not host:
        return None
    text = host
    if text.startswith("["):
        if not text.endswith("]"):
            return None
        inner = text[1:-1]
        v6 = _parse_ipv6(inner)
        if v6 is not None:
            return v6
        v4 = _parse_ipv4_lenient(inner) if inner.isascii() else None
        return v4
    if ":" in text:
        return _parse_ipv6(text)
    try:
        text = _idna_to_ascii(text)
    except ValueError:
        text = text.lower()
    # glibc inet_aton stops at the first whitespace character.
    match = re.match(r"([^\s]+)\s", text)
    if match:
        text = match.group(1)
    if not text.isascii():
        return None
    return _parse_ipv4_lenient(text)


def _normalize_hostname(host: str) -> str:
    """Canonical lower-case ASCII hostname without trailing dot, or ValueError."""
    if not host or len(host) > 4 * MAX_HOST_LENGTH:
        raise ValueError("invalid host")
    host = _idna_to_ascii(host)
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > MAX_HOST_LENGTH:
        raise ValueError("invalid host")
    for label in host.split("."):
        if not _LABEL_RE.match(label):
            raise ValueError("invalid host")
    return host


def _looks_numeric(host: str) -> bool:
    """WHATWG "ends in a number": such hosts are IPv4 literals or invalid."""
    return bool(_NUMERIC_LABEL_RE.match(host.rstrip(".").rsplit(".", 1)[-1]))


def normalize_domain_entry(entry: str) -> str:
    """Validate and canonicalise one ``allowed_domains`` entry.

    ``"API.Example.com."`` -> ``"api.example.com"``; ``"*.Example.com"`` ->
    ``"*.example.com"``; IDNA names become punycode.  Raises ``ValueError``
    for IP literals, ports, schemes, paths, ``*`` outside a leading ``*.``,
    and wildcards over a single label (``*.com``).
    """
    if not isinstance(entry, str):
        raise ValueError("allowed domain entries must be strings")
    text = entry.strip()
    wildcard = text.startswith("*.")
    base = text[2:] if wildcard else text
    if not base or "*" in base:
        raise ValueError(f"invalid allowed domain entry {entry!r}")
    if parse_ip_literal(base) is not None or base.startswith("["):
        raise ValueError(f"IP literals are not allowed in allowed_domains: {entry!r}")
    try:
        host = _normalize_hostname(base)
    except ValueError:
        raise ValueError(f"invalid allowed domain entry {entry!r}") from None
    if parse_ip_literal(host) is not None or _looks_numeric(host):
        raise ValueError(f"IP literals are not allowed in allowed_domains: {entry!r}")
    if wildcard:
        if "." not in host:
            raise ValueError(f"wildcard entry is too broad: {entry!r}")
        return "*." + host
    return host


# --------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------


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
            name = _normalize_hostname(host)
        except ValueError:
            return False
        if parse_ip_literal(name) is not None or _looks_numeric(name):
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

    def is_permitted_address(self, ip: IPAddress) -> bool:
        return ip in self._permitted_ips

    def address_allowed(self, ip: IPAddress) -> bool:
        return self.is_permitted_address(ip) or not is_forbidden_address(ip)


# --------------------------------------------------------------------------
# URL checking
# --------------------------------------------------------------------------


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
        ip = _parse_ipv6(raw_host)
        if ip is None:
            raise _invalid("invalid IPv6 address in URL")
        host = str(ip)
    else:
        if "%" in raw_host:
            raise _invalid("percent-encoded host names are not allowed")
        ip = parse_ip_literal(raw_host)
        if ip is None:
            try:
                host = _normalize_hostname(raw_host)
            except ValueError:
                raise _invalid("invalid host name in URL") from None
            ip = parse_ip_literal(host)
            if ip is None and _looks_numeric(host):
                raise _invalid("invalid IPv4 address in URL")
        if ip is not None:
            host = str(ip)

    if ip is not None:
        if not policy.is_permitted_address(ip):
            if is_forbidden_address(ip):
                raise EgressDenied(f"destination {host} is a forbidden address", "forbidden_address")
            raise EgressDenied(
                "IP address literals are not allowed; use an allowlisted domain name",
                "ip_literal_not_allowed",
            )
    elif not policy._matches(host):
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


# --------------------------------------------------------------------------
# Request pieces
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_method(method) -> str:
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


def _sanitize_headers(headers) -> list:
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


def _coerce_body(body, limit: int) -> Optional[bytes]:
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


# --------------------------------------------------------------------------
# Connections pinned to a checked address
# --------------------------------------------------------------------------


class _PinnedMixin:
    """Connects to pre-checked addresses only; never resolves ``self.host``."""

    def _init_pinned(self, addresses: Sequence[IPAddress], deadline: float) -> None:
        if not addresses:
            raise ValueError("no addresses to connect to")
        self._pinned_addresses = list(addresses)
        self._deadline = deadline
        self._abort_lock = threading.Lock()
        self._raw_sock: Optional[socket.socket] = None
        self.connected_ip: Optional[IPAddress] = None

    def _track(self, sock: Optional[socket.socket]) -> None:
        with self._abort_lock:
            self._raw_sock = sock

    def _discard(self, sock: socket.socket) -> None:
        self._track(None)
        sock.close()

    def _open_pinned_socket(self) -> socket.socket:
        last_error: Optional[BaseException] = None
        for ip in self._pinned_addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("egress deadline exceeded")
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            self._track(sock)
            try:
                sock.settimeout(remaining)
                sock.connect((str(ip), self.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                self._discard(sock)
                last_error = exc
                continue
            self.connected_ip = ip
            return sock
        assert last_error is not None
        raise last_error

    def abort(self) -> None:
        """Called from the watchdog thread: unblock any pending socket I/O."""
        with self._abort_lock:
            sock = self._raw_sock
            if sock is not None:
                try:
                    # Base-class shutdown on the fd; bypasses SSLSocket state.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._track(None)
        super().close()


class PinnedHTTPConnection(_PinnedMixin, http.client.HTTPConnection):
    """HTTPConnection whose ``connect()`` uses the checked IP, not DNS."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[IPAddress], deadline: float, timeout: float):
        http.client.HTTPConnection.__init__(self, host, port, timeout=timeout)
        self._init_pinned(addresses, deadline)

    def connect(self) -> None:
        self.sock = self._open_pinned_socket()


class PinnedHTTPSConnection(_PinnedMixin, http.client.HTTPSConnection):
    """HTTPSConnection: TCP to the checked IP, SNI + cert check on ``host``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        addresses: Sequence[IPAddress],
        deadline: float,
        timeout: float,
        context: ssl.SSLContext,
    ):
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeout, context=context)
        self._init_pinned(addresses, deadline)

    def connect(self) -> None:
        sock = self._open_pinned_socket()
        try:
            tls = self._context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            self._discard(sock)
            raise
        self._track(tls)  # the watchdog can now interrupt the handshake
        try:
            tls.do_handshake()
        except BaseException:
            self._discard(tls)
            raise
        self.sock = tls


_default_context: Optional[ssl.SSLContext] = None
_default_context_lock = threading.Lock()


def _default_ssl_context() -> ssl.SSLContext:
    global _default_context
    with _default_context_lock:
        if _default_context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            _default_context = context
        return _default_context


class _Watchdog:
    """Enforces the wall-clock deadline by shutting the socket down."""

    def __init__(self, conn: _PinnedMixin, seconds: float):
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._conn.abort()

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


# --------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------


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
    for ip in addresses:
        if not policy.address_allowed(ip):
            raise EgressDenied(f"host {target.host!r} resolves to a forbidden address", "forbidden_address")
    return addresses


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
        conn: _PinnedMixin = PinnedHTTPSConnection(
            target.host,
            target.port,
            addresses=addresses,
            deadline=deadline,
            timeout=remaining,
            context=policy.ssl_context or _default_ssl_context(),
        )
    else:
        conn = PinnedHTTPConnection(
            target.host, target.port, addresses=addresses, deadline=deadline, timeout=remaining
        )
    watchdog = _Watchdog(conn, remaining)
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
            if declared and declared.strip().isdigit() and int(declared.strip()) > cap:
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
                if total > cap:
                    raise EgressDenied(
                        f"response from {host!r} exceeds the limit of {cap} bytes", "response_too_large"
                    )
                chunks.append(chunk)
            if resp.length:  # Content-Length not satisfied (connection closed early)
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
) -> EgressResponse:
    """Perform one plugin HTTP request under ``policy``.

    Every hop (the initial URL and each redirect) is checked: URL syntax,
    scheme, port, allowlist, DNS answers (all must be allowed), and the
    connection goes to the checked address.  Redirects (301/302/303/307/308)
    are followed up to ``policy.max_redirects``; 303 (and 301/302 after a
    POST) switch to GET without a body, 307/308 keep method and body.  On a
    cross-origin redirect Authorization and Cookie headers are dropped.
    ``timeout_seconds`` is the total budget for everything.

    Raises :class:`EgressDenied` or :class:`EgressFailed`.
    """
    start = time.monotonic()
    deadline = start + float(policy.timeout_seconds)
    method = _check_method(method)
    request_headers = _sanitize_headers(headers)
    data = _coerce_body(body, policy.max_request_bytes)
    target = check_url(policy, url)

    redirects = 0
    bytes_sent = 0
    while True:
        addresses = _resolve(policy, target, deadline)
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
            request_headers = [(n, v) for n, v in request_headers if n.lower() not in CROSS_ORIGIN_STRIPPED_HEADERS]
        target = next_target
