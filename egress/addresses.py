"""Addresses the broker must never connect to (:func:`is_forbidden_address`)."""

from __future__ import annotations

import ipaddress
from typing import Union

__all__ = ["IPAddress", "is_forbidden_address"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

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
