"""Host parsing: IP literals in every spelling, hostname normalisation, IDNA
and ``allowed_domains`` entries."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

from .addresses import IPAddress

__all__ = [
    "looks_numeric",
    "normalize_domain_entry",
    "normalize_hostname",
    "parse_ip_literal",
    "parse_ipv6",
]

MAX_HOST_LENGTH = 253

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


def parse_ipv6(text: str) -> Optional[ipaddress.IPv6Address]:
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
        v6 = parse_ipv6(inner)
        if v6 is not None:
            return v6
        v4 = _parse_ipv4_lenient(inner) if inner.isascii() else None
        return v4
    if ":" in text:
        return parse_ipv6(text)
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


def normalize_hostname(host: str) -> str:
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


def looks_numeric(host: str) -> bool:
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
        host = normalize_hostname(base)
    except ValueError:
        raise ValueError(f"invalid allowed domain entry {entry!r}") from None
    if parse_ip_literal(host) is not None or looks_numeric(host):
        raise ValueError(f"IP literals are not allowed in allowed_domains: {entry!r}")
    if wildcard:
        if "." not in host:
            raise ValueError(f"wildcard entry is too broad: {entry!r}")
        return "*." + host
    return host
