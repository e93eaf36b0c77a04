"""The address of the client behind a request, seen through the reverse
proxies the operator trusts (TRUSTED_PROXIES)."""

import functools
import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@functools.lru_cache(maxsize=8)
def _networks(entries):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES entry {entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def trusted_proxies():
    """TRUSTED_PROXIES as networks; ImproperlyConfigured for a malformed entry."""
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _is_trusted(address, proxies):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request):
    """REMOTE_ADDR, unless that peer is a trusted proxy: then the nearest
    address in X-Forwarded-For that is not one. Each proxy appends the peer
    it saw, so only the entries right of the first untrusted one are
    believed; anything further left was written by the client."""
    peer = request.META.get("REMOTE_ADDR", "")
    proxies = trusted_proxies()
    if not proxies or not _is_trusted(peer, proxies):
        return peer
    client = peer
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop = hop.strip()
        if not hop:
            continue
        client = hop
        if not _is_trusted(hop, proxies):
            break
    return client
