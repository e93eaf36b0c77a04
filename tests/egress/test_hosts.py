"""Host parsing: every inet_aton/WHATWG spelling of an IP literal, and the
canonical form of allowed_domains entries."""

from __future__ import annotations

import ipaddress

import pytest

from egress.hosts import normalize_domain_entry, parse_ip_literal

IP_SPELLINGS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # decimal
    ("2130706433.", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),  # octal
    ("0177.0000.0000.0001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),  # hex + short
    ("0x7f000001", "127.0.0.1"),
    ("0X7F.0X0.0X0.0X1", "127.0.0.1"),  # uppercase
    ("0x7f.0.0.01", "127.0.0.1"),  # mixed
    ("0177.0x0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),  # short forms
    ("127.0.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),  # trailing dot
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("１２７．０．０．１", "127.0.0.1"),  # full-width digits and dots (IDNA)
    ("127.0.0.1 evil.test", "127.0.0.1"),  # glibc inet_aton stops at whitespace
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[::]", "::"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),  # IPv4-mapped, dotted
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),  # IPv4-mapped, hex
    ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"),
    ("[fe80::1%25eth0]", "fe80::1"),  # zone id, URL-encoded
    ("fe80::1%eth0", "fe80::1"),
    ("[FD00:EC2::254]", "fd00:ec2::254"),
]

NOT_IP = [
    "allowed.test", "example.com", "1.2.3.4.5", "4294967296", "256.1.1.1", "08.0.0.1",
    "0x1g", "1..2", ".1", "", "[::1", "[:::1]", "1_000", "+1", "127.0.0.1x", "١٢٧.0.0.1",
    "::ffff:0177.0.0.1", "a.0x7f",
]


@pytest.mark.parametrize("text,expected", IP_SPELLINGS)
def test_parse_ip_literal_spellings(text, expected):
    assert parse_ip_literal(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize("text", NOT_IP)
def test_parse_ip_literal_rejects(text):
    assert parse_ip_literal(text) is None


@pytest.mark.parametrize(
    "entry,expected",
    [
        ("API.Example.com.", "api.example.com"),
        ("  example.com  ", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("*.BÜCHER.example.", "*.xn--bcher-kva.example"),
    ],
)
def test_normalize_domain_entry_canonical_forms(entry, expected):
    assert normalize_domain_entry(entry) == expected
