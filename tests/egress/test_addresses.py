"""is_forbidden_address: private, reserved, metadata and embedded-IPv4 addresses."""

from __future__ import annotations

import ipaddress

import pytest

from egress.addresses import is_forbidden_address

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
